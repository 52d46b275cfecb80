import { Lease } from "@chronicle/core"
import { PgLease } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import { SqlClient } from "effect/sql"

const Live = PgLease.layer({ retryInterval: "50 millis", heartbeatInterval: "100 millis" }).pipe(
  Layer.provideMerge(PgTest.layer())
)

layer(Live, { excludeTestServices: true })("PgLease", (it) => {
  it.effect("one holder at a time; the waiter takes over when the holder lets go", () =>
    Effect.gen(function* () {
      const leases = yield* Lease.Lease
      const firstScope = yield* Scope.make()
      yield* leases.acquire("runner-a").pipe(Scope.provide(firstScope))
      const taken = yield* Deferred.make<void>()
      const waiter = yield* Effect.forkChild(
        Effect.scoped(Effect.andThen(leases.acquire("runner-a"), Deferred.succeed(taken, undefined)))
      )
      // Another lease is independent of the one held.
      yield* Effect.scoped(leases.acquire("runner-b")).pipe(Effect.timeout("5 seconds"))
      // The waiter has tried at least once (its session sits idle after a try, holding no advisory lock) and waits.
      const sql = yield* SqlClient.SqlClient
      yield* sql<{ tried: boolean }>`
        SELECT EXISTS (
          SELECT 1 FROM pg_stat_activity a
          WHERE a.application_name = 'chronicle lease runner-a' AND a.state = 'idle'
            AND a.query LIKE '%pg_try_advisory_lock%'
            AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')
        ) AS tried`.pipe(
        Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: ([row]) => row?.tried === true }),
        Effect.timeout("10 seconds")
      )
      assert.isFalse(yield* Deferred.isDone(taken))
      yield* Scope.close(firstScope, Exit.void)
      yield* Deferred.await(taken).pipe(Effect.timeout("10 seconds"))
      yield* Fiber.join(waiter)
    })
  )

  it.effect("killing the holder's connection reports the lease lost and frees it", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const result = yield* Lease.withLease(
        "runner-c",
        Effect.gen(function* () {
          yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'chronicle lease runner-c'`
          return yield* Effect.never
        })
      ).pipe(Effect.flip, Effect.timeout("10 seconds"))
      assert.strictEqual(result._tag, "LeaseLost")
      yield* Effect.scoped(Lease.Lease.use((leases) => leases.acquire("runner-c"))).pipe(Effect.timeout("10 seconds"))
    })
  )
})
