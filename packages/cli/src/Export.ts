/**
 * Exporting the log for analysis: every event of the `EventStore` in context (or of some categories, from a
 * position on), in global order, to a file of newline-delimited JSON or to Parquet, for DuckDB, pandas, Spark or a
 * warehouse to query. Memory stays bounded: the log is read page by page, NDJSON is appended line by line, and
 * Parquet rows are staged in an on-disk DuckDB database (`@duckdb/node-api`) that DuckDB then writes out with its own
 * streaming `COPY`.
 *
 * An export is resumable. It works in `<file>.partial` (NDJSON) or `<file>.partial.duckdb` (Parquet) and records
 * after each page how far it got in `<file>.partial.json`; the file itself appears only at the end, by a rename, so a
 * reader never sees half an export. A run that stops (Ctrl-C, a lost connection, a crash) leaves those files; the next
 * run with the same format, categories and start picks up after the last page recorded, and ends with the same file
 * an uninterrupted run writes. A run with other options starts over.
 *
 * Columns, in both formats: `position` (bigint; a string in NDJSON, since positions pass 2^53), `stream`,
 * `category`, `version`, `event_id`, `type`, `schema_version`, `data` and `metadata` (JSON; Parquet's JSON logical
 * type) and `recorded_at` (a timestamp with time zone; ISO 8601 in NDJSON). Values are exported as the store hands
 * them out: with `Upcasting` in context they are upcast, and sealed personal fields stay sealed unless the
 * `CryptoShredding` store is in context.
 *
 * ```ts
 * const written = yield* Export.run({ file: "cart.parquet", format: "parquet", categories: ["cart"] })
 * // then, in DuckDB: SELECT type, count(*) FROM 'cart.parquet' GROUP BY type
 * ```
 */
import { open, readFile, rename, rm, stat, truncate, writeFile } from "node:fs/promises"
import { type Envelope, EventStore, StreamName } from "@chronicle/core"
import { type DuckDBAppender, DuckDBInstance, timestampTZValue } from "@duckdb/node-api"
import { Effect, Schema, Stream } from "effect"

/** The file formats an export writes. */
export const formats = ["ndjson", "parquet"] as const

/** A file format an export writes: newline-delimited JSON or Parquet. */
export type Format = (typeof formats)[number]

/** How far an export has come. */
export interface Progress {
  /** Events written so far, counting those of earlier, interrupted runs. */
  readonly done: number
  /** Events to write in all, when the caller gave a way to count them. */
  readonly total: number | undefined
}

/** What to export, where, and how to report progress. */
export interface Options {
  /** The file to write; it appears only once the export is complete. */
  readonly file: string
  readonly format: Format
  /** Only events of streams in these categories; every category unless set. */
  readonly categories?: ReadonlyArray<string>
  /** The first global position to export (inclusive); the start of the log unless set. */
  readonly from?: bigint
  /** How many events one read fetches and one step writes; 1,000 unless set. */
  readonly pageSize?: number
  /** Counts the events after one position up to another, for the progress's total; no total unless given. */
  readonly count?: (after: bigint, until: bigint) => Effect.Effect<number, ExportError>
  /** Hears after each page how far the export has come. */
  readonly onProgress?: (progress: Progress) => Effect.Effect<void>
}

/** What a finished export wrote. */
export interface Result {
  readonly file: string
  readonly format: Format
  /** The number of events in the file. */
  readonly events: number
  /** The position of the last event exported; 0n when there was none. */
  readonly position: bigint
  /** Whether this run continued an interrupted one. */
  readonly resumed: boolean
}

/** The export could not write its files or its staging database. */
export class ExportError extends Schema.TaggedError<ExportError>()("ExportError", {
  file: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `export to ${this.file} failed: ${this.reason}`
  }
}

/** How far an interrupted run got, with the options it ran with (a run with others starts over). */
interface Checkpoint {
  readonly format: Format
  readonly categories: ReadonlyArray<string> | null
  readonly from: string
  /** The last position written. */
  readonly position: string
  readonly events: number
  /** NDJSON: the length of the partial file after the last page. */
  readonly bytes: number
}

/** One event as an NDJSON line (without the newline). */
export const toJsonLine = (event: Envelope.RecordedEvent): string =>
  JSON.stringify({
    position: String(event.position),
    stream: event.stream,
    category: StreamName.category(event.stream),
    version: event.version,
    event_id: event.eventId,
    type: event.type,
    schema_version: event.schemaVersion,
    data: event.data,
    metadata: event.metadata,
    recorded_at: event.recordedAt.toISOString()
  })

const partialPaths = (file: string, format: Format) => ({
  staging: format === "ndjson" ? `${file}.partial` : `${file}.partial.duckdb`,
  checkpoint: `${file}.partial.json`
})

const quoteLiteral = (text: string) => `'${text.replaceAll("'", "''")}'`

/** A file writer for one format: appends pages, records nothing itself, and finishes into the final file. */
interface Sink {
  /** Appends a page; returns the staging file's length for NDJSON (0 for Parquet). */
  readonly write: (events: ReadonlyArray<Envelope.RecordedEvent>) => Effect.Effect<number, ExportError>
  /** Writes the final file from the staging data. */
  readonly finish: Effect.Effect<void, ExportError>
}

const attempt = <A>(file: string, what: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new ExportError({ file, reason: `${what}: ${cause instanceof Error ? cause.message : cause}` })
  })

/** NDJSON: lines appended to `<file>.partial`, cut back to the recorded length when resuming, renamed at the end. */
const ndjsonSink = (file: string, staging: string, resumeAt: number | undefined) =>
  Effect.gen(function* () {
    if (resumeAt === undefined) yield* attempt(file, "creating the staging file", () => writeFile(staging, ""))
    else yield* attempt(file, "cutting the staging file back", () => truncate(staging, resumeAt))
    const handle = yield* Effect.acquireRelease(
      attempt(file, "opening the staging file", () => open(staging, "a")),
      (handle) => Effect.promise(() => handle.close())
    )
    let bytes = resumeAt ?? 0
    const sink: Sink = {
      write: (events) =>
        Effect.suspend(() => {
          const text = `${events.map(toJsonLine).join("\n")}\n`
          bytes += Buffer.byteLength(text)
          return Effect.as(
            attempt(file, "writing", () => handle.write(text)),
            bytes
          )
        }),
      finish: Effect.andThen(
        attempt(file, "flushing", () => handle.sync()),
        attempt(file, "renaming the staging file", () => rename(staging, file))
      )
    }
    return sink
  })

const eventsTable = `CREATE TABLE IF NOT EXISTS events (
  position BIGINT PRIMARY KEY, stream VARCHAR NOT NULL, category VARCHAR NOT NULL, version INTEGER NOT NULL,
  event_id VARCHAR NOT NULL, type VARCHAR NOT NULL, schema_version INTEGER NOT NULL, data JSON NOT NULL,
  metadata JSON NOT NULL, recorded_at TIMESTAMPTZ NOT NULL)`

const appendRow = (appender: DuckDBAppender, event: Envelope.RecordedEvent) => {
  appender.appendBigInt(event.position)
  appender.appendVarchar(event.stream)
  appender.appendVarchar(StreamName.category(event.stream))
  appender.appendInteger(event.version)
  appender.appendVarchar(event.eventId)
  appender.appendVarchar(event.type)
  appender.appendInteger(event.schemaVersion)
  appender.appendVarchar(JSON.stringify(event.data))
  appender.appendVarchar(JSON.stringify(event.metadata))
  appender.appendTimestampTZ(timestampTZValue(BigInt(event.recordedAt.getTime()) * 1000n))
  appender.endRow()
}

/**
 * Parquet: rows staged in an on-disk DuckDB database (committed page by page, so memory stays bounded and a resumed
 * run drops the rows past the recorded position), written out at the end by DuckDB's `COPY ... (FORMAT parquet)`.
 */
const parquetSink = (file: string, staging: string, resumeAfter: bigint | undefined) =>
  Effect.gen(function* () {
    if (resumeAfter === undefined) yield* removeStaging(staging)
    const instance = yield* Effect.acquireRelease(
      attempt(file, "opening the staging database", () =>
        DuckDBInstance.create(staging, { memory_limit: "256MB", threads: "2" })
      ),
      (instance) => Effect.sync(() => instance.closeSync())
    )
    const connection = yield* Effect.acquireRelease(
      attempt(file, "connecting to the staging database", () => instance.connect()),
      (connection) => Effect.sync(() => connection.closeSync())
    )
    const run = (what: string, statement: string) => attempt(file, what, () => connection.run(statement))
    yield* run("creating the staging table", eventsTable)
    if (resumeAfter !== undefined) {
      yield* run("dropping rows past the checkpoint", `DELETE FROM events WHERE position > ${resumeAfter}`)
    }
    const written = `${file}.partial.parquet`
    const sink: Sink = {
      write: (events) =>
        Effect.as(
          Effect.acquireUseRelease(
            attempt(file, "opening an appender", () => connection.createAppender("events")),
            (appender) =>
              Effect.try({
                try: () => {
                  for (const event of events) appendRow(appender, event)
                  appender.flushSync()
                },
                catch: (cause) =>
                  new ExportError({
                    file,
                    reason: `staging rows: ${cause instanceof Error ? cause.message : String(cause)}`
                  })
              }),
            (appender) => Effect.sync(() => appender.closeSync())
          ),
          0
        ),
      finish: Effect.andThen(
        run(
          "writing Parquet",
          `COPY (SELECT * FROM events ORDER BY position) TO ${quoteLiteral(written)} (FORMAT parquet, COMPRESSION zstd)`
        ),
        attempt(file, "renaming the Parquet file", () => rename(written, file))
      )
    }
    return sink
  })

const removeStaging = (staging: string) =>
  Effect.promise(() => Promise.all([rm(staging, { force: true }), rm(`${staging}.wal`, { force: true })]))

const readCheckpoint = (path: string) =>
  Effect.promise(async (): Promise<Checkpoint | undefined> => {
    try {
      return JSON.parse(await readFile(path, "utf8")) as Checkpoint
    } catch {
      return undefined
    }
  })

const exists = (path: string) =>
  Effect.promise(() =>
    stat(path).then(
      () => true,
      () => false
    )
  )

/**
 * Exports the log (up to its head when the export starts) to `options.file`, resuming an interrupted export of the
 * same file with the same options. Returns what it wrote.
 */
export const run = (
  options: Options
): Effect.Effect<Result, ExportError | EventStore.EventStoreError, EventStore.EventStore> =>
  Effect.gen(function* () {
    const paths = partialPaths(options.file, options.format)
    // The staging files are removed once the sink that used them has closed them.
    const result = yield* Effect.scoped(exportTo(options, paths))
    yield* removeStaging(paths.staging)
    yield* Effect.promise(() =>
      Promise.all([rm(paths.checkpoint, { force: true }), rm(`${paths.checkpoint}.next`, { force: true })])
    )
    return result
  })

const exportTo = (options: Options, paths: ReturnType<typeof partialPaths>) =>
  Effect.gen(function* () {
    const { file, format } = options
    const store = yield* EventStore.EventStore
    const categories = options.categories === undefined ? null : [...options.categories]
    const from = options.from ?? 1n
    const previous = yield* readCheckpoint(paths.checkpoint)
    const resumable =
      previous !== undefined &&
      previous.format === format &&
      JSON.stringify(previous.categories) === JSON.stringify(categories) &&
      previous.from === String(from) &&
      (yield* exists(paths.staging))
    const resumed = resumable ? previous : undefined
    const sink =
      format === "ndjson"
        ? yield* ndjsonSink(file, paths.staging, resumed?.bytes)
        : yield* parquetSink(file, paths.staging, resumed === undefined ? undefined : BigInt(resumed.position))

    const head = yield* store.head
    let position = resumed === undefined ? from - 1n : BigInt(resumed.position)
    let done = resumed?.events ?? 0
    const total = options.count === undefined ? undefined : done + (yield* options.count(position, head))
    // Written aside and renamed over the old one, so an interrupt or crash mid-write never leaves a torn record.
    const save = (bytes: number) =>
      attempt(file, "recording progress", async () => {
        const record = { format, categories, from: String(from), position: String(position), events: done, bytes }
        await writeFile(`${paths.checkpoint}.next`, JSON.stringify(record))
        await rename(`${paths.checkpoint}.next`, paths.checkpoint)
      })
    yield* save(resumed?.bytes ?? 0)
    if (options.onProgress !== undefined) yield* options.onProgress({ done, total })

    yield* store
      .readAll({
        after: position,
        pageSize: options.pageSize ?? EventStore.defaultPageSize,
        ...(categories === null ? {} : { categories })
      })
      .pipe(
        Stream.takeWhile((event) => event.position <= head),
        Stream.runForEachArray((events) =>
          Effect.gen(function* () {
            const bytes = yield* sink.write(events)
            position = events.at(-1)!.position
            done += events.length
            yield* save(bytes)
            if (options.onProgress !== undefined) yield* options.onProgress({ done, total })
          })
        )
      )
    yield* sink.finish
    const result: Result = {
      file,
      format,
      events: done,
      position: done === 0 ? 0n : position,
      resumed: resumed !== undefined
    }
    return result
  })
