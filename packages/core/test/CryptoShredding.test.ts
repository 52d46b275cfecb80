import {
  CryptoShredding,
  EventId,
  EventStore,
  EventVersions,
  ExpectedVersion,
  KeyStore,
  PersonalData,
  Upcasting
} from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Result, Schema, Stream } from "effect"

const Profile = Schema.Struct({
  name: Schema.String.pipe(PersonalData.personal({ redacted: "[forgotten]" })),
  email: Schema.String.pipe(PersonalData.personal({ redacted: "[forgotten]" })),
  tags: Schema.Array(Schema.String).pipe(PersonalData.personal({ redacted: [] }))
})
const Registered = Schema.TaggedStruct("Registered", {
  customerId: Schema.String.pipe(PersonalData.subject),
  ...Profile.fields
})
const registry = EventVersions.registry([Registered])
const declaration = Result.getOrThrow(PersonalData.declarationOf(Registered))!

const Store = CryptoShredding.layer(registry).pipe(
  Layer.provideMerge(EventStore.layerMemory),
  Layer.provideMerge(KeyStore.layerMemory)
)

const registered = (customerId: string, name: string, metadata = {}) => ({
  eventId: EventId.random(),
  type: "Registered",
  schemaVersion: 1,
  data: { customerId, name, email: `${name}@example.com`, tags: ["vip"] },
  metadata
})

describe("CryptoShredding", () => {
  it.prop("decrypt(encrypt(data)) is data while the key exists", [Profile], ([profile]) => {
    const key = KeyStore.generateKey()
    const data = { customerId: "c-1", ...profile }
    const sealed = PersonalData.encrypt(declaration, data, "c-1", key)
    assert.isTrue(PersonalData.isSealed(sealed.name))
    assert.deepStrictEqual(Result.getOrThrow(PersonalData.decrypt(declaration, sealed, "c-1", key)), data)
  })

  it.effect("seals on append, opens on read, redacts after forget", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.append("customer-1", [registered("c-1", "Ada Lovelace")], ExpectedVersion.noStream)
      const [read] = yield* Stream.runCollect(store.readStream("customer-1"))
      assert.deepInclude(read!.data as object, { name: "Ada Lovelace", tags: ["vip"] })
      yield* KeyStore.forget("c-1")
      const [redacted] = yield* Stream.runCollect(store.readAll())
      assert.deepStrictEqual(redacted!.data, { customerId: "c-1", name: "[forgotten]", email: "[forgotten]", tags: [] })
      const refused = yield* store
        .append("customer-1", [registered("c-1", "Ada")], ExpectedVersion.any)
        .pipe(Effect.flip)
      assert.strictEqual(refused._tag, "InvalidAppend")
    }).pipe(Effect.provide(Store))
  )

  it.effect("refuses a personal value that also appears in the metadata, and fails on an altered field", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const leak = yield* store
        .append("customer-2", [registered("c-2", "Grace Hopper", { note: "for Grace Hopper" })], ExpectedVersion.any)
        .pipe(Effect.flip)
      assert.strictEqual(leak._tag, "InvalidAppend")
      assert.notInclude(leak.message, "Grace")
      const raw = yield* EventStore.makeMemory
      const sealed = yield* CryptoShredding.make(raw, registry)
      yield* sealed.append("customer-3", [registered("c-3", "Alan Turing")], ExpectedVersion.any)
      const [stored] = yield* Stream.runCollect(raw.readAll())
      const data = stored!.data as Schema.JsonObject
      const altered = { ...data, name: data.email! }
      const tampered = yield* EventStore.makeMemory
      yield* tampered.append("customer-3", [{ ...stored!, data: altered }], ExpectedVersion.any)
      const error = yield* Stream.runCollect((yield* CryptoShredding.make(tampered, registry)).readAll()).pipe(
        Effect.flip
      )
      assert.strictEqual(error.operation, "decrypt")
      assert.include(error.message, "personal field name")
    }).pipe(Effect.provide(Store))
  )

  it.effect("Upcasting over the store hands out current versions", () =>
    Effect.gen(function* () {
      const V1 = Schema.TaggedStruct("Noted", { text: Schema.String })
      const Noted = EventVersions.make(V1).next(Schema.TaggedStruct("Noted", { body: Schema.String }), {
        decode: ({ text }) => ({ _tag: "Noted" as const, body: text }),
        encode: ({ body }) => ({ _tag: "Noted" as const, text: body })
      })
      const raw = yield* EventStore.makeMemory
      const event = (schemaVersion: number, data: Schema.JsonObject) => ({
        eventId: EventId.random(),
        type: "Noted",
        schemaVersion,
        data,
        metadata: {}
      })
      yield* raw.append(
        "note-1",
        [event(1, { text: "a" }), event(2, { body: "b" }), event(9, { x: 1 })],
        ExpectedVersion.any
      )
      const read = yield* Stream.runCollect(
        Upcasting.make(raw, EventVersions.registry([Noted.schema])).readStream("note-1")
      )
      assert.deepStrictEqual(
        read.map((e) => [e.schemaVersion, e.data]),
        [
          [2, { body: "a" }],
          [2, { body: "b" }],
          [9, { x: 1 }]
        ]
      )
    })
  )
})
