/**
 * Projection catch-up: 100,000 events folded in memory through `ProjectionRunner.catchUp` beside the same events
 * read and folded by hand (the raw limit of the runner's reading and batching), and written into a Postgres read
 * model through `PgProjection` (batch, checkpoint and model in one transaction) beside a raw batched upsert of the
 * same rows; then the heap while catching up over 1,000,000 events (before, peak, after) to show that memory stays
 * flat.
 */
import {
  CheckpointStore,
  DeadLetters,
  type Envelope,
  EventStore,
  ExpectedVersion,
  Projection,
  ProjectionRunner
} from "@chronicle/core"
import { PgCheckpointStore, PgDeadLetters, PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { Array as Arr, Effect, Layer, Stream } from "effect"
import { SqlClient } from "effect/sql"
import * as Bench from "./Bench.ts"

const batch = 1_000
const megabytes: Bench.Measure = { unit: "MB", better: "lower" }

const event = (i: number): Envelope.EventData => ({
  eventId: crypto.randomUUID(),
  type: "Ticked",
  schemaVersion: 1,
  data: { n: i % 100 },
  metadata: {}
})

/** Appends `count` events in appends of 1,000 to streams `<category>-<k>`. */
const fill = (category: string, count: number) =>
  EventStore.EventStore.use((store) =>
    Effect.forEach(
      Array.from({ length: count / batch }, (_, s) => s),
      (s) =>
        store.append(
          `${category}-${s}`,
          Array.from({ length: batch }, (_, i) => event(s * batch + i)),
          ExpectedVersion.noStream
        ),
      { concurrency: 8, discard: true }
    )
  )

/** Folds the `n` of every event: the in-memory read model. */
const folding = (name: string, category: string, total: { value: number }) =>
  Projection.make({
    name,
    categories: [category],
    decode: Projection.recorded,
    batchSize: batch,
    handle: (events) =>
      Stream.runForEach(events, (e) =>
        Effect.sync(() => {
          total.value += (e.data as { n: number }).n
        })
      )
  })

/** Counts events per stream: the Postgres read model, one upsert per batch of the per-stream counts. */
const upsertCounts = (table: string, events: ReadonlyArray<Envelope.RecordedEvent>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const counts = new Map<string, number>()
    for (const e of events) counts.set(e.stream, (counts.get(e.stream) ?? 0) + (e.data as { n: number }).n)
    const rows = [...counts].map(([stream, n]) => ({ stream, n }))
    if (!Arr.isArrayNonEmpty(rows)) return
    yield* sql`INSERT INTO ${sql(table)} ${sql.insert(rows)}
               ON CONFLICT (stream) DO UPDATE SET n = ${sql(table)}.n + excluded.n`
  })

const readModel = (category: string) =>
  PgProjection.make({
    name: `counts-${category}`,
    table: `counts_${category}`,
    categories: [category],
    decode: Projection.recorded,
    batchSize: batch,
    create: (table) =>
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`CREATE TABLE ${sql(table)} (stream text PRIMARY KEY, n bigint NOT NULL)`
      ),
    handle: (table) => (events) => Effect.flatMap(Stream.runCollect(events), (all) => upsertCounts(table, all))
  })

const Memory = Layer.mergeAll(CheckpointStore.layerMemory, DeadLetters.layerMemory)

const catchUp: Bench.Section = {
  name: "projections.catchup",
  title: "Projection catch-up: in-memory fold and Postgres read model beside their raw limits",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      yield* PgMigrations.run
      const count = quick ? 10_000 : 100_000
      const reps = quick ? 2 : 3
      yield* fill("tick", count)
      const store = yield* EventStore.EventStore
      let run = 0
      const memory = yield* Bench.interleave({
        label: "in-memory fold",
        measure: Bench.eventsPerSecond,
        reps,
        ours: Bench.elapsed(
          ProjectionRunner.catchUp(folding(`fold-${run++}`, "tick", { value: 0 })).pipe(Effect.provide(Memory))
        ).pipe(Effect.map((ms) => (count * 1000) / ms)),
        raw: Bench.elapsed(
          Stream.runForEachArray(store.readAll({ categories: ["tick"], pageSize: batch }), (page) =>
            Effect.sync(() => page.reduce((sum, e) => sum + (e.data as { n: number }).n, 0))
          )
        ).pipe(Effect.map((ms) => (count * 1000) / ms))
      })
      const sql = yield* SqlClient.SqlClient
      const pg = yield* Bench.interleave({
        label: "Postgres read model",
        measure: Bench.eventsPerSecond,
        reps,
        ours: Effect.gen(function* () {
          const model = { ...readModel("tick"), name: `counts-tick-${run++}` }
          yield* model.create(model.table).pipe(Effect.andThen(sql`TRUNCATE ${sql(model.table)}`), Effect.ignore)
          const ms = yield* Bench.elapsed(
            ProjectionRunner.catchUp(PgProjection.projection(model), { transaction: yield* PgProjection.transaction })
          )
          yield* sql`DROP TABLE ${sql(model.table)}`
          return (count * 1000) / ms
        }),
        raw: Effect.gen(function* () {
          yield* sql`CREATE TABLE raw_counts (stream text PRIMARY KEY, n bigint NOT NULL)`
          const ms = yield* Bench.elapsed(
            Stream.runForEachArray(store.readAll({ categories: ["tick"], pageSize: batch }), (page) =>
              sql.withTransaction(upsertCounts("raw_counts", page))
            )
          )
          yield* sql`DROP TABLE raw_counts`
          return (count * 1000) / ms
        })
      })
      return [
        Bench.row({
          figure: `catch-up of ${count.toLocaleString("en-US")} events into an in-memory fold`,
          measure: Bench.eventsPerSecond,
          ours: memory.ours,
          baseline: "read + fold by hand",
          raw: memory.raw,
          note: `target ≥ 100,000 events/s: ${Math.round(memory.ours).toLocaleString("en-US")}`
        }),
        Bench.row({
          figure: `catch-up of ${count.toLocaleString("en-US")} events into a Postgres read model`,
          measure: Bench.eventsPerSecond,
          ours: pg.ours,
          baseline: "read + batched upsert",
          raw: pg.raw,
          target: 0.5
        })
      ]
    }).pipe(
      Effect.provide(
        Layer.mergeAll(PgEventStore.layer(), PgCheckpointStore.layer, PgDeadLetters.layer).pipe(
          Layer.provideMerge(Bench.pgClient(databaseUrl))
        )
      ),
      Effect.scoped
    )
}

const flat: Bench.Section = {
  name: "projections.memory",
  title: "Projection catch-up over 1,000,000 events: heap before, peak and after",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      yield* PgMigrations.run
      const count = quick ? 50_000 : 1_000_000
      yield* fill("big", count)
      globalThis.gc?.()
      const before = process.memoryUsage().heapUsed / 1_048_576
      let peak = before
      yield* ProjectionRunner.catchUp(folding("big", "big", { value: 0 }), {
        total: () => Effect.succeed(count),
        onProgress: () =>
          Effect.sync(() => {
            peak = Math.max(peak, process.memoryUsage().heapUsed / 1_048_576)
          })
      }).pipe(Effect.provide(Memory))
      globalThis.gc?.()
      const after = process.memoryUsage().heapUsed / 1_048_576
      return [
        Bench.row({
          figure: `peak heap while catching up over ${count.toLocaleString("en-US")} events`,
          measure: megabytes,
          ours: peak,
          baseline: "heap before",
          raw: before,
          note: `heap before ${before.toFixed(1)} MB, peak ${peak.toFixed(1)} MB, after ${after.toFixed(1)} MB`
        })
      ]
    }).pipe(Effect.provide(PgEventStore.layer().pipe(Layer.provideMerge(Bench.pgClient(databaseUrl)))), Effect.scoped)
}

/** The projection sections. */
export const sections: ReadonlyArray<Bench.Section> = [catchUp, flat]
