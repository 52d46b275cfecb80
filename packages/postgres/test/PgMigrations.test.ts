import { Partition } from "@chronicle/core"
import { PgMigrations } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Migrator, SqlClient } from "effect/sql"

/** Applies the migrations up to and including number `last`, as a database that last upgraded then would be. */
const migrateTo = (last: number) =>
  Migrator.make({})({
    table: "chronicle_migrations",
    loader: Migrator.fromRecord(
      Object.fromEntries(Object.entries(PgMigrations.migrations).filter(([id]) => Number.parseInt(id, 10) <= last))
    )
  })

/** The partition index's definition, if it exists, and whether it is valid. */
const partitionIndex = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ definition: string; valid: boolean }>`
    SELECT pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid AS valid
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relname = 'chronicle_events_stream_bucket'`
).pipe(Effect.map(([row]) => row))

const fill = (events: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`
      INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
      SELECT g, 'cart-' || g, 'cart', 1, gen_random_uuid(), 'ItemAdded', 1, '{}', '{}'
      FROM generate_series(1, ${events}::int) g`
  )

/** Any Unicode code point a Postgres text can hold: not NUL, not a surrogate; mostly ASCII, some far beyond. */
const codePoint = Schema.Union([
  Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 0x7f })),
  Schema.Int.check(Schema.isBetween({ minimum: 0x80, maximum: 0xd7ff })),
  Schema.Int.check(Schema.isBetween({ minimum: 0xe000, maximum: 0x10ffff }))
])

describe("PgMigrations", () => {
  it.effect(
    "8 drops the stored stream hash without rewriting the events table, and no partition index without partitions",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* migrateTo(7)
        yield* fill(1000)
        yield* sql`INSERT INTO chronicle_checkpoints (projection, position) VALUES ('totals', 0), ('a#b/c', 0)`
        const file = sql<{
          node: number
        }>`SELECT relfilenode::int AS node FROM pg_class WHERE relname = 'chronicle_events'`
        const [before] = yield* file
        assert.deepStrictEqual(
          (yield* PgMigrations.run).map(([id, name]) => `${id}_${name}`),
          ["8_partition_index_opt_in"]
        )
        const [after] = yield* file
        assert.strictEqual(after?.node, before?.node, "the table kept its file: it was not rewritten")
        const columns = yield* sql<{ name: string }>`
          SELECT attname AS name FROM pg_attribute
          WHERE attrelid = 'chronicle_events'::regclass AND attnum > 0 AND NOT attisdropped AND attname = 'stream_hash'`
        assert.deepStrictEqual(columns, [])
        assert.isUndefined(yield* partitionIndex)
        // Every event still reads in full, and the bucket function agrees with core.
        const rows = yield* sql<{ stream: string; bucket: number }>`
          SELECT stream_id AS stream, chronicle_stream_bucket(stream_id) AS bucket FROM chronicle_events`
        assert.strictEqual(rows.length, 1000)
        for (const row of rows) assert.strictEqual(row.bucket, Partition.bucketOf(row.stream), row.stream)
      }).pipe(Effect.provide(PgTest.layer()))
  )

  it.effect("8 keeps the partition index, on the bucket function, for a database whose followers are partitioned", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* migrateTo(7)
      yield* fill(100)
      yield* sql`INSERT INTO chronicle_checkpoints (projection, position) VALUES ('cart-totals#3/8', 0)`
      yield* PgMigrations.run
      const index = yield* partitionIndex
      assert.isTrue(index?.valid)
      assert.include(index?.definition, "(chronicle_stream_bucket(stream_id), global_position)")
    }).pipe(Effect.provide(PgTest.layer()))
  )

  it.live(
    "partitionIndex builds the index once when several instances run it at once, over what a failed build left",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* PgMigrations.run
        yield* fill(100)
        // A concurrent build that failed (here on duplicate keys) leaves an invalid index under the name.
        const failed = yield* sql
          .unsafe(`CREATE UNIQUE INDEX CONCURRENTLY chronicle_events_stream_bucket
                   ON chronicle_events (chronicle_stream_bucket(stream_id))`)
          .pipe(Effect.flip)
        assert.strictEqual(failed._tag, "SqlError")
        assert.isFalse((yield* partitionIndex)?.valid)
        yield* Effect.all([PgMigrations.partitionIndex, PgMigrations.partitionIndex, PgMigrations.partitionIndex], {
          concurrency: "unbounded"
        })
        const index = yield* partitionIndex
        assert.isTrue(index?.valid)
        assert.notInclude(index?.definition, "UNIQUE")
        assert.include(index?.definition, "(chronicle_stream_bucket(stream_id), global_position)")
        // Again: nothing to do.
        yield* PgMigrations.partitionIndex
        assert.deepStrictEqual(yield* partitionIndex, index)
      }).pipe(Effect.provide(PgTest.layer()))
  )
})

layer(PgTest.layerMigrated(PgMigrations.layer, { maxConnections: 2 }), { excludeTestServices: true })(
  "chronicle_stream_bucket",
  (it) => {
    it.effect.prop(
      "is core's Partition.bucketOf for any stream name",
      [Schema.Array(Schema.Array(codePoint))],
      ([generated]) =>
        Effect.gen(function* () {
          const sql = yield* PgClient.PgClient
          const names = generated.map((points) => String.fromCodePoint(...points))
          const rows = yield* sql.unsafe<{ bucket: number }>(
            `SELECT chronicle_stream_bucket(name) AS bucket FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i)
             ORDER BY i`,
            [names]
          )
          assert.deepStrictEqual(
            rows.map((row) => row.bucket),
            names.map(Partition.bucketOf)
          )
        }),
      { arbitrary: { runs: 50 } }
    )
  }
)
