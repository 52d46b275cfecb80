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
const options = { events: [Registered], freeOfPersonalData: ["Pinged"] }
const declaration = Result.getOrThrow(PersonalData.declarationOf(Registered))!

const Store = CryptoShredding.layer(options).pipe(
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
  it.prop("open(seal(data)) is data while the key exists", [Profile], ([profile]) => {
    const key = KeyStore.generateKey()
    const data = { customerId: "c-1", ...profile }
    const sealed = PersonalData.seal(declaration, data, "c-1", "event-1", key)
    assert.strictEqual(PersonalData.sealedValuesOf(sealed)?.subject, "c-1")
    assert.deepStrictEqual(Result.getOrThrow(PersonalData.open(sealed, "event-1", key)), data)
    assert.isTrue(Result.isFailure(PersonalData.open(sealed, "event-2", key)))
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
      const sealed = yield* CryptoShredding.make(raw, options)
      yield* sealed.append(
        "customer-3",
        [registered("c-3", "Alan Turing"), registered("c-3", "Alan")],
        ExpectedVersion.any
      )
      const [first, second] = yield* Stream.runCollect(raw.readAll())
      // The sealed values of one event moved onto another event of the same subject do not open.
      const moved = { ...(second!.data as Schema.JsonObject), $personal: (first!.data as Schema.JsonObject).$personal! }
      const tampered = yield* EventStore.makeMemory
      yield* tampered.append("customer-3", [{ ...second!, data: moved }], ExpectedVersion.any)
      const error = yield* Stream.runCollect((yield* CryptoShredding.make(tampered, options)).readAll()).pipe(
        Effect.flip
      )
      assert.strictEqual(error.operation, "decrypt")
      assert.include(error.message, "authentication failed")
    }).pipe(Effect.provide(Store))
  )

  it.effect("refuses an event type it has no schema for, unless declared free of personal data", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const event = (type: string, schemaVersion = 1) => ({
        eventId: EventId.random(),
        type,
        schemaVersion,
        data: { note: "Ada Lovelace" },
        metadata: {}
      })
      const unknown = yield* store.append("misc-1", [event("Noted")], ExpectedVersion.any).pipe(Effect.flip)
      assert.strictEqual(unknown._tag, "InvalidAppend")
      assert.include(unknown.message, "(Noted): the shredding layer has no schema for v1")
      const unknownVersion = yield* store
        .append("misc-1", [registered("c-9", "Ada"), event("Registered", 2)], ExpectedVersion.any)
        .pipe(Effect.flip)
      assert.include(unknownVersion.message, "event 1 (Registered): the shredding layer has no schema for v2")
      yield* store.append("misc-1", [event("Pinged")], ExpectedVersion.noStream)
      const [stored] = yield* Stream.runCollect(store.readStream("misc-1"))
      assert.deepStrictEqual(stored!.data, { note: "Ada Lovelace" })
    }).pipe(Effect.provide(Store))
  )

  it.effect("reads values sealed field by field, the format before one seal per event", () =>
    Effect.gen(function* () {
      const raw = yield* EventStore.makeMemory
      const keys = yield* KeyStore.KeyStore
      const key = (yield* keys.keysFor(["c-4"])).get("c-4")!
      const field = (name: string, value: Schema.Json) => ({
        $sealed: KeyStore.seal(key, JSON.stringify(value), `c-4/${name}`)
      })
      const data = {
        customerId: "c-4",
        name: field("name", "Edsger"),
        email: field("email", "e@example.com"),
        tags: field("tags", ["x"])
      }
      yield* raw.append("customer-4", [{ ...registered("c-4", ""), data }], ExpectedVersion.noStream)
      const store = yield* CryptoShredding.make(raw, options)
      const [opened] = yield* Stream.runCollect(store.readStream("customer-4"))
      assert.deepStrictEqual(opened!.data, { customerId: "c-4", name: "Edsger", email: "e@example.com", tags: ["x"] })
      yield* keys.forget("c-4")
      const [redacted] = yield* Stream.runCollect(store.readStream("customer-4"))
      assert.deepStrictEqual(redacted!.data, { customerId: "c-4", name: "[forgotten]", email: "[forgotten]", tags: [] })
    }).pipe(Effect.provide(KeyStore.layerMemory))
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
