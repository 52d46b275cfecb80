/**
 * The Postgres event store over `@effect/sql-pg`. One statement per append (the expected-version check, the
 * version numbers and the insert happen server-side in a single round trip), reads page by page, and a global order
 * that never skips an event committed late.
 *
 * **Global order.** Each event's position is `(the writing transaction's id << 20) + ordinal`. Transaction ids
 * (`xid8`) only grow, but transactions commit in any order, so a reader stops below the oldest transaction still
 * running (`pg_snapshot_xmin(pg_current_snapshot())`): everything under that bound is settled, nothing can appear
 * there later, and one statement reads under one snapshot. **Gotcha:** a long-open writing transaction anywhere on
 * the server holds every reader back (it never makes one skip); `horizon` reports which backend does it and for how
 * long.
 *
 * **Wake-ups.** Appends do not NOTIFY inside their transaction (that would serialise commits on the notify queue's
 * lock). Subscribers in this process are woken by the appends themselves; other processes are woken by one
 * debounced `pg_notify` sent after local appends, and everyone polls as a fallback.
 */

import type { Envelope } from "@chronicle/core"
import { EventStore, ExpectedVersion, StreamName, Subscription } from "@chronicle/core"
import { PgClient } from "@effect/sql-pg"
import { type Duration, Effect, Layer, Option, PubSub, Queue, Schedule, Stream } from "effect"
import type { SqlError } from "effect/sql"

/** How the store behaves; every field has a default. */
export interface Options {
  /** How often a live subscription looks for new events without a wake-up; 500 ms unless set. */
  readonly pollInterval?: Duration.Input
  /** The LISTEN/NOTIFY channel that wakes subscribers in other processes; `"chronicle_events"` unless set. */
  readonly channel?: string
}

/** Who holds the read horizon back: the oldest running transaction that has written anything. */
export interface Horizon {
  /** The position below which every event is visible to readers. */
  readonly position: bigint
  /** The backend of the oldest running writing transaction, if any. */
  readonly holder: Option.Option<{ readonly pid: number; readonly query: string; readonly ageMs: number }>
}

interface EventRow {
  readonly global_position: bigint
  readonly stream_id: string
  readonly version: number
  readonly event_id: string
  readonly type: string
  readonly schema_version: number
  readonly data: never
  readonly metadata: Envelope.Metadata
  readonly recorded_at: Date
}

const toRecorded = (row: EventRow): Envelope.RecordedEvent => ({
  eventId: row.event_id,
  type: row.type,
  schemaVersion: row.schema_version,
  data: row.data,
  metadata: row.metadata,
  stream: row.stream_id,
  version: row.version,
  position: row.global_position,
  recordedAt: row.recorded_at
})

const columns = "global_position, stream_id, version, event_id::text, type, schema_version, data, metadata, recorded_at"
/** The exclusive upper bound of positions every reader may see: below the oldest running transaction. */
const horizon = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)"
const transactionSlots = 1_048_576

/** How many times an append whose expectation still holds retries after a concurrent writer took its version. */
const attempts = 20

/** Capped exponential backoff for reconnecting after the database went away. */
const reconnect = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])

/** The SQL predicate that checks an expected version against `cur.v` (the stream's current version). */
const expectation = (expected: ExpectedVersion.ExpectedVersion) => {
  switch (expected._tag) {
    case "Any":
      return "true"
    case "NoStream":
      return "cur.v = 0"
    case "StreamExists":
      return "cur.v > 0"
    case "Exact":
      return "cur.v = $8"
  }
}

const appendStatement = (expected: ExpectedVersion.ExpectedVersion) => `
  WITH tx AS (SELECT pg_current_xact_id()::text::bigint << 20 AS base),
  cur AS (SELECT coalesce(max(version), 0) AS v FROM chronicle_events WHERE stream_id = $1),
  slot AS (
    SELECT coalesce(max(e.global_position) + 1, tx.base) AS next, tx.base
    FROM tx LEFT JOIN chronicle_events e ON e.global_position >= tx.base AND e.global_position < tx.base + ${transactionSlots}
    GROUP BY tx.base
  )
  INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
  SELECT slot.next + e.ord - 1, $1, $2, cur.v + e.ord, e.id, e.type, e.schema_version, e.data, e.metadata
  FROM cur, slot, unnest($3::uuid[], $4::text[], $5::int4[], $6::text[]::jsonb[], $7::text[]::jsonb[])
    WITH ORDINALITY AS e(id, type, schema_version, data, metadata, ord)
  WHERE ${expectation(expected)} AND slot.next + $9 <= slot.base + ${transactionSlots}
  RETURNING global_position, version`

/** Builds the store on the `PgClient` in context; its background fibers live in the caller's scope. */
export const make = Effect.fnUntraced(function* (options: Options = {}) {
  const sql = yield* PgClient.PgClient
  const channel = options.channel ?? "chronicle_events"
  const pollInterval = options.pollInterval ?? "500 millis"
  const statements = {
    Any: appendStatement(ExpectedVersion.any),
    NoStream: appendStatement(ExpectedVersion.noStream),
    StreamExists: appendStatement(ExpectedVersion.streamExists),
    Exact: appendStatement(ExpectedVersion.exact(0))
  }

  const storeError = (operation: string, stream?: string) => (cause: SqlError.SqlError) =>
    new EventStore.EventStoreError(stream === undefined ? { operation, cause } : { operation, stream, cause })

  // Wake-ups: local appends publish here directly; the notifier tells other processes; the listener relays theirs.
  const wakeups = yield* PubSub.sliding<void>(1)
  const appended = yield* PubSub.sliding<void>(1)
  yield* Stream.fromPubSub(appended).pipe(
    Stream.runForEach(() => sql.notify(channel, "").pipe(Effect.ignore)),
    Effect.forkScoped
  )
  yield* Effect.scoped(
    Effect.flatMap(sql.listen(channel), (queue) =>
      Effect.forever(Effect.flatMap(Queue.take(queue), () => PubSub.publish(wakeups, undefined)))
    )
  ).pipe(
    Effect.tapCause(() => PubSub.publish(wakeups, undefined)),
    Effect.retry(reconnect),
    Effect.forkScoped
  )

  const resolveFailure = (
    stream: string,
    prepared: ReadonlyArray<EventStore.PreparedEvent>,
    expected: ExpectedVersion.ExpectedVersion
  ) =>
    Effect.gen(function* () {
      const ids = prepared.map(({ event }) => event.eventId)
      const stored = yield* sql<{ event_id: string; stream_id: string; version: number; global_position: bigint }>`
        SELECT event_id::text, stream_id, version, global_position FROM chronicle_events WHERE event_id = ANY(${ids}::uuid[])`
      const repeated = EventStore.resolveRepeatedAppend(
        stream,
        prepared,
        stored.map((row) => ({
          eventId: row.event_id,
          stream: row.stream_id,
          version: row.version,
          position: row.global_position
        }))
      )
      if (repeated !== undefined) return Option.some(yield* Effect.fromResult(repeated))
      const [current] = yield* sql<{ v: number }>`
        SELECT coalesce(max(version), 0)::int4 AS v FROM chronicle_events WHERE stream_id = ${stream}`
      const actual = current?.v ?? 0
      if (ExpectedVersion.isSatisfiedBy(expected, actual)) return Option.none<EventStore.AppendResult>()
      return yield* new EventStore.ConcurrencyError({ stream, expected: ExpectedVersion.describe(expected), actual })
    })

  const append = (
    stream: string,
    events: ReadonlyArray<Envelope.EventData>,
    expected: ExpectedVersion.ExpectedVersion
  ) =>
    Effect.gen(function* () {
      const prepared = yield* Effect.fromResult(EventStore.prepareAppend(stream, events))
      const params = [
        stream,
        StreamName.category(stream),
        prepared.map(({ event }) => event.eventId),
        prepared.map(({ event }) => event.type),
        prepared.map(({ event }) => event.schemaVersion),
        prepared.map(({ dataJson }) => dataJson),
        prepared.map(({ metadataJson }) => metadataJson),
        expected._tag === "Exact" ? expected.version : 0,
        prepared.length
      ]
      // Inside a caller's transaction a unique violation would abort it, and the queries that classify the failure
      // with it: there the insert runs under a savepoint (a nested withTransaction), which the violation rolls back.
      const inTransaction = Option.isSome(yield* Effect.serviceOption(sql.transactionService))
      for (let attempt = 1; attempt <= attempts; attempt++) {
        const insert = sql.unsafe<{ global_position: bigint; version: number }>(statements[expected._tag], params)
        const rows = yield* (inTransaction ? sql.withTransaction(insert) : insert).pipe(
          Effect.catchReason("SqlError", "UniqueViolation", () => Effect.succeed([]))
        )
        const last = rows.at(-1)
        if (last !== undefined) {
          yield* PubSub.publish(wakeups, undefined)
          yield* PubSub.publish(appended, undefined)
          return { stream, version: last.version, position: last.global_position, written: rows.length }
        }
        // Nothing was written: a repeat, a wrong expectation, or a concurrent writer that took the version first.
        const outcome = yield* resolveFailure(stream, prepared, expected)
        if (Option.isSome(outcome)) return outcome.value
      }
      return yield* new EventStore.InvalidAppend({
        stream,
        reason: `gave up after ${attempts} attempts: other writers kept taking the next version, or the transaction already holds ${transactionSlots} events`
      })
    }).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(storeError("append", stream)(error))))

  const readStream = (stream: string, readOptions: EventStore.ReadStreamOptions = {}) =>
    Stream.unwrap(
      Effect.map(Effect.fromResult(StreamName.validate(stream)), () => {
        const pageSize = readOptions.pageSize ?? EventStore.defaultPageSize
        return Stream.paginate(Math.max(1, readOptions.from ?? 1), (from: number) =>
          sql
            .unsafe<EventRow>(
              `SELECT ${columns} FROM chronicle_events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`,
              [stream, from, pageSize]
            )
            .pipe(
              Effect.map((rows) => {
                const page = rows.map(toRecorded)
                const last = page.at(-1)
                return [
                  page,
                  last === undefined || page.length < pageSize ? Option.none<number>() : Option.some(last.version + 1)
                ] as const
              }),
              Effect.mapError(storeError("readStream", stream))
            )
        )
      })
    )

  const readPage =
    (readOptions: EventStore.ReadAllOptions): Subscription.ReadPage<EventStore.EventStoreError> =>
    (after, limit) => {
      const params: Array<unknown> = [after, limit]
      const filter = (column: string, values: ReadonlyArray<string> | undefined) => {
        if (values === undefined) return ""
        params.push(values)
        return `AND ${column} = ANY($${params.length}::text[])`
      }
      const filters = `${filter("category", readOptions.categories)} ${filter("type", readOptions.types)}`
      return sql
        .unsafe<EventRow>(
          `SELECT ${columns} FROM chronicle_events
           WHERE global_position > $1 AND global_position < ${horizon} ${filters}
           ORDER BY global_position LIMIT $2`,
          params
        )
        .pipe(
          Effect.map((rows) => rows.map(toRecorded)),
          Effect.mapError(storeError("readAll"))
        )
    }

  const streamVersion = (stream: string) =>
    Effect.fromResult(StreamName.validate(stream)).pipe(
      Effect.flatMap(() =>
        sql<{
          v: number
        }>`SELECT coalesce(max(version), 0)::int4 AS v FROM chronicle_events WHERE stream_id = ${stream}`.pipe(
          Effect.map(([row]) => row?.v ?? 0),
          Effect.mapError(storeError("streamVersion", stream))
        )
      )
    )

  const head = sql<{ p: bigint | null }>`
    SELECT max(global_position) AS p FROM chronicle_events WHERE global_position < ${sql.literal(horizon)}`.pipe(
    Effect.map(([row]) => row?.p ?? 0n),
    Effect.mapError(storeError("head"))
  )

  // A subscription outlives database restarts: failed reads are retried with capped backoff instead of ending it.
  const resilient =
    (read: Subscription.ReadPage<EventStore.EventStoreError>): Subscription.ReadPage<EventStore.EventStoreError> =>
    (after, limit) =>
      read(after, limit).pipe(
        Effect.tapError((error) => Effect.logWarning(`subscription read failed, retrying: ${error.message}`)),
        Effect.retry(reconnect)
      )

  const store: EventStore.Service = {
    append,
    readStream,
    streamVersion,
    readAll: (readOptions = {}) =>
      Subscription.catchUp(
        readPage(readOptions),
        readOptions.after ?? 0n,
        readOptions.pageSize ?? EventStore.defaultPageSize
      ),
    subscribe: (readOptions = {}) =>
      Subscription.catchUpThenLive(
        resilient(readPage(readOptions)),
        readOptions.after ?? 0n,
        readOptions.pageSize ?? EventStore.defaultPageSize,
        { wakeups: Stream.fromPubSub(wakeups), pollInterval }
      ),
    head
  }

  /** Reports the read horizon and the backend holding it back, if any. */
  const horizonReport = sql<{ position: bigint; pid: number | null; query: string | null; age_ms: number | null }>`
    SELECT ${sql.literal(horizon)} AS position, a.pid, a.query, (extract(epoch FROM now() - a.xact_start) * 1000)::float8 AS age_ms
    FROM (SELECT 1) one
    LEFT JOIN pg_stat_activity a ON a.backend_xid IS NOT NULL AND a.backend_xid::text::bigint = pg_snapshot_xmin(pg_current_snapshot())::text::bigint
    LIMIT 1`.pipe(
    Effect.map(
      ([row]): Horizon => ({
        position: row?.position ?? 0n,
        holder:
          row?.pid === null || row === undefined
            ? Option.none()
            : Option.some({ pid: row.pid, query: row.query ?? "", ageMs: row.age_ms ?? 0 })
      })
    ),
    Effect.mapError(storeError("horizon"))
  )

  return { store, horizon: horizonReport }
})

/** Provides the Postgres `EventStore` on the `PgClient` in context (run `PgMigrations` first). */
export const layer = (options: Options = {}): Layer.Layer<EventStore.EventStore, never, PgClient.PgClient> =>
  Layer.effect(
    EventStore.EventStore,
    Effect.map(make(options), ({ store }) => store)
  )
