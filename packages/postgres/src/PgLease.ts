/**
 * Leases across processes: a Postgres session advisory lock (`pg_try_advisory_lock` on a 64-bit hash of the lease's
 * name) held on a dedicated connection opened for that lease. Closing the scope closes the connection, which frees
 * the lock; a holder that dies frees it too, as soon as Postgres sees its connection close, and a waiting instance
 * takes it at its next try. The holder checks its connection on a heartbeat: if the connection fails or was replaced,
 * the lease is reported lost and the work under it is stopped.
 *
 * **Gotcha:** a holder whose machine vanishes without closing its socket keeps the lock until the server's TCP
 * keepalive notices; lower `tcp_keepalives_idle` on the server if failover must be fast in that case too.
 */
import { Lease } from "@chronicle/core"
import { PgClient } from "@effect/sql-pg"
import { Deferred, type Duration, Effect, Layer, Schedule } from "effect"
import { Reactivity } from "effect/reactivity"

/** How often leases are tried and checked; every field has a default. */
export interface Options {
  /** How often an instance waiting for a lease tries to take it; 500 ms unless set. */
  readonly retryInterval?: Duration.Input
  /** How often a holder checks that its connection (and so its lock) is alive; 1 second unless set. */
  readonly heartbeatInterval?: Duration.Input
  /** How long one check may take before the lease counts as lost; 5 seconds unless set. */
  readonly heartbeatTimeout?: Duration.Input
}

/** Builds leases on the server of the `PgClient` in context; each held or awaited lease uses one connection. */
export const make = (options: Options = {}): Effect.Effect<Lease.Service, never, PgClient.PgClient> =>
  Effect.gen(function* () {
    const { config } = yield* PgClient.PgClient
    const retryInterval = options.retryInterval ?? "500 millis"
    const heartbeatInterval = options.heartbeatInterval ?? "1 second"
    const heartbeatTimeout = options.heartbeatTimeout ?? "5 seconds"

    const acquire = (lease: string) =>
      Effect.gen(function* () {
        const connection = yield* PgClient.makeClient({ ...config, applicationName: `chronicle lease ${lease}` }).pipe(
          Effect.provideService(Reactivity.Reactivity, yield* Reactivity.make)
        )
        const [taken] = yield* connection<{ locked: boolean; pid: number }>`
          SELECT pg_try_advisory_lock(hashtextextended(${lease}, 0)) AS locked, pg_backend_pid() AS pid`.pipe(
          Effect.repeat({ schedule: Schedule.spaced(retryInterval), until: ([row]) => row?.locked === true })
        )
        const lost = yield* Deferred.make<never, Lease.LeaseLost>()
        const loseWith = (reason: string) => Deferred.fail(lost, new Lease.LeaseLost({ lease, reason }))
        yield* connection<{ pid: number }>`SELECT pg_backend_pid() AS pid`.pipe(
          Effect.timeout(heartbeatTimeout),
          Effect.flatMap(([row]) =>
            row?.pid === taken?.pid ? Effect.void : loseWith(`the lock's connection was replaced`)
          ),
          Effect.repeat(Schedule.spaced(heartbeatInterval)),
          Effect.catchCause((cause) => loseWith(`the lock's connection failed: ${String(cause)}`)),
          Effect.forkScoped
        )
        return { lease, lost: Deferred.await(lost) }
      }).pipe(Effect.mapError((cause) => new Lease.LeaseError({ lease, cause })))

    return { acquire }
  })

/** Provides the Postgres `Lease` service on the `PgClient` in context. */
export const layer = (options: Options = {}): Layer.Layer<Lease.Lease, never, PgClient.PgClient> =>
  Layer.effect(Lease.Lease, make(options))
