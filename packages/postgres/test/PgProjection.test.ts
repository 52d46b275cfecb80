import { EventId, EventStore, ExpectedVersion, Projection, ProjectionRunner } from "@chronicle/core"
import { PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Array as Arr, Effect, Fiber, Layer, Ref, Result, Stream } from "effect"
import { SqlClient } from "effect/sql"

const Live = Layer.mergeAll(PgEventStore.layer(), PgProjection.layerServices()).pipe(
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer))
)

/** A read model counting the events of each stream of `category`, in `table`. */
const counting = (name: string, table: string, category: string) =>
  PgProjection.make({
    name,
    table,
    categories: [category],
    decode: Projection.recorded,
    batchSize: 25,
    create: (table) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE ${sql(table)} (stream text PRIMARY KEY, n int)`),
    handle: (table) => (events) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        events.pipe(
          Stream.runForEach((event) =>
            sql`INSERT INTO ${sql(table)} (stream, n) VALUES (${event.stream}, 1)
                ON CONFLICT (stream) DO UPDATE SET n = excluded.n + (SELECT n FROM ${sql(table)} WHERE stream = ${event.stream})`.pipe(
              Effect.asVoid
            )
          )
        )
      )
  })

const appendTo = (category: string, count: number) =>
  EventStore.EventStore.use((store) =>
    Effect.forEach(Arr.range(1, count), (i) =>
      store.append(
        `${category}-${i % 7}`,
        [{ eventId: EventId.random(), type: "Ticked", schemaVersion: 1, data: { i }, metadata: {} }],
        ExpectedVersion.any
      )
    )
  )

/** The rows `model` must hold: the log counted by SQL. */
const replayOf = (category: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ stream: string; n: number }>`
      SELECT stream_id AS stream, count(*)::int AS n FROM chronicle_events WHERE category = ${category}
      GROUP BY stream_id ORDER BY stream_id`
  )
const rowsOf = (table: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ stream: string; n: number }>`SELECT stream, n FROM ${sql(table)} ORDER BY stream`
  )
const tablesLike = (pattern: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{
        name: string
      }>`SELECT schemaname || '.' || tablename AS name FROM pg_tables WHERE tablename LIKE ${pattern}`,
      (rows) => rows.map((row) => row.name).sort()
    )
  )

/**
 * Rebuilds `model` while its runner and a writer run and a reader queries the live table without pause: the reader
 * must never fail (a missing table) nor see fewer rows than before; afterwards the model equals a replay.
 */
const rebuildUnderReads = (model: ReturnType<typeof counting>, category: string) =>
  Effect.gen(function* () {
    yield* appendTo(category, 60)
    const runner = yield* PgProjection.start(model)
    yield* runner.awaitCaughtUp
    const before = (yield* rowsOf(model.table)).length
    const stop = yield* Ref.make(false)
    const seen = yield* Ref.make({ reads: 0, fewest: before, errors: [] as Array<string> })
    const reader = yield* Effect.forkChild(
      Effect.gen(function* () {
        while (!(yield* Ref.get(stop))) {
          const read = yield* Effect.result(rowsOf(model.table))
          yield* Ref.update(seen, (s) =>
            Result.isSuccess(read)
              ? { ...s, reads: s.reads + 1, fewest: Math.min(s.fewest, read.success.length) }
              : { ...s, errors: [...s.errors, read.failure.message] }
          )
        }
      })
    )
    const writer = yield* Effect.forkChild(appendTo(category, 40))
    yield* PgProjection.rebuild(model)
    yield* Fiber.join(writer)
    yield* Ref.set(stop, true)
    yield* Fiber.join(reader)
    const { reads, fewest, errors } = yield* Ref.get(seen)
    assert.deepStrictEqual(errors, [])
    assert.isAbove(reads, 0)
    assert.isAtLeast(fewest, before)
    yield* runner.awaitCaughtUp
    assert.deepStrictEqual(yield* rowsOf(model.table), yield* replayOf(category))
  }).pipe(Effect.scoped)

layer(Live, { excludeTestServices: true })("PgProjection", (it) => {
  it.effect("a model whose table name needs quoting starts again on the table it created", () =>
    Effect.gen(function* () {
      const model = PgProjection.make({
        name: "quoted",
        table: "CartTotals",
        categories: ["quoted"],
        decode: Projection.recorded,
        create: (table) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE ${sql(table)} (n int)`),
        handle: () => Stream.runDrain
      })
      yield* Effect.scoped(PgProjection.start(model))
      yield* Effect.scoped(PgProjection.start(model))
      const sql = yield* SqlClient.SqlClient
      const tables = yield* sql<{
        name: string
      }>`SELECT tablename AS name FROM pg_tables WHERE tablename = 'CartTotals'`
      assert.deepStrictEqual(tables, [{ name: "CartTotals" }])
    })
  )

  it.effect(
    "a name or table Postgres would cut, refuse or misread fails start, rebuild, reset and layerInline before any I/O",
    () =>
      Effect.gen(function* () {
        const reasonOf = (name: string, table: string) =>
          Effect.gen(function* () {
            const model = counting(name, table, "badname")
            const started = yield* Effect.flip(Effect.scoped(PgProjection.start(model)))
            const rebuilt = yield* Effect.flip(PgProjection.rebuild(model))
            const reset = yield* Effect.flip(PgProjection.projection(model).reset)
            const inline = yield* Effect.flip(Effect.scoped(Layer.build(PgProjection.layerInline([model]))))
            assert.strictEqual(started._tag, "InvalidReadModel")
            assert.deepStrictEqual(rebuilt, started as unknown)
            assert.deepStrictEqual(reset, started as unknown)
            assert.deepStrictEqual(inline, started as unknown)
            return started._tag === "InvalidReadModel" ? started.reason : undefined
          })
        const longest = "é".repeat(25) + "x" // 51 bytes
        assert.deepStrictEqual(yield* reasonOf("m", `${longest}y`), {
          _tag: "TooLong",
          part: "table",
          bytes: 52,
          limit: PgProjection.maxTableBytes
        })
        assert.deepStrictEqual(yield* reasonOf("m", `${"s".repeat(64)}.t`), {
          _tag: "TooLong",
          part: "schema",
          bytes: 64,
          limit: 63
        })
        assert.deepStrictEqual(yield* reasonOf("m", ""), { _tag: "Empty", part: "table" })
        assert.deepStrictEqual(yield* reasonOf("m", "s."), { _tag: "Empty", part: "table" })
        assert.deepStrictEqual(yield* reasonOf("m", "a.b.c"), { _tag: "TooManyDots", dots: 2 })
        assert.deepStrictEqual(yield* reasonOf("m", "t\u0000"), {
          _tag: "UnrepresentableText",
          part: "table",
          detail: "contains a NUL character"
        })
        assert.deepStrictEqual(yield* reasonOf("m\ud800", "t"), {
          _tag: "UnrepresentableText",
          part: "name",
          detail: "contains a lone UTF-16 surrogate (not Unicode text)"
        })
        assert.deepStrictEqual(yield* reasonOf("m", "counts_rb_0123abcd"), {
          _tag: "ReservedSuffix",
          suffix: "_rb_0123abcd"
        })
        assert.deepStrictEqual(yield* tablesLike("%badname%"), [])
      })
  )

  it.effect("a rebuild never drops a table the model did not create; adopted, it is taken over", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE foreign_counts (stream text PRIMARY KEY, n int)`
      yield* sql`INSERT INTO foreign_counts VALUES ('theirs', 42)`
      const model = counting("foreign", "foreign_counts", "foreign")
      yield* appendTo("foreign", 10)
      const refused = yield* Effect.flip(PgProjection.rebuild(model))
      assert.deepStrictEqual(
        { tag: refused._tag, table: refused._tag === "ReadModelNotOwned" ? refused.table : "" },
        { tag: "ReadModelNotOwned", table: "foreign_counts" }
      )
      const reset = yield* Effect.flip(PgProjection.projection(model).reset)
      assert.strictEqual(reset._tag, "ReadModelNotOwned")
      assert.deepStrictEqual(yield* rowsOf("foreign_counts"), [{ stream: "theirs", n: 42 }])
      assert.deepStrictEqual(yield* tablesLike("foreign_counts%"), ["public.foreign_counts"])
      assert.isTrue(yield* PgProjection.adopt(model))
      assert.isFalse(yield* PgProjection.adopt(model))
      yield* PgProjection.rebuild(model)
      assert.deepStrictEqual(yield* rowsOf("foreign_counts"), yield* replayOf("foreign"))
      assert.deepStrictEqual(yield* tablesLike("foreign_counts%"), ["public.foreign_counts"])
    })
  )

  it.effect("adopt refuses a missing table, other columns and another model's table, and changes nothing", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const commentOf = (table: string) =>
        sql<{ comment: string | null }>`SELECT obj_description(${table}::regclass, 'pg_class') AS comment`.pipe(
          Effect.map(([row]) => row?.comment ?? null)
        )
      const missing = yield* Effect.flip(PgProjection.adopt(counting("adopt-none", "adopt_none", "adopt")))
      assert.deepInclude(missing, { _tag: "ReadModelMismatch", table: "adopt_none", exists: false })

      yield* sql`CREATE TABLE adopt_other (stream text PRIMARY KEY, n bigint, note text)`
      const other = yield* Effect.flip(PgProjection.adopt(counting("adopt-other", "adopt_other", "adopt")))
      assert.deepInclude(other, {
        _tag: "ReadModelMismatch",
        exists: true,
        missing: ["n integer"],
        extra: ["n bigint", "note text"]
      })
      assert.isNull(yield* commentOf("adopt_other"))

      yield* sql`CREATE TABLE adopt_taken (stream text PRIMARY KEY, n int)`
      yield* sql.unsafe(`COMMENT ON TABLE adopt_taken IS '${PgProjection.ownerComment("someone-else")}'`)
      const taken = yield* Effect.flip(PgProjection.adopt(counting("adopt-taken", "adopt_taken", "adopt")))
      assert.deepInclude(taken, { _tag: "ReadModelNotOwned", comment: PgProjection.ownerComment("someone-else") })

      const bad = yield* Effect.flip(PgProjection.adopt(counting("adopt-bad", "a.b.c", "adopt")))
      assert.strictEqual(bad._tag, "InvalidReadModel")
      assert.deepStrictEqual(yield* tablesLike("adopt_%_rb_%"), [])
    })
  )

  it.effect("a rebuild of a 51-byte table name swaps in while readers query it, never missing", () =>
    rebuildUnderReads(counting("long", `${"é".repeat(25)}x`, "longname"), "longname")
  )

  it.effect("a schema-qualified table is created, rebuilt and swapped inside its schema", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE SCHEMA "Read Models"`
      yield* rebuildUnderReads(counting("qualified", "Read Models.counts", "qualified"), "qualified")
      assert.deepStrictEqual(yield* tablesLike("counts%"), ["Read Models.counts"])
      const missing = yield* Effect.flip(Effect.scoped(PgProjection.start(counting("nowhere", "nowhere.t", "q"))))
      assert.strictEqual(missing._tag, "ReadModelError")
      const status = yield* ProjectionRunner.status(
        PgProjection.projection(counting("qualified", "Read Models.counts", "qualified"))
      )
      assert.strictEqual(status.lag, 0n)
    })
  )
})
