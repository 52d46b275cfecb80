/**
 * Followers across Postgres restarts: a projection runner and a NATS consumer, each in a child process, are inside
 * their batch transactions when Postgres is stopped abruptly (connections cut) and started again, several times. Both
 * stay up, catch up, and end equal to a replay of the log: the read model counts every event once, the consumer has
 * recorded every event exactly once. The outbox between them (in this process) rides the same restarts.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Backoff, EventId, EventStore, ExpectedVersion, Outbox, ProjectionRunner } from "@chronicle/core"
import { NatsMessage, NatsPublisher } from "@chronicle/nats"
import { PgCheckpointStore, PgEventStore, PgLease, PgMigrations, PgProjection } from "@chronicle/postgres"
import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { NatsServer } from "@chronicle/testing"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { type Duration, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as CounterModel from "./fixtures/CounterModel.ts"

const node = fileURLToPath(new URL("../node_modules/node/bin/node", import.meta.url))
const projectionWorker = fileURLToPath(new URL("./fixtures/projectionWorker.ts", import.meta.url))
const consumerWorker = fileURLToPath(new URL("./fixtures/consumerWorker.ts", import.meta.url))

/** A child process, killed when the scope closes if it is still alive. */
const child = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => spawn(node, args, { stdio: ["ignore", "inherit", "inherit"] })),
    (process) => Effect.sync(() => void (process.exitCode === null && process.kill("SIGKILL")))
  )

const alive = (process: ChildProcess) => process.exitCode === null && process.signalCode === null

/** Waits until `check` holds, looking every 50 ms, for at most `timeout` (30 seconds unless set). */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeout: Duration.Input = "30 seconds") =>
  Effect.gen(function* () {
    while (!(yield* check)) yield* Effect.sleep("50 millis")
  }).pipe(Effect.timeout(timeout))

/** Appends `count` events over 10 `counter-*` streams; retried with the same ids while the database comes back. */
const appendCounters = (count: number, round: number) =>
  Effect.forEach(
    Array.from({ length: count / 5 }, (_, i) => i),
    (i) => {
      const events = Array.from({ length: 5 }, () => ({
        eventId: EventId.random(),
        type: "Ticked",
        schemaVersion: 1,
        data: { round },
        metadata: {}
      }))
      return EventStore.EventStore.use((store) => store.append(`counter-${i % 10}`, events, ExpectedVersion.any)).pipe(
        Effect.retry({ schedule: Backoff.schedule(), times: 30 })
      )
    },
    { discard: true }
  )

/** How many sessions are inside a `pg_sleep` of the projection (`consumer` false) or of the consumer. */
const sleeping = (consumer: boolean) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ n: number }>`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()
        AND (query LIKE '%consumer_sleep%') = ${consumer}`.pipe(Effect.map(([row]) => (row?.n ?? 0) > 0))
  ).pipe(Effect.orElseSucceed(() => false))

const fullReplay = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ stream: string; n: number }>`
    SELECT stream_id AS stream, count(*)::int AS n FROM chronicle_events WHERE category = 'counter'
    GROUP BY stream_id ORDER BY stream_id`
)
const modelRows = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ stream: string; n: number }>`SELECT stream, n FROM counts ORDER BY stream`
)
const caughtUp = Effect.map(
  ProjectionRunner.status(PgProjection.projection(CounterModel.model({ runner: "probe" }))),
  (status) => status.lag === 0n
).pipe(Effect.orElseSucceed(() => false))

describe.skipIf(NatsServer.skip())("Followers across Postgres restarts", () => {
  it.live(
    "a projection runner and a NATS consumer in child processes survive restarts mid-transaction and equal a replay",
    () =>
      Effect.gen(function* () {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => EmbeddedPostgres.start()),
          (s) => Effect.promise(() => s.stop())
        )
        const nats = yield* NatsServer.scoped
        const Live = Layer.mergeAll(
          PgEventStore.layer({ pollInterval: "100 millis" }),
          PgCheckpointStore.layer,
          PgLease.layer({ retryInterval: "100 millis", heartbeatInterval: "200 millis" }),
          NatsPublisher.layer({
            servers: nats.url,
            subject: (event) => NatsMessage.subject(event, "chaos"),
            stream: { name: "chaos", subjects: ["chaos.>"] }
          })
        ).pipe(
          Layer.provideMerge(
            Layer.effectDiscard(
              Effect.flatMap(SqlClient.SqlClient, (sql) =>
                Effect.andThen(
                  sql`CREATE TABLE counter_batches (runner text NOT NULL, started timestamptz, ended timestamptz NOT NULL)`,
                  sql`CREATE TABLE consumed (event_id uuid NOT NULL, stream text NOT NULL)`
                )
              )
            ).pipe(Layer.provideMerge(PgMigrations.layer))
          ),
          Layer.provideMerge(
            PgClient.layer({ url: Redacted.make(server.url), maxConnections: 8, connectTimeout: "2 seconds" })
          ),
          Layer.orDie
        )

        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const outbox = yield* Outbox.start({ name: "chaos-outbox", categories: ["counter"], maxBackoff: "1 second" })
          const projection = yield* child([projectionWorker, server.url, "chaos", "60", "5"])
          const consumer = yield* child([consumerWorker, server.url, nats.url, "chaos", "20"])
          // The outbox creates the JetStream stream with its first publication; the consumer waits for it.
          yield* appendCounters(10, -1)
          const consumed = Effect.map(
            sql<{ n: number }>`SELECT count(DISTINCT event_id)::int AS n FROM consumed`,
            ([row]) => row?.n ?? 0
          ).pipe(Effect.orElseSucceed(() => 0))
          // Both are up before the first restart (starting a process takes a while on a busy machine).
          yield* eventually(
            Effect.map(consumed, (n) => n > 0),
            "90 seconds"
          )

          for (let round = 0; round < 3; round++) {
            yield* appendCounters(100, round)
            // Both followers are inside a transaction (their pg_sleep runs) when the server goes away.
            yield* eventually(Effect.map(Effect.all([sleeping(false), sleeping(true)]), ([p, c]) => p && c))
            yield* Effect.promise(() =>
              server.restart({ downFor: () => new Promise((resolve) => setTimeout(resolve, 300)) })
            )
          }
          yield* appendCounters(50, 3)

          yield* outbox.awaitCaughtUp.pipe(Effect.timeout("30 seconds"))
          yield* eventually(caughtUp)
          const logged = yield* sql<{ id: string }>`
            SELECT event_id::text AS id FROM chronicle_events WHERE category = 'counter' ORDER BY 1`
          yield* eventually(Effect.map(consumed, (n) => n === logged.length))

          assert.isTrue(alive(projection), "the projection runner's process is still up")
          assert.isTrue(alive(consumer), "the consumer's process is still up")
          assert.strictEqual(logged.length, 360)
          assert.deepStrictEqual(yield* modelRows, yield* fullReplay)
          const recorded = yield* sql<{ id: string }>`SELECT event_id::text AS id FROM consumed ORDER BY 1`
          assert.deepStrictEqual(
            recorded.map((row) => row.id),
            logged.map((row) => row.id),
            "the consumer recorded every event exactly once"
          )
        }).pipe(Effect.scoped, Effect.provide(Live))
      }),
    240_000
  )
})
