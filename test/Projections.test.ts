/**
 * Projections on a real Postgres: a runner killed mid-batch (a real process, SIGKILL) and restarted leaves the read
 * model equal to a full replay; a rebuild built aside and swapped in equals the incremental model, and readers never
 * see it half-built; two runner processes are never active at once and the survivor takes over when the holder is
 * killed; a poison event stops the projection or is parked, per policy, without applying any batch twice; lag shows
 * while behind and reaches 0 at the head; inline read models commit with the append.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import {
  CheckpointStore,
  DeadLetters,
  EventId,
  EventStore,
  ExpectedVersion,
  type LogFollower,
  ProjectionRunner
} from "@chronicle/core"
import { PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as CounterModel from "./fixtures/CounterModel.ts"

const Database = PgTest.layer({ maxConnections: 20 })

const Live = Layer.mergeAll(
  PgEventStore.layer({ pollInterval: "100 millis" }),
  PgProjection.layerServices({ retryInterval: "100 millis", heartbeatInterval: "200 millis" })
).pipe(
  Layer.provideMerge(
    Layer.effectDiscard(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) =>
          sql`CREATE TABLE counter_batches (runner text NOT NULL, started timestamptz, ended timestamptz NOT NULL)`
      )
    ).pipe(Layer.provideMerge(PgMigrations.layer), Layer.orDie)
  ),
  Layer.provideMerge(Database)
)

const node = fileURLToPath(new URL("../node_modules/node/bin/node", import.meta.url))
const worker = fileURLToPath(new URL("./fixtures/projectionWorker.ts", import.meta.url))

/** A runner process of the counter model, killed (SIGKILL) when the scope closes if still alive. */
const startWorker = (runner: string, slowMs: number) =>
  Effect.flatMap(PgTest.DatabaseUrl, (url) =>
    Effect.acquireRelease(
      Effect.sync(() =>
        spawn(node, [worker, url, runner, String(slowMs)], { stdio: ["ignore", "inherit", "inherit"] })
      ),
      (child) => Effect.sync(() => void (child.exitCode === null && child.kill("SIGKILL")))
    )
  )

const kill = (child: ChildProcess) =>
  Effect.callback<void>((resume) => {
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeout: `${number} seconds` = "60 seconds") =>
  Effect.gen(function* () {
    while (!(yield* check)) yield* Effect.sleep("50 millis")
  }).pipe(Effect.timeout(timeout))

/** Appends `count` events over 30 `counter-*` streams (plus some of another category) in appends of 1 to 5. */
const appendCounters = (count: number, prefix: string) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    let written = 0
    for (let i = 0; written < count; i++) {
      const size = Math.min(1 + (i % 5), count - written)
      const events = Array.from({ length: size }, () => ({
        eventId: EventId.random(),
        type: "Ticked",
        schemaVersion: 1,
        data: { i },
        metadata: {}
      }))
      yield* store.append(`counter-${prefix}${i % 30}`, events, ExpectedVersion.any)
      if (i % 7 === 0)
        yield* store.append(`other-${i}`, [{ ...events[0]!, eventId: EventId.random() }], ExpectedVersion.any)
      written += size
    }
  })

/** The counter model computed straight from the log: the full replay every runner must agree with. */
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
const checkpoint = CheckpointStore.CheckpointStore.use((c) => c.load("counter"))
const caughtUp = Effect.gen(function* () {
  return (yield* ProjectionRunner.status(PgProjection.projection(CounterModel.model({ runner: "probe" })))).lag === 0n
})
const reset = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.andThen(
    sql`DROP TABLE IF EXISTS counts`,
    sql`TRUNCATE counter_batches, chronicle_events, chronicle_checkpoints, chronicle_dead_letters`
  )
)

layer(Live, { excludeTestServices: true, timeout: 180_000 })("Projections on Postgres", (it) => {
  it.effect("a runner process killed mid-batch and restarted leaves the model equal to a full replay", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* reset
      yield* appendCounters(1_500, "k")
      const first = yield* startWorker("first", 150)
      // Wait until some batches committed and the runner is inside one (its pg_sleep is running), then kill it.
      yield* eventually(Effect.map(checkpoint, (at) => at > 0n))
      yield* eventually(
        Effect.map(
          sql<{
            n: number
          }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()`,
          ([row]) => (row?.n ?? 0) > 0
        )
      )
      yield* kill(first)
      const [{ n: batches } = { n: 0 }] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM counter_batches`
      assert.isAbove(batches, 0)
      assert.isFalse(yield* caughtUp, "killed before the end")
      yield* startWorker("second", 0)
      yield* eventually(caughtUp)
      assert.deepStrictEqual(yield* modelRows, yield* fullReplay)
    }).pipe(Effect.scoped)
  )

  it.effect("two runner processes are never active at once; killing the holder fails over to the other", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* reset
      const a = yield* startWorker("a", 10)
      const b = yield* startWorker("b", 10)
      yield* appendCounters(150, "l")
      yield* eventually(caughtUp)
      const [holder] = yield* sql<{ runner: string }>`SELECT DISTINCT runner FROM counter_batches`
      assert.isDefined(holder)
      yield* kill(holder!.runner === "a" ? a : b)
      yield* appendCounters(150, "m")
      yield* eventually(caughtUp)
      const runners = yield* sql<{ runner: string }>`SELECT DISTINCT runner FROM counter_batches ORDER BY 1`
      assert.deepStrictEqual(
        runners.map((r) => r.runner),
        ["a", "b"]
      )
      const overlaps = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM counter_batches x JOIN counter_batches y
        ON x.runner < y.runner AND x.started < y.ended AND y.started < x.ended`
      assert.strictEqual(overlaps[0]?.n, 0)
      assert.deepStrictEqual(yield* modelRows, yield* fullReplay)
    }).pipe(Effect.scoped)
  )

  it.effect("lags while behind, catches up, ends at the head; a rebuild swapped in equals the incremental model", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* reset
      const model = CounterModel.model({ runner: "live", batchSize: 100 })
      yield* appendCounters(1_000, "r")
      const before = yield* ProjectionRunner.status(PgProjection.projection(model))
      assert.strictEqual(before.checkpoint, 0n)
      assert.isAbove(Number(before.lag), 0)
      const runner = yield* PgProjection.start(model)
      const writer = yield* Effect.forkChild(appendCounters(1_000, "s"))
      yield* eventually(Effect.map(runner.status, (s) => s.checkpoint > 0n))
      // Rebuild while the live runner and a writer run; readers must never see fewer rows than before.
      const rowsBefore = (yield* modelRows).length
      let fewest = rowsBefore
      const reader = yield* Effect.forkChild(
        Effect.forever(
          Effect.flatMap(modelRows, (rows) =>
            Effect.sync(() => {
              fewest = Math.min(fewest, rows.length)
            })
          )
        )
      )
      const progress: Array<LogFollower.Progress> = []
      yield* PgProjection.rebuild(model, { onProgress: (p) => Effect.sync(() => void progress.push(p)) })
      yield* Fiber.join(writer)
      yield* Fiber.interrupt(reader)
      assert.isAtLeast(fewest, rowsBefore)
      assert.isAbove(progress.length, 1)
      assert.strictEqual(progress.at(-1)?.done, progress.at(-1)?.total)
      yield* eventually(Effect.map(runner.status, (s) => s.lag === 0n))
      const head = yield* EventStore.EventStore.use((store) => store.head)
      const [lastCounter] = yield* sql<{ p: bigint }>`
        SELECT max(global_position) AS p FROM chronicle_events WHERE category = 'counter'`
      assert.strictEqual((yield* runner.status).checkpoint, lastCounter?.p)
      assert.isTrue(lastCounter!.p <= head)
      assert.deepStrictEqual(yield* modelRows, yield* fullReplay)
      const tables = yield* sql<{
        n: number
      }>`SELECT count(*)::int AS n FROM pg_tables WHERE tablename LIKE 'counts_rb_%'`
      assert.strictEqual(tables[0]?.n, 0)
    }).pipe(Effect.scoped)
  )

  it.effect("a poison event stops the projection naming it, with every batch before it applied exactly once", () =>
    Effect.gen(function* () {
      yield* reset
      yield* appendCounters(400, "p")
      const runner = yield* PgProjection.start(CounterModel.model({ runner: "stop", poison: "counter-p13" }))
      const error = yield* runner.await.pipe(Effect.flip, Effect.timeout("30 seconds"))
      assert.strictEqual(error.stream, "counter-p13")
      assert.strictEqual(error.version, 1)
      assert.match(error.message, /projection counter stopped at Ticked counter-p13@1 .*poison event/)
      assert.strictEqual((yield* runner.status).state, "stopped")
      assert.isTrue((yield* checkpoint) < error.position)
      // The model is the full replay of everything before the poison event: no batch applied twice or in part.
      const sql = yield* SqlClient.SqlClient
      const expected = yield* sql<{ stream: string; n: number }>`
        SELECT stream_id AS stream, count(*)::int AS n FROM chronicle_events
        WHERE category = 'counter' AND global_position < ${error.position} GROUP BY stream_id ORDER BY stream_id`
      assert.deepStrictEqual(yield* modelRows, expected)
    }).pipe(Effect.scoped)
  )

  it.effect("a poison event under the park policy goes to the dead-letter table and the rest is applied once", () =>
    Effect.gen(function* () {
      yield* reset
      yield* appendCounters(400, "q")
      const runner = yield* PgProjection.start(
        CounterModel.model({ runner: "park", poison: "counter-q13", onFailure: "park" })
      )
      yield* eventually(Effect.map(runner.status, (s) => s.lag === 0n))
      const parked = yield* DeadLetters.DeadLetters.use((d) => d.list("counter"))
      const sql = yield* SqlClient.SqlClient
      const poison = yield* sql<{
        n: number
      }>`SELECT count(*)::int AS n FROM chronicle_events WHERE stream_id = 'counter-q13'`
      assert.strictEqual(parked.length, poison[0]?.n)
      assert.isTrue(parked.every((letter) => letter.stream === "counter-q13" && /poison event/.test(letter.error)))
      const replay = (yield* fullReplay).filter((row) => row.stream !== "counter-q13")
      assert.deepStrictEqual(yield* modelRows, replay)
    }).pipe(Effect.scoped)
  )

  it.effect("an inline read model commits with the append, and a conflict inside the transaction stays typed", () =>
    Effect.gen(function* () {
      yield* reset
      const model = CounterModel.model({ runner: "inline" })
      yield* model.create("counts")
      const inline = yield* Layer.build(PgProjection.layerInline([model]))
      const store = Context.get(inline, EventStore.EventStore)
      const event = () => ({ eventId: EventId.random(), type: "Ticked", schemaVersion: 1, data: {}, metadata: {} })
      const repeated = event()
      yield* store.append("counter-i1", [repeated, event()], ExpectedVersion.noStream)
      assert.deepStrictEqual(yield* modelRows, [{ stream: "counter-i1", n: 2 }])
      const conflict = yield* store.append("counter-i1", [event()], ExpectedVersion.exact(1)).pipe(Effect.flip)
      assert.deepInclude(conflict, { _tag: "ConcurrencyError", stream: "counter-i1", actual: 2 })
      const again = yield* store.append("counter-i1", [repeated], ExpectedVersion.any)
      assert.strictEqual(again.written, 0)
      assert.deepStrictEqual(yield* modelRows, [{ stream: "counter-i1", n: 2 }])
      // A failing model update rolls the append back.
      const failing = yield* Layer.build(
        PgProjection.layerInline([CounterModel.model({ runner: "inline", poison: "counter-i2" })])
      )
      const refused = yield* Context.get(failing, EventStore.EventStore)
        .append("counter-i2", [event()], ExpectedVersion.any)
        .pipe(Effect.flip)
      assert.strictEqual(refused._tag, "EventStoreError")
      assert.strictEqual(yield* store.streamVersion("counter-i2"), 0)
      assert.deepStrictEqual(yield* modelRows, [{ stream: "counter-i1", n: 2 }])
      assert.deepStrictEqual(yield* modelRows, yield* fullReplay)
    }).pipe(Effect.scoped)
  )
})
