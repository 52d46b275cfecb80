import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option, type Schema, Stream } from "effect"
import { Count, Tally, State as TallySchema } from "../../../test/fixtures/Tally.ts"
import * as SnapshotStoreConformance from "../../testing/src/SnapshotStoreConformance.ts"
import * as AggregateLoader from "../src/AggregateLoader.ts"
import * as CommandHandler from "../src/CommandHandler.ts"
import * as EventStore from "../src/EventStore.ts"
import * as SnapshotCodec from "../src/SnapshotCodec.ts"
import * as SnapshotPolicy from "../src/SnapshotPolicy.ts"
import * as SnapshotStore from "../src/SnapshotStore.ts"

// @chronicle/testing depends on core, so core's tests reach the suite by path rather than by package name.
SnapshotStoreConformance.suite("SnapshotStore.layerMemory", SnapshotStore.layerMemory)

const codec = SnapshotCodec.make(TallySchema)

const count = (id: string, keys: ReadonlyArray<string>) =>
  Effect.forEach(keys, (key) => CommandHandler.handle(Tally, id, Count.make({ key })), { discard: true })

/** The state from every event, ignoring any snapshot. */
const fullFold = (id: string) =>
  AggregateLoader.load(Tally, id).pipe(Effect.provideService(SnapshotStore.SnapshotStore, SnapshotStore.none))

/** Stores a snapshot of `id` at `version` with the given fingerprint and JSON state, as another writer might have. */
const plant = (id: string, version: number, fingerprint: string, state: Schema.Json) =>
  Effect.gen(function* () {
    const stream = `tally-${id}`
    const [event] = yield* Stream.runCollect((yield* EventStore.EventStore).readStream(stream, { from: version }))
    yield* (yield* SnapshotStore.SnapshotStore).save({ stream, version, eventId: event!.eventId, fingerprint, state })
  })

const snapshotOf = (id: string) => SnapshotStore.SnapshotStore.use((store) => store.load(`tally-${id}`))

const warnings: Array<string> = []
const Stores = Layer.mergeAll(
  EventStore.layerMemory,
  SnapshotStore.layerMemory,
  Logger.layer([Logger.make(({ message }) => warnings.push(String(message)))])
)

describe("loading with snapshots (in memory)", () => {
  it.live("the policy's snapshot is used: the state comes from it plus the events after it", () =>
    Effect.gen(function* () {
      yield* count("a", ["x", "y", "x", "z", "x"]).pipe(
        Effect.provide(SnapshotPolicy.layer(SnapshotPolicy.everyEvents(5)))
      )
      // The policy's layer waits for its saves when it ends: the snapshot is saved by now.
      const saved = yield* snapshotOf("a")
      assert.strictEqual(Option.getOrThrow(saved).version, 5)
      yield* count("a", ["y"])
      const loaded = yield* AggregateLoader.load(Tally, "a")
      assert.strictEqual(loaded.snapshotVersion, 5)
      assert.strictEqual(loaded.version, 6)
      assert.deepStrictEqual(loaded.state, (yield* fullFold("a")).state)
      // A doctored snapshot (right fingerprint, right event) shows that loading does not fold the events before it.
      yield* plant("a", 5, codec.fingerprint, { counts: [["q", 1]], total: 1 })
      const doctored = yield* AggregateLoader.load(Tally, "a")
      assert.deepStrictEqual(doctored.state, {
        counts: new Map([
          ["q", 1],
          ["y", 1]
        ]),
        total: 2
      })
    }).pipe(Effect.provide(Stores))
  )

  it.live("a snapshot written for another state schema is ignored, then replaced by the next save", () =>
    Effect.gen(function* () {
      yield* count("b", ["x", "y", "x"])
      yield* plant("b", 3, "an older state schema", { counts: [["x", 100]], total: 100 })
      const loaded = yield* AggregateLoader.load(Tally, "b")
      assert.strictEqual(loaded.snapshotVersion, 0)
      assert.deepStrictEqual(loaded.state, (yield* fullFold("b")).state)
      yield* count("b", ["z"]).pipe(Effect.provide(SnapshotPolicy.layer(SnapshotPolicy.everyEvents(4))))
      const replaced = Option.getOrThrow(yield* snapshotOf("b"))
      assert.deepStrictEqual([replaced.version, replaced.fingerprint], [4, codec.fingerprint])
    }).pipe(Effect.provide(Stores))
  )

  it.live("a snapshot that does not decode is ignored with a warning", () =>
    Effect.gen(function* () {
      yield* count("c", ["x", "y"])
      yield* plant("c", 2, codec.fingerprint, { counts: "not a map", total: 2 })
      const loaded = yield* AggregateLoader.load(Tally, "c")
      assert.strictEqual(loaded.snapshotVersion, 0)
      assert.deepStrictEqual(loaded.state, (yield* fullFold("c")).state)
      assert.isTrue(warnings.some((line) => line.includes("ignoring the snapshot of tally-c@2")))
    }).pipe(Effect.provide(Stores))
  )

  it.live("without a snapshot store, nothing is saved and loading folds the whole stream", () =>
    Effect.gen(function* () {
      yield* count("d", ["x", "y", "z"]).pipe(Effect.provide(SnapshotPolicy.layer(SnapshotPolicy.everyEvents(1))))
      const loaded = yield* AggregateLoader.load(Tally, "d")
      assert.strictEqual(loaded.snapshotVersion, 0)
      assert.strictEqual(loaded.state.total, 3)
    }).pipe(Effect.provide(EventStore.layerMemory))
  )
})
