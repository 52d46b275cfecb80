import { AggregateLoader, CommandHandler, SnapshotCodec, SnapshotPolicy, SnapshotStore } from "@chronicle/core"
import { PgEventStore, PgMigrations, PgSnapshotStore } from "@chronicle/postgres"
import { PgTest, SnapshotStoreConformance } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Result } from "effect"
import { SqlClient } from "effect/sql"
import { Count, Tally, State as TallySchema } from "../../../test/fixtures/Tally.ts"

const fingerprint = SnapshotCodec.make(TallySchema).fingerprint

const Live = Layer.mergeAll(PgEventStore.layer(), PgSnapshotStore.layer).pipe(
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer))
)
SnapshotStoreConformance.suite("PgSnapshotStore", Live)

const everyEvent = SnapshotPolicy.layer(SnapshotPolicy.everyEvents(1))

const count = (id: string, keys: ReadonlyArray<string>) =>
  Effect.forEach(keys, (key) => CommandHandler.handle(Tally, id, Count.make({ key }), { maxRetries: 1_000 }), {
    discard: true
  })
const fullFold = (id: string) =>
  AggregateLoader.load(Tally, id).pipe(Effect.provideService(SnapshotStore.SnapshotStore, SnapshotStore.none))
const snapshotOf = (id: string) => SnapshotStore.SnapshotStore.use((store) => store.load(`tally-${id}`))
// The policy's layer waits for its saves when it ends, so a command run under it has saved its snapshot on return.
const snapshotAt = (id: string, version: number) =>
  Effect.map(snapshotOf(id), (s) => {
    assert.strictEqual(Option.getOrUndefined(s)?.version, version)
    return s
  })

layer(Live, { excludeTestServices: true })("PgSnapshotStore", (it) => {
  it.effect("32 concurrent commands on one aggregate with the default retry all succeed, versions 1..32", () =>
    Effect.gen(function* () {
      const keys = Array.from({ length: 32 }, (_, i) => `k${i}`)
      yield* Effect.forEach(keys, (key) => CommandHandler.handle(Tally, "crowd", Count.make({ key })), {
        concurrency: "unbounded",
        discard: true
      })
      const loaded = yield* fullFold("crowd")
      assert.strictEqual(loaded.version, 32)
      const sql = yield* SqlClient.SqlClient
      const versions = yield* sql<{ version: number }>`
        SELECT version FROM chronicle_events WHERE stream_id = 'tally-crowd' ORDER BY version`
      assert.deepStrictEqual(
        versions.map((row) => row.version),
        Array.from({ length: 32 }, (_, i) => i + 1)
      )
    })
  )

  it.effect("loading starts from the snapshot and equals the full fold", () =>
    Effect.gen(function* () {
      yield* count("load", ["a", "b", "a", "c"]).pipe(
        Effect.provide(SnapshotPolicy.layer(SnapshotPolicy.everyEvents(4)))
      )
      yield* snapshotAt("load", 4)
      yield* count("load", ["b", "b"])
      const loaded = yield* AggregateLoader.load(Tally, "load")
      assert.strictEqual(loaded.snapshotVersion, 4)
      assert.strictEqual(loaded.version, 6)
      assert.deepStrictEqual(loaded.state, (yield* fullFold("load")).state)
    })
  )

  it.effect("a snapshot of an older state schema is ignored, never decoded, and replaced by the next save", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* count("stale", ["a", "b", "c"]).pipe(Effect.provide(everyEvent))
      yield* snapshotAt("stale", 3)
      // The same JSON would decode under today's schema: only the fingerprint says it is another shape.
      yield* sql`UPDATE chronicle_snapshots SET fingerprint = 'older', state = '{"counts": [["a", 99]], "total": 99}'
                 WHERE stream_id = 'tally-stale'`
      const loaded = yield* AggregateLoader.load(Tally, "stale")
      assert.strictEqual(loaded.snapshotVersion, 0)
      assert.deepStrictEqual(loaded.state, (yield* fullFold("stale")).state)
      yield* count("stale", ["d"]).pipe(Effect.provide(SnapshotPolicy.layer(SnapshotPolicy.everyEvents(4))))
      const replaced = yield* snapshotAt("stale", 4)
      assert.strictEqual(Option.getOrThrow(replaced).fingerprint, fingerprint)
    })
  )

  it.effect("a snapshot that does not decode is ignored, and commands go on", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* count("corrupt", ["a", "b"]).pipe(Effect.provide(everyEvent))
      yield* snapshotAt("corrupt", 2)
      yield* sql`UPDATE chronicle_snapshots SET state = '{"counts": "garbage"}' WHERE stream_id = 'tally-corrupt'`
      const loaded = yield* AggregateLoader.load(Tally, "corrupt")
      assert.strictEqual(loaded.snapshotVersion, 0)
      assert.strictEqual(loaded.state.total, 2)
      yield* count("corrupt", ["c"])
      assert.strictEqual((yield* AggregateLoader.load(Tally, "corrupt")).state.total, 3)
    })
  )

  it.effect("a snapshot ahead of a truncated, deleted or rewritten stream does not resurrect state", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* count("cut", ["a", "b", "c", "d", "e", "f"]).pipe(Effect.provide(everyEvent))
      yield* snapshotAt("cut", 6)
      yield* sql`DELETE FROM chronicle_events WHERE stream_id = 'tally-cut' AND version > 4`
      const truncated = yield* AggregateLoader.load(Tally, "cut")
      assert.deepStrictEqual([truncated.snapshotVersion, truncated.version, truncated.state.total], [0, 4, 4])

      yield* sql`DELETE FROM chronicle_events WHERE stream_id = 'tally-cut'`
      const deleted = yield* AggregateLoader.load(Tally, "cut")
      assert.deepStrictEqual([deleted.version, deleted.state.total, deleted.state.counts.size], [0, 0, 0])

      // Written again past the snapshot's version: the event at version 6 has another id now.
      yield* count("cut", ["z", "z", "z", "z", "z", "z", "z"])
      const rewritten = yield* AggregateLoader.load(Tally, "cut")
      assert.strictEqual(rewritten.snapshotVersion, 0)
      assert.deepStrictEqual(rewritten.state, { counts: new Map([["z", 7]]), total: 7 })
    })
  )

  it.effect("commands racing with snapshot writes on one stream lose nothing and never load a wrong state", () =>
    Effect.gen(function* () {
      const writers = 8
      const perWriter = 25
      yield* Effect.forEach(
        Array.from({ length: writers }, (_, w) => `k${w}`),
        (key) =>
          count(
            "race",
            Array.from({ length: perWriter }, () => key)
          ),
        { concurrency: "unbounded", discard: true }
      ).pipe(Effect.provide(everyEvent))
      const sql = yield* SqlClient.SqlClient
      const wrong = yield* sql<{ version: number; seen: number }>`
        SELECT version, (data->>'seen')::int AS seen FROM chronicle_events
        WHERE stream_id = 'tally-race' AND (data->>'seen')::int <> version - 1`
      assert.deepStrictEqual(wrong, [])
      const saved = Option.getOrThrow(yield* snapshotOf("race"))
      assert.isAbove(saved.version, 0)
      const loaded = yield* AggregateLoader.load(Tally, "race")
      assert.isAbove(loaded.snapshotVersion, 0)
      assert.deepStrictEqual(loaded.state, (yield* fullFold("race")).state)
      assert.strictEqual(loaded.state.total, writers * perWriter)
      for (const count of loaded.state.counts.values()) assert.strictEqual(count, perWriter)
    })
  )

  it.effect("a command does not wait for its snapshot to be written", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const locked = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      // Another transaction holds a lock that blocks writes to the snapshots table (reads still go through).
      const holder = yield* Effect.forkChild(
        sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`LOCK TABLE chronicle_snapshots IN EXCLUSIVE MODE`
            yield* Deferred.succeed(locked, undefined)
            yield* Deferred.await(release)
          })
        )
      )
      yield* Deferred.await(locked)
      // The policy's layer stands for the app's: its saves may outlive the command, not the layer.
      yield* Effect.gen(function* () {
        const handled = yield* count("detached", ["a", "b"]).pipe(Effect.timeout("20 seconds"))
        assert.isUndefined(handled)
        assert.isTrue(Option.isNone(yield* snapshotOf("detached")))
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
      }).pipe(Effect.provide(everyEvent))
      // The layer ended after its pending saves: the snapshot is there, no polling needed.
      assert.isTrue(Option.isSome(yield* snapshotOf("detached")))
    })
  )

  it.effect("a failing snapshot store never fails a command", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`ALTER TABLE chronicle_snapshots RENAME TO chronicle_snapshots_away`
      const outcome = yield* count("failing", ["a", "b", "c"]).pipe(Effect.provide(everyEvent), Effect.result)
      const loaded = yield* AggregateLoader.load(Tally, "failing")
      yield* sql`ALTER TABLE chronicle_snapshots_away RENAME TO chronicle_snapshots`
      assert.isTrue(Result.isSuccess(outcome))
      assert.deepStrictEqual([loaded.version, loaded.snapshotVersion, loaded.state.total], [3, 0, 3])
    })
  )
})
