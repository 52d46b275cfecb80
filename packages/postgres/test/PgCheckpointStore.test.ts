import { CheckpointStore } from "@chronicle/core"
import { PgCheckpointStore, PgMigrations } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
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
})
