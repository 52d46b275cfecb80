import { CheckpointStore } from "@chronicle/core"
import { PgCheckpointStore, PgMigrations } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer } from "effect"
import { SqlClient } from "effect/sql"

const Live = PgCheckpointStore.layer.pipe(Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer)))

layer(Live, { excludeTestServices: true })("PgCheckpointStore", (it) => {
  it.effect("loads 0 before the first save, then what was saved or advanced", () =>
    Effect.gen(function* () {
      const checkpoints = yield* CheckpointStore.CheckpointStore
      assert.strictEqual(yield* checkpoints.load("a"), 0n)
      yield* checkpoints.advance("a", 0n, 1n << 40n)
      assert.strictEqual(yield* checkpoints.load("a"), 1n << 40n)
      yield* checkpoints.save("a", 5n)
      assert.strictEqual(yield* checkpoints.load("a"), 5n)
      const moved = yield* checkpoints.advance("a", 4n, 9n).pipe(Effect.flip)
      assert.deepInclude(moved, { _tag: "CheckpointMoved", projection: "a", expected: 4n, actual: 5n })
      const first = yield* checkpoints.advance("b", 3n, 9n).pipe(Effect.flip)
      assert.deepInclude(first, { _tag: "CheckpointMoved", projection: "b", expected: 3n, actual: 0n })
    })
  )

  it.effect("an advance inside a transaction rolls back with the transaction's other writes", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const checkpoints = yield* CheckpointStore.CheckpointStore
      yield* sql`CREATE TABLE model (n int)`
      const failed = yield* Effect.gen(function* () {
        yield* checkpoints.advance("tx", 0n, 10n)
        yield* sql`INSERT INTO model VALUES (1)`
        return yield* Effect.fail("boom" as const)
      }).pipe(sql.withTransaction, Effect.flip)
      assert.strictEqual(failed, "boom")
      assert.strictEqual(yield* checkpoints.load("tx"), 0n)
      assert.deepStrictEqual(yield* sql`SELECT n FROM model`, [])
    })
  )

  it.effect("two concurrent advances from the same position: exactly one wins", () =>
    Effect.gen(function* () {
      const checkpoints = yield* CheckpointStore.CheckpointStore
      yield* checkpoints.save("race", 1n)
      const results = yield* Effect.forEach(
        [2n, 3n, 4n, 5n],
        (to) => Effect.result(checkpoints.advance("race", 1n, to)),
        {
          concurrency: "unbounded"
        }
      )
      assert.strictEqual(results.filter((r) => r._tag === "Success").length, 1)
    })
  )

  it.effect("a claim fences the older owner, also against a batch in flight, and keeps the position", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const checkpoints = yield* CheckpointStore.CheckpointStore
      yield* checkpoints.save("f", 3n)
      const old = yield* checkpoints.claim("f")
      assert.strictEqual(yield* checkpoints.load("f"), 3n)
      yield* checkpoints.advance("f", 3n, 4n, old)
      // The old owner's batch holds the row when the new owner claims: the claim waits for its commit.
      const inFlight = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const batch = yield* checkpoints
        .advance("f", 4n, 5n, old)
        .pipe(
          Effect.andThen(Deferred.succeed(inFlight, undefined)),
          Effect.andThen(Deferred.await(release)),
          sql.withTransaction,
          Effect.forkChild
        )
      yield* Deferred.await(inFlight)
      const claiming = yield* Effect.forkChild(checkpoints.claim("f"))
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(batch)
      const current = yield* Fiber.join(claiming)
      assert.strictEqual(current, old + 1n)
      const refused = yield* checkpoints.advance("f", 5n, 6n, old).pipe(Effect.flip)
      assert.deepInclude(refused, { _tag: "CheckpointFenced", projection: "f", epoch: old, current })
      yield* checkpoints.advance("f", 5n, 6n, current)
      assert.strictEqual(yield* checkpoints.load("f"), 6n)
      const unclaimed = yield* checkpoints.advance("never", 0n, 1n, 1n).pipe(Effect.flip)
      assert.deepInclude(unclaimed, { _tag: "CheckpointFenced", epoch: 1n, current: 0n })
    })
  )
})
