import {
  Aggregate,
  AggregateLoader,
  CryptoShredding,
  Decider,
  EventId,
  EventStore,
  EventVersions,
  ExpectedVersion,
  KeyStore,
  Metrics,
  PersonalData,
  SnapshotCodec,
  SnapshotStore,
  Upcasting
} from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Option, Result, Schema, Stream } from "effect"

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
      const forgotten = yield* CryptoShredding.forget("c-1")
      assert.deepInclude(forgotten, { subject: "c-1", now: true })
      assert.deepStrictEqual(yield* CryptoShredding.forget("c-1"), { ...forgotten, now: false })
      const [redacted, fact] = yield* Stream.runCollect(store.readAll())
      assert.deepInclude(fact!, { stream: "forgetFacts-c-1", type: "SubjectForgotten", position: forgotten.position })
      assert.deepStrictEqual(redacted!.data, { customerId: "c-1", name: "[forgotten]", email: "[forgotten]", tags: [] })
      const refused = yield* store
        .append("customer-1", [registered("c-1", "Ada")], ExpectedVersion.any)
        .pipe(Effect.flip)
      assert.strictEqual(refused._tag, "InvalidAppend")
    }).pipe(Effect.provide(Store))
  )

  it.effect("a subject id with a NUL or a lone surrogate is bad input: the append and forget refuse it typed", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      for (const subject of ["c-\u0000", "c-\ud800"]) {
        const refused = yield* store
          .append("customer-9", [registered("c-9", "Ada"), registered(subject, "Ada")], ExpectedVersion.any)
          .pipe(Effect.flip)
        assert.deepInclude(refused, { _tag: "InvalidAppend", stream: "customer-9" })
        assert.deepInclude((refused as EventStore.InvalidAppend).reason, {
          _tag: "UnrepresentableText",
          index: 1,
          path: "data.customerId"
        })
        assert.deepInclude(yield* CryptoShredding.forget(subject).pipe(Effect.flip), {
          _tag: "InvalidSubject",
          subject
        })
      }
      assert.strictEqual((yield* Stream.runCollect(store.readAll())).length, 0)
      assert.strictEqual((yield* (yield* KeyStore.KeyStore).find(["c-9"])).size, 0)
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
      assert.isFalse(error.retryMayHelp, "a tampered value stays tampered")
      assert.strictEqual((yield* Metric.value(Metrics.decryptionFailures)).count, 1)
      yield* CryptoShredding.forget("c-3") // a forgotten subject reads redacted: no failure counted
      yield* Stream.runCollect(sealed.readAll())
      assert.strictEqual((yield* Metric.value(Metrics.decryptionFailures)).count, 1)
    }).pipe(Effect.provide(Store), Effect.provideService(Metric.MetricRegistry, new Map()))
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
      assert.deepStrictEqual(unknown._tag === "InvalidAppend" && unknown.reason, {
        _tag: "UnregisteredType",
        index: 0,
        type: "Noted",
        schemaVersion: 1
      })
      const unknownVersion = yield* store
        .append("misc-1", [registered("c-9", "Ada"), event("Registered", 2)], ExpectedVersion.any)
        .pipe(Effect.flip)
      assert.deepStrictEqual(unknownVersion._tag === "InvalidAppend" && unknownVersion.reason, {
        _tag: "UnregisteredType",
        index: 1,
        type: "Registered",
        schemaVersion: 2
      })
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

// ── Snapshots ──
const CustomerState = Schema.Struct({
  customerId: Schema.String.pipe(PersonalData.subject),
  name: Schema.String.pipe(PersonalData.personal({ redacted: "[forgotten]" })),
  visits: Schema.Int
})
type CustomerState = typeof CustomerState.Type
const Visit = Schema.TaggedStruct("Visit", {})
const Customer = Aggregate.make({
  category: "customer",
  commands: Visit,
  events: Registered,
  state: CustomerState,
  decider: Decider.make<typeof Visit.Type, typeof Registered.Type, CustomerState>({
    initialState: { customerId: "", name: "", visits: 0 },
    evolve: (state, event) => ({ customerId: event.customerId, name: event.name, visits: state.visits + 1 }),
    decide: () => Result.succeed([])
  })
})
const codec = SnapshotCodec.make(CustomerState)
const snapshotOf = (
  stream: string,
  version: number,
  eventId: string,
  state: CustomerState
): SnapshotStore.Snapshot => ({
  stream,
  version,
  eventId,
  fingerprint: codec.fingerprint,
  state: Result.getOrThrow(codec.encode(state, stream, version))
})

describe("CryptoShredding snapshots", () => {
  it.effect(
    "seals the state's personal values; after forget every snapshot is ignored and loads come from events",
    () =>
      Effect.gen(function* () {
        const raw = yield* SnapshotStore.makeMemory
        const snapshots = yield* CryptoShredding.makeSnapshots(raw, { aggregates: [Customer] })
        const store = yield* EventStore.EventStore
        const written = yield* store.append("customer-7", [registered("c-7", "Ada Lovelace")], ExpectedVersion.noStream)
        const [event] = yield* Stream.runCollect(store.readStream("customer-7"))
        const state = { customerId: "c-7", name: "Ada Lovelace", visits: 1 }
        yield* snapshots.save(snapshotOf("customer-7", 1, event!.eventId, state))
        assert.notInclude(JSON.stringify(Option.getOrThrow(yield* raw.load("customer-7"))), "Lovelace")
        assert.deepStrictEqual(Option.getOrThrow(yield* snapshots.load("customer-7")).state, state)

        yield* KeyStore.forget("c-7")
        assert.isTrue(Option.isNone(yield* snapshots.load("customer-7")))
        // A command in flight during the forget saves its snapshot late: nothing readable is stored.
        yield* snapshots.save(snapshotOf("customer-7", 1, event!.eventId, state))
        assert.notInclude(JSON.stringify(yield* raw.load("customer-7")), "Lovelace")
        assert.isTrue(Option.isNone(yield* snapshots.load("customer-7")))
        const loaded = yield* AggregateLoader.load(Customer, "7").pipe(
          Effect.provideService(SnapshotStore.SnapshotStore, snapshots)
        )
        assert.deepStrictEqual(loaded.state, { customerId: "c-7", name: "[forgotten]", visits: 1 })
        assert.strictEqual(loaded.version, written.version)
      }).pipe(Effect.provide(Store))
  )

  it.effect("drops a snapshot stored in the clear before the state had marks, and refuses an unmarked state", () =>
    Effect.gen(function* () {
      const raw = yield* SnapshotStore.makeMemory
      const clear = snapshotOf("customer-8", 1, EventId.random(), { customerId: "c-8", name: "Grace", visits: 1 })
      yield* raw.save(clear)
      const snapshots = yield* CryptoShredding.makeSnapshots(raw, { aggregates: [Customer] })
      assert.isTrue(Option.isNone(yield* snapshots.load("customer-8")))
      assert.isTrue(Option.isNone(yield* raw.load("customer-8")))
      const Unmarked = { ...Customer, state: Schema.Struct({ visits: Schema.Int }) } as Aggregate.Any
      const refused = yield* CryptoShredding.makeSnapshots(raw, { aggregates: [Unmarked] }).pipe(Effect.flip)
      assert.deepInclude(refused, { _tag: "UnsupportedMark", type: "customer state", path: "(the state)" })
      yield* CryptoShredding.makeSnapshots(raw, { aggregates: [Unmarked], statesFreeOfPersonalData: ["customer"] })
    }).pipe(Effect.provide(KeyStore.layerMemory))
  )
})
