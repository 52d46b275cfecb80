/**
 * The event store's figures, each beside its raw Postgres limit on the same server: appends (one event to new
 * streams at concurrency 1, 8 and 32; an exact expected version on existing streams; `any` on one shared stream; ten events per call) beside a
 * prepared autocommit INSERT into a plain table; loading a 10,000-event aggregate beside one SELECT of its rows;
 * reading the whole global log beside a keyset SELECT; and the cost of a NOTIFY inside the writing transaction,
 * which is why Chronicle's append does not send one.
 */
import {
  Aggregate,
  AggregateLoader,
  Decider,
  type Envelope,
  EventId,
  EventStore,
  ExpectedVersion
} from "@chronicle/core"
import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Layer, Queue, Result, Schema, Stream } from "effect"
import * as Bench from "./Bench.ts"

/** Sizes of a full run and of a quick one. */
export const sizes = (quick: boolean) =>
  quick
    ? { reps: 2, seconds: 0.3, loadEvents: 2_000, loadReps: 3, readAllEvents: 10_000 }
    : { reps: 5, seconds: 1, loadEvents: 10_000, loadReps: 15, readAllEvents: 100_000 }

/** The raw side's table: the columns of an event, a bigint key, and no other index or constraint. */
const createRawTable = `CREATE TABLE raw_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stream_id text NOT NULL, version int NOT NULL, event_id uuid NOT NULL, type text NOT NULL,
  data jsonb NOT NULL, metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())`

const rawColumns = "stream_id, version, event_id, type, data, metadata"
const rawInsert = (rows: number) =>
  `INSERT INTO raw_events (${rawColumns}) VALUES ${Array.from(
    { length: rows },
    (_, r) =>
      `($${r * 6 + 1}, $${r * 6 + 2}, $${r * 6 + 3}::uuid, $${r * 6 + 4}, $${r * 6 + 5}::jsonb, $${r * 6 + 6}::jsonb)`
  ).join(", ")}`

const insertOne = rawInsert(1)
const insertTen = rawInsert(10)

/** A plain INSERT of ten events of one new stream into Chronicle's table, positions numbered as an append does. */
const eventsInsertTen = `INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
  VALUES ${Array.from(
    { length: 10 },
    (_, r) =>
      `((pg_current_xact_id()::text::bigint << 20) + ${r}, $1, 'table', ${r + 1}, $${r + 2}::uuid, 'ItemAdded', 1, $12::jsonb, $13::jsonb)`
  ).join(", ")}`

/** The columns Chronicle's reads select, so the raw reads move the same bytes. */
const eventColumns =
  "global_position, stream_id, version, event_id::text, type, schema_version, data, metadata, recorded_at"

const data = { sku: "apple", quantity: 1 }
const metadata = { correlationId: "bench" }
const dataJson = JSON.stringify(data)
const metadataJson = JSON.stringify(metadata)

/** `count` new events with random ids and the bench's small payload. */
export const events = (count: number): ReadonlyArray<Envelope.EventData> =>
  Array.from({ length: count }, () => ({
    eventId: EventId.random(),
    type: "ItemAdded",
    schemaVersion: 1,
    data,
    metadata
  }))

const rawParams = (stream: string, count: number) =>
  Array.from({ length: count }, (_, i) => [
    stream,
    i + 1,
    crypto.randomUUID(),
    "ItemAdded",
    dataJson,
    metadataJson
  ]).flat()

/** The parameters of `eventsInsertTen` for `stream`: ten new time-ordered event ids, as `EventId.random` makes. */
const eventsParams = (stream: string) => [
  stream,
  ...Array.from({ length: 10 }, () => EventId.random()),
  dataJson,
  metadataJson
]

let streams = 0
/** A stream name no one has used in this run. */
export const newStream = (category: string) => `${category}-${++streams}`

/** The raw side's unit of work: one row in its own autocommit transaction, through a prepared statement. */
export const rawInsertOne = (sql: PgClient.PgClient) =>
  Effect.suspend(() => Effect.as(sql.unsafe(insertOne, rawParams(newStream("raw"), 1)), 1))

/** The raw side's unit of work for ten events: one 10-row INSERT in its own autocommit transaction. */
const rawInsertTen = (sql: PgClient.PgClient) =>
  Effect.suspend(() => Effect.as(sql.unsafe(insertTen, rawParams(newStream("raw"), 10)), 10))

/** The same unit of work through node-postgres (`pg.Pool`, a named prepared statement): the second raw baseline. */
export const nodeInsertOne = (pool: Bench.NodePool) =>
  Effect.suspend(() => Effect.as(Bench.nodeQuery(pool, "raw_insert_1", insertOne, rawParams(newStream("raw"), 1)), 1))

/** Chronicle's schema, the raw table and a store on a `PgClient` (the same client serves both sides). */
export const setup = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  yield* PgMigrations.run
  yield* sql.unsafe(createRawTable)
  const store = yield* PgEventStore.make()
  return { sql, store }
})

/** The append targets of issue 18, as fractions of the raw single-row INSERT's rate. */
const appendTargets = { one: { 1: 0.85, 8: 1, 32: 1 } as Record<number, number>, ten: 0.8, exact: 0.9 }

/**
 * The two rows of one append figure: beside the raw INSERT through `@effect/sql-pg` (the driver Chronicle uses) and
 * through node-postgres, both measured interleaved with Chronicle's side.
 */
const appendRows = (
  figure: string,
  result: {
    readonly ours: number
    readonly baselines: Readonly<Record<"sql-pg" | "pg", { readonly raw: number; readonly ratio: number }>>
  },
  baseline: string,
  target: number | undefined
): ReadonlyArray<Bench.Row> =>
  (["sql-pg", "pg"] as const).map((driver) =>
    Bench.row({
      figure,
      measure: Bench.eventsPerSecond,
      ours: result.ours,
      ...result.baselines[driver],
      baseline: `${baseline}, ${driver === "pg" ? "node-postgres" : "@effect/sql-pg"}`,
      ...(target === undefined ? {} : { target })
    })
  )

const appends: Bench.Section = {
  name: "eventstore.append",
  title:
    "Appends: EventStore.append beside a prepared autocommit INSERT into a plain table (@effect/sql-pg, node-postgres)",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { reps, seconds } = sizes(quick)
      const { sql, store } = yield* setup
      const pool = yield* Bench.nodePostgres(databaseUrl)
      const appendNew = (count: number) =>
        Effect.as(store.append(newStream("bench"), events(count), ExpectedVersion.noStream), count)
      const rawOne = rawInsertOne(sql)
      const nodeOne = nodeInsertOne(pool)
      const rawTen = rawInsertTen(sql)
      const nodeTen = Effect.suspend(() =>
        Effect.as(Bench.nodeQuery(pool, "raw_insert_10", insertTen, rawParams(newStream("raw"), 10)), 10)
      )
      // The same ten rows by a plain INSERT into Chronicle's table: its indexes, none of the append's checks.
      const tableTen = Effect.suspend(() =>
        Effect.as(sql.unsafe(eventsInsertTen, eventsParams(newStream("table"))), 10)
      )
      // Warm-up: opens the pools' connections and prepares the statements on them.
      yield* Bench.throughput(32, seconds / 2, () => appendNew(1))
      yield* Bench.throughput(32, seconds / 2, () => rawOne)
      yield* Bench.throughput(32, seconds / 2, () => nodeOne)

      const rows: Array<Bench.Row> = []
      for (const concurrency of [1, 8, 32]) {
        const result = yield* Bench.interleaveBaselines({
          label: `1 event, concurrency ${concurrency}`,
          measure: Bench.eventsPerSecond,
          reps,
          ours: Bench.throughput(concurrency, seconds, () => appendNew(1)),
          baselines: {
            "sql-pg": Bench.throughput(concurrency, seconds, () => rawOne),
            pg: Bench.throughput(concurrency, seconds, () => nodeOne)
          }
        })
        rows.push(
          ...appendRows(
            `append 1 event to a new stream (no stream), concurrency ${concurrency}`,
            result,
            `INSERT 1 row, concurrency ${concurrency}`,
            appendTargets.one[concurrency]
          )
        )
      }

      // 100 existing streams, split among 8 workers so that none of them conflicts with another.
      const existing = Array.from({ length: 100 }, () => ({ stream: newStream("bench"), version: 0 }))
      for (const entry of existing) {
        entry.version = (yield* store.append(entry.stream, events(1), ExpectedVersion.noStream)).version
      }
      const owned = Array.from({ length: 8 }, (_, worker) => existing.filter((_, i) => i % 8 === worker))
      let turn = 0
      const appendExact = (worker: number) =>
        Effect.suspend(() => {
          const mine = owned[worker]!
          const entry = mine[turn++ % mine.length]!
          return Effect.map(store.append(entry.stream, events(1), ExpectedVersion.exact(entry.version)), (result) => {
            entry.version = result.version
            return 1
          })
        })
      const exact = yield* Bench.interleaveBaselines({
        label: "exact version, concurrency 8",
        measure: Bench.eventsPerSecond,
        reps,
        ours: Bench.throughput(8, seconds, appendExact),
        baselines: {
          "sql-pg": Bench.throughput(8, seconds, () => rawOne),
          pg: Bench.throughput(8, seconds, () => nodeOne)
        }
      })
      rows.push(
        ...appendRows(
          "append 1 event with an exact expected version to 100 streams, concurrency 8",
          exact,
          "INSERT 1 row, concurrency 8",
          appendTargets.exact
        )
      )

      // Every writer appends to the same stream with `any`: they contend for its next version.
      const shared = newStream("bench")
      const contended = yield* Bench.interleave({
        label: "any to one stream, concurrency 8",
        measure: Bench.eventsPerSecond,
        reps,
        ours: Bench.throughput(8, seconds, () => Effect.as(store.append(shared, events(1), ExpectedVersion.any), 1)),
        raw: Bench.throughput(8, seconds, () => rawOne)
      })
      rows.push(
        Bench.row({
          figure: "append 1 event with any to one shared stream, concurrency 8",
          measure: Bench.eventsPerSecond,
          ...contended,
          baseline: "INSERT 1 row, concurrency 8, @effect/sql-pg"
        })
      )

      const batch = yield* Bench.interleaveBaselines({
        label: "10 events per call, concurrency 8",
        measure: Bench.eventsPerSecond,
        reps,
        ours: Bench.throughput(8, seconds, () => appendNew(10)),
        baselines: {
          "sql-pg": Bench.throughput(8, seconds, () => rawTen),
          pg: Bench.throughput(8, seconds, () => nodeTen),
          table: Bench.throughput(8, seconds, () => tableTen)
        }
      })
      rows.push(
        ...appendRows(
          "append 10 events per call to a new stream, concurrency 8",
          batch,
          "INSERT 10 rows per statement, concurrency 8",
          appendTargets.ten
        ),
        Bench.row({
          figure: "append 10 events per call to a new stream, concurrency 8",
          measure: Bench.eventsPerSecond,
          ours: batch.ours,
          ...batch.baselines.table,
          baseline: "the same 10 rows by a plain INSERT into Chronicle's events table (no checks), @effect/sql-pg"
        }),
        Bench.row({
          figure: "(raw variant) plain INSERT of 10 rows into Chronicle's events table, concurrency 8",
          measure: Bench.eventsPerSecond,
          ours: batch.baselines.table.raw,
          raw: batch.baselines["sql-pg"].raw,
          baseline: "INSERT 10 rows per statement into the plain table, concurrency 8, @effect/sql-pg"
        })
      )
      return rows
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}

/** Node's CPU time (user + system, every thread) per event written, in microseconds: better lower. */
const cpuPerEvent: Bench.Measure = { unit: "µs CPU/event", better: "lower" }

/** Runs `operation` like `Bench.throughput` and returns the Node CPU time it took per event written. */
const nodeCpu = <E, R>(concurrency: number, seconds: number, operation: () => Effect.Effect<number, E, R>) =>
  Effect.suspend(() => {
    const before = process.cpuUsage()
    const start = performance.now()
    return Effect.map(Bench.throughput(concurrency, seconds, operation), (rate) => {
      const used = process.cpuUsage(before)
      return (used.user + used.system) / ((rate * (performance.now() - start)) / 1000)
    })
  })

const cpu: Bench.Section = {
  name: "eventstore.cpu",
  title: "Client CPU: Node CPU per append beside the raw INSERT through @effect/sql-pg and node-postgres",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { reps, seconds } = sizes(quick)
      const { sql, store } = yield* setup
      const pool = yield* Bench.nodePostgres(databaseUrl)
      const appendOne = () => Effect.as(store.append(newStream("bench"), events(1), ExpectedVersion.noStream), 1)
      const rawOne = rawInsertOne(sql)
      const nodeOne = nodeInsertOne(pool)
      yield* Bench.throughput(8, seconds, appendOne)
      yield* Bench.throughput(8, seconds, () => rawOne)
      yield* Bench.throughput(8, seconds, () => nodeOne)
      const rows: Array<Bench.Row> = []
      for (const concurrency of [1, 8]) {
        const result = yield* Bench.interleaveBaselines({
          label: `Node CPU per event, concurrency ${concurrency}`,
          measure: cpuPerEvent,
          reps,
          ours: nodeCpu(concurrency, seconds, appendOne),
          baselines: {
            "sql-pg": nodeCpu(concurrency, seconds, () => rawOne),
            pg: nodeCpu(concurrency, seconds, () => nodeOne)
          }
        })
        const { "sql-pg": sqlPg, pg } = result.baselines
        rows.push(
          ...(["sql-pg", "pg"] as const).map((driver) =>
            Bench.row({
              figure: `Node CPU per append of 1 event (group commit on), concurrency ${concurrency}`,
              measure: cpuPerEvent,
              ours: result.ours,
              ...result.baselines[driver],
              baseline: `INSERT 1 row, ${driver === "pg" ? "node-postgres" : "@effect/sql-pg"}`
            })
          ),
          Bench.row({
            figure: `(raw variant) Node CPU per INSERT through @effect/sql-pg, concurrency ${concurrency}`,
            measure: cpuPerEvent,
            ours: sqlPg.raw,
            raw: pg.raw,
            baseline: "the same INSERT through node-postgres"
          })
        )
      }
      return rows
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}

/**
 * Fills the event table of the database behind `sql` with `count` events in transactions of 500,000 (a transaction
 * numbers at most 2^20 events), server-side from `generate_series`: 3 events per stream, stream names random
 * (`cart-<md5>`), event ids time-ordered (UUID v7, as `EventId.random` makes) in half of the streams and random
 * (as command-derived, name-based ids are) in the other half. The plain table gets as many rows.
 */
const bulkLoad = (sql: PgClient.PgClient, count: number) =>
  Effect.gen(function* () {
    const chunk = 500_000
    for (let from = 0; from < count; from += chunk) {
      yield* sql.unsafe(
        `INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
         SELECT (pg_current_xact_id()::text::bigint << 20) + g - $1, s.stream, 'cart', (g % 3) + 1,
           CASE WHEN (g / 3) % 2 = 0 THEN uuidv7() ELSE gen_random_uuid() END, 'ItemAdded', 1, $3::jsonb, $4::jsonb
         FROM generate_series($1::int8, $2::int8) g, LATERAL (SELECT 'cart-' || md5((g / 3)::text) AS stream) s`,
        [from, Math.min(from + chunk, count) - 1, dataJson, metadataJson]
      )
    }
    yield* sql.unsafe(
      `INSERT INTO raw_events (${rawColumns})
       SELECT 'cart-' || md5((g / 3)::text), (g % 3) + 1, gen_random_uuid(), 'ItemAdded', $2::jsonb, $3::jsonb
       FROM generate_series(1, $1::int8) g`,
      [count, dataJson, metadataJson]
    )
    yield* sql.unsafe("VACUUM ANALYZE chronicle_events")
    yield* sql.unsafe("VACUUM ANALYZE raw_events")
    yield* sql.unsafe("CHECKPOINT")
  })

/** The buffer reads and hits of each index of the event table so far. */
const indexBlocks = (sql: PgClient.PgClient) =>
  sql<{ name: string; read: number; hit: number; size: number }>`
    SELECT indexrelname AS name, idx_blks_read::float8 AS read, idx_blks_hit::float8 AS hit,
      pg_relation_size(indexrelid)::float8 AS size
    FROM pg_statio_user_indexes WHERE relname = 'chronicle_events' ORDER BY indexrelname`

const growth: Bench.Section = {
  name: "eventstore.growth",
  optIn: true,
  title: "Growth: appends at concurrency 8 into a table already holding 3,000,000 events beside an empty table",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { reps } = sizes(quick)
      // Windows of 10 s: a checkpoint makes the next first touch of each index page log the whole page, a burst that
      // passes within seconds; 1-s windows right after the load's CHECKPOINT measured that burst and nothing else.
      const seconds = quick ? 0.3 : 10
      const stored = quick ? 300_000 : 3_000_000
      // Two databases on the same server: this section's, left empty, and a second one filled before timing.
      const { sql: emptySql, store: empty } = yield* setup
      const fullUrl = yield* Bench.freshDatabase(databaseUrl, `${new URL(databaseUrl).pathname.slice(1)}_full`)
      const fullContext = yield* Layer.build(Bench.pgClient(fullUrl))
      const { sql: fullSql, store: full } = yield* Effect.provide(setup, fullContext)
      const loadStart = performance.now()
      yield* bulkLoad(fullSql, stored)
      const loadSeconds = (performance.now() - loadStart) / 1000
      yield* Console.log(`    loaded ${stored.toLocaleString("en-US")} events in ${loadSeconds.toFixed(0)} s`)

      // Appends as an application makes them: a random stream name (or, for the second figure, one whose id is a
      // UUID v7, so names follow time), and half of them with ids derived from a command id that is a UUID v7 (so the
      // derived ids follow time too), half with new time-ordered ids.
      let turn = 0
      const append = (store: EventStore.Service, names: "random" | "timeOrdered" = "random") =>
        Effect.suspend(() => {
          const stream = `cart-${names === "random" ? crypto.randomUUID() : EventId.random()}`
          const event = events(1)[0]!
          const eventId = turn++ % 2 === 0 ? event.eventId : EventId.fromCommand(stream, EventId.random(), 0)
          return Effect.as(store.append(stream, [{ ...event, eventId }], ExpectedVersion.noStream), 1)
        })
      yield* Bench.throughput(8, seconds, () => append(full))
      yield* Bench.throughput(8, seconds, () => append(empty))
      // WAL written per append on each side: the server writes nothing else while a side runs.
      const wal = { full: { bytes: 0, events: 0 }, empty: { bytes: 0, events: 0 } }
      const walPosition = Effect.map(
        emptySql<{ lsn: number }>`SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::float8 AS lsn`,
        ([row]) => row?.lsn ?? 0
      )
      const timed = (side: keyof typeof wal, store: EventStore.Service) =>
        Effect.gen(function* () {
          const from = yield* walPosition
          const start = performance.now()
          const rate = yield* Bench.throughput(8, seconds, () => append(store))
          wal[side].events += (rate * (performance.now() - start)) / 1000
          wal[side].bytes += (yield* walPosition) - from
          return rate
        })
      const before = yield* indexBlocks(fullSql)
      const appended = yield* Bench.interleave({
        label: "append, concurrency 8, full vs empty",
        measure: Bench.eventsPerSecond,
        reps,
        ours: timed("full", full),
        raw: timed("empty", empty)
      })
      const walPer = (side: keyof typeof wal) => Math.round(wal[side].bytes / Math.max(1, wal[side].events))
      const after = yield* indexBlocks(fullSql)
      const timeOrdered = yield* Bench.interleave({
        label: "append with time-ordered stream names, concurrency 8, full vs empty",
        measure: Bench.eventsPerSecond,
        reps,
        ours: Bench.throughput(8, seconds, () => append(full, "timeOrdered")),
        raw: Bench.throughput(8, seconds, () => append(empty, "timeOrdered"))
      })
      const raw = yield* Bench.interleave({
        label: "raw INSERT, concurrency 8, full vs empty",
        measure: Bench.eventsPerSecond,
        reps,
        ours: Bench.throughput(8, seconds, () => rawInsertOne(fullSql)),
        raw: Bench.throughput(8, seconds, () => rawInsertOne(emptySql))
      })
      // Per index: its size, and the pages it read from outside shared buffers and touched per 1,000 appends.
      const timedAppends = (appended.ours * seconds * reps) / 1000
      const indexes = after
        .map((index) => {
          const was = before.find((b) => b.name === index.name)
          const read = (index.read - (was?.read ?? 0)) / timedAppends
          const touched = (index.read + index.hit - (was?.read ?? 0) - (was?.hit ?? 0)) / timedAppends
          return `${index.name.replace("chronicle_events_", "")} ${Math.round(index.size / 2 ** 20)} MB, ${read.toFixed(0)} read / ${touched.toFixed(0)} touched`
        })
        .join("; ")
      const count = stored.toLocaleString("en-US")
      return [
        Bench.row({
          figure: `append 1 event (random stream name, half ids derived from UUID v7 command ids), concurrency 8, ${count} events stored`,
          measure: Bench.eventsPerSecond,
          ...appended,
          baseline: "the same appends into an empty table",
          target: 0.95,
          note: `loaded in ${loadSeconds.toFixed(0)} s; WAL per append ${walPer("full")} B full, ${walPer("empty")} B empty; per index: size, pages read from outside shared buffers / touched per 1,000 appends: ${indexes}`
        }),
        Bench.row({
          figure: `append 1 event (stream names cart-<UUID v7>, so they follow time; ids as above), concurrency 8, ${count} events stored`,
          measure: Bench.eventsPerSecond,
          ...timeOrdered,
          baseline: "the same appends into an empty table"
        }),
        Bench.row({
          figure: `(raw variant) INSERT 1 row into the plain table holding ${count} rows, concurrency 8`,
          measure: Bench.eventsPerSecond,
          ...raw,
          baseline: "the same INSERT into an empty plain table"
        })
      ]
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}

/** A counter: the smallest aggregate, so that loading measures the store and not the domain. */
const Incremented = Schema.TaggedStruct("Incremented", { by: Schema.Int })
const Increment = Schema.TaggedStruct("Increment", { by: Schema.Int })
const Counter = Aggregate.make({
  category: "counter",
  commands: Increment,
  events: Incremented,
  decider: Decider.make({
    initialState: 0,
    decide: (command: typeof Increment.Type, _: number) => Result.succeed([Incremented.make({ by: command.by })]),
    evolve: (total: number, event: typeof Incremented.Type) => total + event.by
  })
})

const load: Bench.Section = {
  name: "eventstore.load",
  title: "Load: AggregateLoader.load of a long stream beside one SELECT of its rows",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { loadEvents, loadReps } = sizes(quick)
      const { sql, store } = yield* setup
      const id = crypto.randomUUID()
      const stream = `counter-${id}`
      for (let version = 0; version < loadEvents; version += 100) {
        const batch = Array.from({ length: 100 }, () => ({
          eventId: EventId.random(),
          type: "Incremented",
          schemaVersion: 1,
          data: { by: 1 },
          metadata
        }))
        yield* store.append(stream, batch, ExpectedVersion.exact(version))
      }
      const ours = AggregateLoader.load(Counter, id).pipe(
        Effect.provideService(EventStore.EventStore, store),
        Effect.flatMap((loaded) =>
          loaded.state === loadEvents ? Effect.void : Effect.die(new Error(`loaded ${loaded.state} of ${loadEvents}`))
        )
      )
      const raw = sql.unsafe(`SELECT ${eventColumns} FROM chronicle_events WHERE stream_id = $1 ORDER BY version`, [
        stream
      ])
      // Warm-up: lets the JIT compile the decode and fold paths before anything is timed.
      yield* Effect.repeat(Effect.andThen(ours, raw), { times: 4 })
      const result = yield* Bench.interleave({
        label: `load ${loadEvents}`,
        measure: Bench.milliseconds,
        reps: loadReps,
        ours: Bench.elapsed(ours),
        raw: Bench.elapsed(raw)
      })
      return [
        Bench.row({
          figure: `load a ${loadEvents.toLocaleString("en-US")}-event aggregate (no snapshot)`,
          measure: Bench.milliseconds,
          ...result,
          baseline: "SELECT the stream's rows ORDER BY version",
          target: 1 / 1.2
        })
      ]
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}

const readAll: Bench.Section = {
  name: "eventstore.readall",
  title: "Read all: EventStore.readAll of the global log beside a keyset SELECT of the same rows",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { reps, readAllEvents } = sizes(quick)
      const pageSize = EventStore.defaultPageSize
      const { sql, store } = yield* setup
      const written = new Set<string>()
      yield* Effect.forEach(
        Array.from({ length: readAllEvents / 10 }, (_, k) => k),
        () => {
          const batch = events(10)
          for (const event of batch) written.add(event.eventId)
          return store.append(newStream("readall"), batch, ExpectedVersion.noStream)
        },
        { concurrency: 8, discard: true }
      )

      // Exactness, checked apart from the timed reads: every event once, positions strictly increasing.
      const seen = new Set<string>()
      let last = 0n
      let problems = 0
      yield* Stream.runForEachArray(store.readAll({ pageSize }), (page) =>
        Effect.sync(() => {
          for (const event of page) {
            if (event.position <= last || !written.has(event.eventId) || seen.has(event.eventId)) problems++
            seen.add(event.eventId)
            last = event.position
          }
        })
      )
      const exact = problems === 0 && seen.size === written.size
      const note = `${exact ? "exact" : "NOT EXACT"}: read ${seen.size.toLocaleString("en-US")} of ${written.size.toLocaleString("en-US")} events written by 8 concurrent appenders, ${problems} out of order, repeated or unknown`
      yield* Effect.log(note)

      const ours = Stream.runForEachArray(store.readAll({ pageSize }), () => Effect.void)
      const raw = Effect.gen(function* () {
        let after = 0n
        for (;;) {
          const page = yield* sql.unsafe<{ global_position: bigint }>(
            `SELECT ${eventColumns} FROM chronicle_events WHERE global_position > $1 ORDER BY global_position LIMIT $2`,
            [after, pageSize]
          )
          if (page.length < pageSize) return
          after = page.at(-1)!.global_position
        }
      })
      const rate = (effect: Effect.Effect<void, unknown>) =>
        Effect.map(Bench.elapsed(effect), (ms) => (readAllEvents * 1000) / ms)
      const result = yield* Bench.interleave({
        label: `read all ${readAllEvents}`,
        measure: Bench.eventsPerSecond,
        reps,
        ours: rate(ours),
        raw: rate(raw)
      })
      return [
        Bench.row({
          figure: `read all ${readAllEvents.toLocaleString("en-US")} events in global order`,
          measure: Bench.eventsPerSecond,
          ...result,
          baseline: `keyset SELECT, pages of ${pageSize}`,
          target: 0.5,
          note
        })
      ]
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}

const notify: Bench.Section = {
  name: "eventstore.notify",
  title: "NOTIFY in the writing transaction: raw INSERT with and without pg_notify, concurrency 8",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { reps, seconds } = sizes(quick)
      const sql = yield* PgClient.PgClient
      yield* sql.unsafe(createRawTable)
      // A listener, as a subscribing app would have: NOTIFY's cost includes delivering to it.
      const notifications = yield* sql.listen("bench_events")
      yield* Effect.forkScoped(Effect.forever(Queue.take(notifications)))
      const insert = rawInsertOne(sql)
      const insertNotify = Effect.suspend(() =>
        Effect.as(
          sql.unsafe(
            `WITH inserted AS (${insertOne} RETURNING stream_id) SELECT pg_notify('bench_events', stream_id) FROM inserted`,
            rawParams(newStream("raw"), 1)
          ),
          1
        )
      )
      const transaction = Effect.suspend(() =>
        Effect.as(
          sql.withTransaction(
            Effect.andThen(
              sql.unsafe(insertOne, rawParams(newStream("raw"), 1)),
              sql.unsafe("SELECT pg_notify('bench_events', $1)", ["raw"])
            )
          ),
          1
        )
      )
      yield* Bench.throughput(8, seconds / 2, () => insertNotify)
      yield* Bench.throughput(8, seconds / 2, () => transaction)

      const oneStatement = yield* Bench.interleave({
        label: "INSERT + pg_notify in one statement",
        measure: Bench.eventsPerSecond,
        reps,
        ours: Bench.throughput(8, seconds, () => insertNotify),
        raw: Bench.throughput(8, seconds, () => insert)
      })
      const twoStatements = yield* Bench.interleave({
        label: "BEGIN; INSERT; pg_notify; COMMIT",
        measure: Bench.eventsPerSecond,
        reps,
        ours: Bench.throughput(8, seconds, () => transaction),
        raw: Bench.throughput(8, seconds, () => insert)
      })
      return [
        Bench.row({
          figure: "(raw variant) INSERT + pg_notify in one statement, concurrency 8",
          measure: Bench.eventsPerSecond,
          ...oneStatement,
          baseline: "INSERT 1 row, concurrency 8"
        }),
        Bench.row({
          figure: "(raw variant) BEGIN; INSERT; SELECT pg_notify; COMMIT, concurrency 8",
          measure: Bench.eventsPerSecond,
          ...twoStatements,
          baseline: "INSERT 1 row, concurrency 8"
        })
      ]
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}

/** The event store's sections, in the order they run. */
/** The p50 and p99 of some latencies, in milliseconds. */
const percentiles = (latencies: Array<number>) => {
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  return `${at(0.5).toFixed(1)}/${at(0.99).toFixed(1)} ms`
}

/** The batch sizes group commit formed for `category`: events per transaction, from the positions' transaction ids. */
const batchSizes = (sql: PgClient.PgClient, category: string) =>
  Effect.map(
    sql<{ mean: number; p50: number; largest: number }>`
      SELECT avg(n)::float8 AS mean, percentile_disc(0.5) WITHIN GROUP (ORDER BY n)::int4 AS p50,
        max(n)::int4 AS largest
      FROM (SELECT count(*) AS n FROM chronicle_events WHERE category = ${category} GROUP BY global_position >> 20) t`,
    ([batches]) => `mean ${(batches?.mean ?? 0).toFixed(1)}, median ${batches?.p50 ?? 0}, max ${batches?.largest ?? 0}`
  )

const groupCommit: Bench.Section = {
  name: "eventstore.groupcommit",
  title:
    "Group commit: appends with it on beside off, off beside the raw INSERT, one round trip in flight beside the default two; latency and batch sizes",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { reps, seconds } = sizes(quick)
      const { sql, store: on } = yield* setup
      const off = yield* PgEventStore.make({ groupCommit: false })
      const one = yield* PgEventStore.make({ groupCommit: { inFlight: 1 } })
      const rawOne = rawInsertOne(sql)
      const appendWith = (store: EventStore.Service, category: string, latencies: Array<number>, count = 1) =>
        Effect.suspend(() => {
          const start = performance.now()
          return Effect.map(store.append(newStream(category), events(count), ExpectedVersion.noStream), () => {
            latencies.push(performance.now() - start)
            return count
          })
        })
      yield* Bench.throughput(32, seconds / 2, () => appendWith(off, "warm", []))
      yield* Bench.throughput(32, seconds / 2, () => appendWith(on, "warm", []))
      yield* Bench.throughput(32, seconds / 2, () => appendWith(one, "warm", []))
      yield* Bench.throughput(32, seconds / 2, () => rawOne)
      const rows: Array<Bench.Row> = []
      for (const concurrency of [1, 8, 32]) {
        // Latencies of every timed append on and off, taken interleaved, so a neighbour's load hits both alike.
        const [latencyOn, latencyOff, latencyOne]: [Array<number>, Array<number>, Array<number>] = [[], [], []]
        const category = `on${concurrency}`
        const result = yield* Bench.interleaveBaselines({
          label: `group commit on vs off, concurrency ${concurrency}`,
          measure: Bench.eventsPerSecond,
          reps,
          ours: Bench.throughput(concurrency, seconds, () => appendWith(on, category, latencyOn)),
          baselines: {
            off: Bench.throughput(concurrency, seconds, () => appendWith(off, "off", latencyOff)),
            raw: Bench.throughput(concurrency, seconds, () => rawOne),
            one: Bench.throughput(concurrency, seconds, () => appendWith(one, "one", latencyOne))
          }
        })
        const batches = yield* batchSizes(sql, category)
        rows.push(
          Bench.row({
            figure: `append 1 event to a new stream, group commit on, concurrency ${concurrency}`,
            measure: Bench.eventsPerSecond,
            ours: result.ours,
            ...result.baselines.off,
            baseline: "the same with group commit off",
            note: `p50/p99 latency on ${percentiles(latencyOn)}, off ${percentiles(latencyOff)}; events per transaction on: ${batches}`
          }),
          Bench.row({
            figure: `append 1 event to a new stream, group commit off, concurrency ${concurrency}`,
            measure: Bench.eventsPerSecond,
            ours: result.baselines.off.raw,
            raw: result.baselines.raw.raw,
            baseline: `INSERT 1 row, concurrency ${concurrency}, @effect/sql-pg`
          }),
          Bench.row({
            figure: `append 1 event to a new stream, group commit on, concurrency ${concurrency}`,
            measure: Bench.eventsPerSecond,
            ours: result.ours,
            ...result.baselines.one,
            baseline: "the same with 1 round trip in flight (inFlight: 1)",
            note: `p50/p99 latency 1 in flight ${percentiles(latencyOne)}`
          })
        )
      }
      // Ten events per call, where a round of many events keeps one backend busy: two in flight use two.
      const rawTen = rawInsertTen(sql)
      for (const concurrency of [8, 32]) {
        const [latencyTwo, latencyOne]: [Array<number>, Array<number>] = [[], []]
        const category = `ten${concurrency}`
        const ten = yield* Bench.interleaveBaselines({
          label: `10 events per call, 2 in flight vs 1, concurrency ${concurrency}`,
          measure: Bench.eventsPerSecond,
          reps,
          ours: Bench.throughput(concurrency, seconds, () => appendWith(on, category, latencyTwo, 10)),
          baselines: {
            one: Bench.throughput(concurrency, seconds, () => appendWith(one, "one", latencyOne, 10)),
            raw: Bench.throughput(concurrency, seconds, () => rawTen)
          }
        })
        const batches = yield* batchSizes(sql, category)
        rows.push(
          Bench.row({
            figure: `append 10 events per call, group commit on, concurrency ${concurrency}`,
            measure: Bench.eventsPerSecond,
            ours: ten.ours,
            ...ten.baselines.one,
            baseline: "the same with 1 round trip in flight (inFlight: 1)",
            note: `p50/p99 latency 2 in flight ${percentiles(latencyTwo)}, 1 in flight ${percentiles(latencyOne)}; events per transaction: ${batches}`
          }),
          Bench.row({
            figure: `append 10 events per call, group commit on, concurrency ${concurrency}`,
            measure: Bench.eventsPerSecond,
            ours: ten.ours,
            ...ten.baselines.raw,
            baseline: `INSERT 10 rows per statement, concurrency ${concurrency}, @effect/sql-pg`
          })
        )
      }
      return rows
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}

export const sections: ReadonlyArray<Bench.Section> = [appends, groupCommit, cpu, growth, load, readAll, notify]
