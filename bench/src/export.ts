/**
 * The cost of exporting the log for analysis: `Export.run` writing 100,000 events to Parquet (read page by page,
 * staged in DuckDB, written with zstd), beside a plain read of the same events through the event store. The ratio is
 * the share of an export's time that reading the log takes.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Export } from "@chronicle/cli"
import { EventStore } from "@chronicle/core"
import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { Effect, Layer, Stream } from "effect"
import { SqlClient } from "effect/sql"
import * as Bench from "./Bench.ts"

const toParquet: Bench.Section = {
  name: "export.parquet",
  title: "Export: the log to a Parquet file beside a plain read of the same events",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const count = quick ? 10_000 : 100_000
      const reps = quick ? 2 : 5
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`
        INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
        SELECT (pg_current_xact_id()::text::bigint << 20) + g, 'cart-' || (g % 1000), 'cart', g / 1000 + 1,
          gen_random_uuid(), 'ItemAdded', 1, jsonb_build_object('sku', 'sku-' || (g % 500), 'quantity', g % 9 + 1),
          jsonb_build_object('correlationId', gen_random_uuid())
        FROM generate_series(0, ${count - 1}) g`)
      const store = yield* EventStore.EventStore
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "chronicle-bench-export-"))),
        (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
      )
      const file = join(dir, "log.parquet")
      const result = yield* Bench.interleave({
        label: `export ${count} to Parquet`,
        measure: Bench.milliseconds,
        reps,
        ours: Bench.elapsed(Export.run({ file, format: "parquet" })),
        raw: Bench.elapsed(Stream.runDrain(store.readAll()))
      })
      return [
        Bench.row({
          figure: `export ${count.toLocaleString("en-US")} events to Parquet`,
          measure: Bench.milliseconds,
          ...result,
          baseline: "a plain read of the same events (EventStore.readAll)",
          note: `${((count / result.ours) * 1000).toLocaleString("en-US", { maximumFractionDigits: 0 })} events/s exported`
        })
      ]
    }).pipe(
      Effect.scoped,
      Effect.provide(
        PgEventStore.layer().pipe(
          Layer.provideMerge(PgMigrations.layer),
          Layer.provideMerge(Bench.pgClient(databaseUrl))
        )
      )
    )
}

/** The export section. */
export const sections: ReadonlyArray<Bench.Section> = [toParquet]
