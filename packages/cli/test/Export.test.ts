import { mkdtemp, readdir, readFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Export } from "@chronicle/cli"
import { EventId, EventStore, ExpectedVersion } from "@chronicle/core"
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"

/** Writes `count` events over a few streams of two categories; returns the log as the store reads it. */
const seed = (count: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    for (let i = 0; i < count; i++) {
      const stream = `${i % 3 === 0 ? "order" : "cart"}-${i % 5}`
      yield* store.append(
        stream,
        [
          {
            eventId: EventId.random(),
            type: i % 2 === 0 ? "ItemAdded" : "ItemRemoved",
            schemaVersion: 1,
            data: { sku: `sku-${i}`, quantity: i, note: 'it\'s "quoted"\n' },
            metadata: { correlationId: `c-${i}` }
          }
        ],
        ExpectedVersion.any
      )
    }
    return yield* Stream.runCollect(store.readAll())
  })

const tempDir = Effect.promise(() => mkdtemp(join(tmpdir(), "chronicle-export-")))

/** The rows of a Parquet file, through DuckDB, as NDJSON lines would hold them. */
const readParquet = (file: string) =>
  Effect.promise(async () => {
    const instance = await DuckDBInstance.create(":memory:")
    const connection = await instance.connect()
    const reader = await connection.runAndReadAll(
      `SELECT position, stream, category, version, event_id, type, schema_version, data, metadata,
         strftime(recorded_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ') AS recorded_at
       FROM read_parquet('${file}') ORDER BY position`
    )
    const rows = reader.getRowObjectsJS().map((row) =>
      JSON.stringify({
        ...row,
        position: String(row.position),
        data: JSON.parse(String(row.data)),
        metadata: JSON.parse(String(row.metadata))
      })
    )
    connection.closeSync()
    instance.closeSync()
    return rows
  })

const readNdjson = (file: string) =>
  Effect.promise(async () => (await readFile(file, "utf8")).split("\n").filter((line) => line !== ""))

describe("Export", () => {
  it.effect("NDJSON and Parquet hold the log event for event", () =>
    Effect.gen(function* () {
      const log = yield* seed(25)
      const dir = yield* tempDir
      const ndjson = yield* Export.run({ file: join(dir, "log.ndjson"), format: "ndjson", pageSize: 4 })
      const parquet = yield* Export.run({ file: join(dir, "log.parquet"), format: "parquet", pageSize: 4 })
      const expected = log.map(Export.toJsonLine)
      assert.deepStrictEqual(yield* readNdjson(ndjson.file), expected)
      assert.deepStrictEqual(yield* readParquet(parquet.file), expected)
      assert.strictEqual(parquet.events, 25)
      assert.deepStrictEqual((yield* Effect.promise(() => readdir(dir))).sort(), ["log.ndjson", "log.parquet"])
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.effect("a category and a start position select the events after it", () =>
    Effect.gen(function* () {
      const log = yield* seed(20)
      const dir = yield* tempDir
      const from = log[7]!.position
      const result = yield* Export.run({ file: join(dir, "cart.ndjson"), format: "ndjson", categories: ["cart"], from })
      const expected = log.filter((e) => e.stream.startsWith("cart-") && e.position >= from).map(Export.toJsonLine)
      assert.deepStrictEqual(yield* readNdjson(result.file), expected)
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  for (const format of Export.formats) {
    it.effect(`${format}: a run stopped after some pages, run again, writes what an uninterrupted run writes`, () =>
      Effect.gen(function* () {
        const log = yield* seed(30)
        const dir = yield* tempDir
        const file = join(dir, `log.${format}`)
        const stopped = yield* Export.run({
          file,
          format,
          pageSize: 4,
          onProgress: ({ done }) => (done >= 12 ? Effect.interrupt : Effect.void)
        }).pipe(Effect.exit)
        assert.isTrue(stopped._tag === "Failure")
        assert.notInclude(yield* Effect.promise(() => readdir(dir)), `log.${format}`)
        const progress: Array<number> = []
        const resumed = yield* Export.run({
          file,
          format,
          pageSize: 4,
          count: () => Effect.succeed(30 - 12),
          onProgress: ({ done }) => Effect.sync(() => void progress.push(done))
        })
        assert.isTrue(resumed.resumed)
        assert.strictEqual(progress[0], 12) // picked up after the pages the first run recorded
        assert.strictEqual(resumed.events, 30)
        const read = format === "ndjson" ? readNdjson(file) : readParquet(file)
        assert.deepStrictEqual(yield* read, log.map(Export.toJsonLine))
        assert.deepStrictEqual(yield* Effect.promise(() => readdir(dir)), [`log.${format}`])
      }).pipe(Effect.provide(EventStore.layerMemory))
    )
  }
})
