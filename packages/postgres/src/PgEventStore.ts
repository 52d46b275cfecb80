/**
 * The Postgres event store over `@effect/sql-pg`. One statement per append (the expected-version check, the
 * version numbers and the insert happen server-side in a single round trip), a stream read in one streamed statement,
 * the log read page by page, and a global order that never skips an event committed late. An exact-version append
 * that finds the store idle goes at once; those that arrive while another is in flight share the next round trip and
 * commit (group commit, `internal/GroupCommit`; `groupCommit: false` turns it off); appends inside a caller's
 * transaction never do.
 *
 * **Global order.** Each event's position is `(the writing transaction's id << 20) + ordinal`. Transaction ids
 * (`xid8`) only grow, but transactions commit in any order, so a reader stops below the oldest transaction still
 * running (`pg_snapshot_xmin(pg_current_snapshot())`): everything under that bound is settled, nothing can appear
 * there later, and one statement reads under one snapshot. **Gotcha:** a long-open writing transaction anywhere on
 * the server holds every reader back (it never makes one skip); `horizonNow` reports which backend does it and
 * for how long, and sets the gauge `chronicle_horizon_age_seconds`, which the store also samples every
 * `horizonInterval` while anything subscribes.
 *
 * **Wake-ups.** Appends do not NOTIFY inside their transaction (that would serialise commits on the notify queue's
 * lock). Subscribers in this process are woken by the appends themselves (after the caller's commit, for appends in
 * a transaction); other processes by a `pg_notify` sent after local appends, at most one per 100 ms; and everyone
 * polls as a fallback. The LISTEN runs on a connection of its own, opened from the `PgClient`'s settings outside its
 * pool, and only while at least one subscription is open: appends always have the whole pool.
 */

import {
  Backoff,
  type Envelope,
  EventStore,
  ExpectedVersion,
  Instrumentation,
  Metrics,
  Partition,
  Storable,
  StreamName,
  Subscription
} from "@chronicle/core"
import { PgClient, PgConnection } from "@effect/sql-pg"
import {
  Context,
  type Duration,
  Effect,
  Layer,
  Metric,
  Option,
  Predicate,
  PubSub,
  Queue,
  RcRef,
  Result,
  Schedule,
  Stream
} from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { type EventRow, selectColumns, toRecorded } from "./internal/EventRow.ts"
import * as GroupCommit from "./internal/GroupCommit.ts"
import * as PartitionIndex from "./internal/PartitionIndex.ts"

/** How the store behaves; every field has a default. */
export interface Options {
  /** How often a live subscription looks for new events without a wake-up; 500 ms unless set. */
  readonly pollInterval?: Duration.Input
  /** The LISTEN/NOTIFY channel that wakes subscribers in other processes; `"chronicle_events"` unless set. */
  readonly channel?: string
  /**
   * Whether appends with an exact expected version that arrive while another is in flight share the next round trip
   * and commit (see the module doc); on unless `false`. `inFlight` is how many round trips (lone appends or batches)
   * may be in flight at once, each on its own connection, 2 unless set; one beside another starts only when at least
   * `splitFrom` events wait, 32 unless set.
   */
  readonly groupCommit?: boolean | { readonly inFlight?: number; readonly splitFrom?: number }
  /**
   * How often the store samples the read horizon (`horizonNow`, which sets the gauge `chronicle_horizon_age_seconds`)
   * while at least one subscription is open; 5 seconds unless set.
   */
  readonly horizonInterval?: Duration.Input
}

/** Who holds the read horizon back: the oldest running transaction that has written anything. */
export interface Horizon {
  /** The position below which every event is visible to readers. */
  readonly position: bigint
  /** The backend of the oldest running writing transaction, if any. */
  readonly holder: Option.Option<{ readonly pid: number; readonly query: string; readonly ageMs: number }>
}

const columns = selectColumns()

/** Postgres's `integer out of range` (22003) from an append: the versions it numbered passed the last one. */
const pastLastVersion = (error: SqlError.SqlError): boolean =>
  Predicate.hasProperty(error.reason.cause, "code") && error.reason.cause.code === "22003"
/** The exclusive upper bound of positions every reader may see: below the oldest running transaction. */
const horizon = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)"
const transactionSlots = 1_048_576

/**
 * How many times an append whose expectation still holds tries before giving up with `AppendContention`. Retries run
 * under the stream's append lock, where only exact-version writers (which take no lock) can still win the version,
 * so reaching this needs that many of them to win in a row, or a caller's REPEATABLE READ transaction whose snapshot
 * never shows the winner.
 */
const attempts = 100

/**
 * The class of the transaction-scoped advisory locks (`pg_advisory_xact_lock(class, hashtext(stream))`) that
 * serialise `any` and `streamExists` appends on a stream. The two-key form keeps them apart from the one-key locks
 * of leases and read models.
 */
const appendLockClass = 1_667_787_374

/** The shared capped backoff, for reading again after the database went away. */
const reconnect = Backoff.schedule()

/** The shape of an append, which picks its statement. */
interface AppendShape {
  readonly expected: ExpectedVersion.ExpectedVersion["_tag"]
  /** One event: scalar parameters instead of arrays. */
  readonly single: boolean
  /** Inside a caller's transaction, which may already hold events, so positions continue after them. */
  readonly inTransaction: boolean
}

/**
 * The append statement for a shape: one INSERT that checks the expectation, numbers the versions and allocates the
 * positions server-side. Parameters: $1 stream, $2 category, $3 the expected version (0 unless exact), then the
 * event's fields ($4 id, $5 type, $6 schema version, $7 data, $8 metadata: scalars for one event, arrays for
 * several), and for several events in a transaction $9 their count.
 *
 * - Exact and NoStream need no read of the stream's version: the new versions are `$3 + ordinal`, a probe of version
 *   `$3` checks the stream got that far, and the unique `(stream_id, version)` index refuses it if it went further.
 * - Any and StreamExists read the current version (`max(version)`, one backward index step), and only insert while
 *   holding the stream's append lock (`pg_try_advisory_xact_lock`): when another append holds it, the statement
 *   writes nothing and the append waits for the lock instead, so these appends never lose a version to each other.
 * - Positions are `(transaction id << 20) + ordinal`. An append in its own transaction starts at the base; in a
 *   caller's transaction it continues after the events that transaction has already written.
 */
const appendStatement = ({ expected, single, inTransaction }: AppendShape): string => {
  const fromCurrent = expected === "Any" || expected === "StreamExists"
  const events = single
    ? "(SELECT 1 AS ord, $4::uuid AS id, $5::text AS type, $6::int4 AS schema_version, $7::jsonb AS data, $8::jsonb AS metadata) e"
    : `unnest($4::uuid[], $5::text[], $6::int4[], $7::text[]::jsonb[], $8::text[]::jsonb[])
         WITH ORDINALITY AS e(id, type, schema_version, data, metadata, ord)`
  const sources = [
    events,
    ...(fromCurrent ? ["(SELECT coalesce(max(version), 0) AS v FROM chronicle_events WHERE stream_id = $1) cur"] : []),
    ...(inTransaction
      ? [
          `(SELECT coalesce(max(global_position) + 1, tx.base) AS next, tx.base
            FROM (SELECT pg_current_xact_id()::text::bigint << 20 AS base) tx
            LEFT JOIN chronicle_events ON global_position >= tx.base AND global_position < tx.base + ${transactionSlots}
            GROUP BY tx.base) slot`
        ]
      : [])
  ]
  const conditions = [
    ...(expected === "StreamExists" ? ["cur.v > 0"] : []),
    fromCurrent
      ? `pg_try_advisory_xact_lock(${appendLockClass}, hashtext($1))`
      : "($3::int4 = 0 OR EXISTS (SELECT 1 FROM chronicle_events WHERE stream_id = $1 AND version = $3::int4))",
    ...(inTransaction ? [`slot.next + ${single ? "1" : "$9::int4"} <= slot.base + ${transactionSlots}`] : [])
  ]
  const position = inTransaction ? "slot.next + e.ord - 1" : "(pg_current_xact_id()::text::bigint << 20) + e.ord - 1"
  const version = fromCurrent ? "cur.v + e.ord" : "$3::int4 + e.ord"
  return `INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
    SELECT ${position}, $1, $2, ${version}, e.id, e.type, e.schema_version, e.data, e.metadata
    FROM ${sources.join(", ")}
    WHERE ${conditions.join(" AND ")}
    RETURNING global_position, version`
}

/**
 * The read-all statement: events after `$1`, below the horizon, in position order, at most `$2`; `$3` the categories
 * and then the types when filtered. A category filter reads each category through its own
 * `(category, global_position)` index scan and merges them, so a page costs its own size, not the category's. A
 * partition with the partition index (`PgMigrations.partitionIndex`) reads each of its buckets through it, one ordered
 * scan per bucket merged lazily (a Merge Append under the limit), so a page costs its own size plus one probe per
 * bucket; categories and types then filter those rows. Without the index a partition is a filter on
 * `chronicle_stream_bucket(stream_id)` over the same reads as the whole log's: exact, but a page scans the log until
 * it has found its rows.
 */
const readAllStatement = (filters: {
  readonly categories: boolean
  readonly types: boolean
  readonly buckets?: ReadonlyArray<number>
  readonly indexed?: boolean
}): string => {
  const types = filters.types ? `AND type = ANY($${filters.categories ? 4 : 3}::text[])` : ""
  const below = `global_position > $1 AND global_position < (SELECT ${horizon})`
  if (filters.buckets !== undefined && filters.indexed === true) {
    const categories = filters.categories ? "AND category = ANY($3::text[])" : ""
    const scans = filters.buckets.map(
      (bucket) => `(SELECT ${columns} FROM chronicle_events
         WHERE chronicle_stream_bucket(stream_id) = ${bucket} AND ${below} ${categories} ${types}
         ORDER BY global_position LIMIT $2)`
    )
    return `SELECT e.* FROM (${scans.join(" UNION ALL ")}) e ORDER BY e.global_position LIMIT $2`
  }
  const where =
    filters.buckets === undefined
      ? `${below} ${types}`
      : `${below} ${types} AND chronicle_stream_bucket(stream_id) IN (${filters.buckets.join(", ")})`
  return filters.categories
    ? `SELECT e.* FROM unnest($3::text[]) AS c(category), LATERAL (
         SELECT ${columns} FROM chronicle_events
         WHERE category = c.category AND ${where}
         ORDER BY global_position LIMIT $2) e
       ORDER BY e.global_position LIMIT $2`
    : `SELECT ${columns} FROM chronicle_events WHERE ${where} ORDER BY global_position LIMIT $2`
}

/** How often a store reading partitions without the partition index looks again whether it exists. */
const indexRecheckMillis = 10_000

/** How long the notifier waits after a NOTIFY before sending the next: appends in between share one. */
const notifyEvery = "100 millis"

/** Builds the store on the `PgClient` in context; its background fibers live in the caller's scope. */
export const make = Effect.fnUntraced(function* (options: Options = {}) {
  const sql = yield* PgClient.PgClient
  const channel = options.channel ?? "chronicle_events"
  const pollInterval = options.pollInterval ?? "500 millis"
  const commits =
    options.groupCommit === false
      ? undefined
      : yield* GroupCommit.make(sql, options.groupCommit === true ? {} : (options.groupCommit ?? {}))
  // Every append statement, built once, indexed by expectation and then by `single + 2 * inTransaction`.
  const shapes = (expected: ExpectedVersion.ExpectedVersion["_tag"]) =>
    [false, true].flatMap((inTransaction) =>
      [false, true].map((single) => appendStatement({ expected, single, inTransaction }))
    )
  const statements: Record<ExpectedVersion.ExpectedVersion["_tag"], ReadonlyArray<string>> = {
    Exact: shapes("Exact"),
    NoStream: shapes("NoStream"),
    Any: shapes("Any"),
    StreamExists: shapes("StreamExists")
  }

  const storeError = (operation: string, stream?: string) => (cause: SqlError.SqlError) =>
    new EventStore.EventStoreError(stream === undefined ? { operation, cause } : { operation, stream, cause })

  // Wake-ups: local appends publish here directly; the notifier tells other processes; the listener relays theirs.
  const wakeups = yield* PubSub.sliding<void>(1)
  const appended = yield* PubSub.sliding<void>(1)
  yield* Stream.fromPubSub(appended).pipe(
    Stream.runForEach(() => sql.notify(channel, "").pipe(Effect.ignore, Effect.andThen(Effect.sleep(notifyEvery)))),
    Effect.forkScoped
  )
  // Followers read behind the horizon: while they do, its age is sampled for the gauge (without spans, as lag is).
  const sampleHorizon = horizonNow.pipe(
    Effect.provideService(SqlClient.SqlClient, sql),
    Effect.ignore,
    Effect.withTracerEnabled(false),
    Effect.repeat(Schedule.spaced(options.horizonInterval ?? "5 seconds")),
    Effect.forkScoped
  )
  // The listener holds a connection of its own, outside the app's pool, and only while something subscribes: the
  // first subscription opens it (and the horizon's sampler), the last one to end closes it.
  const listener = yield* RcRef.make({
    acquire: Effect.andThen(
      sampleHorizon,
      Effect.scoped(
        Effect.flatMap(PgConnection.make(sql.config), (connection) =>
          Effect.flatMap(connection.listen(channel), (queue) =>
            Effect.forever(Effect.flatMap(Queue.take(queue), () => PubSub.publish(wakeups, undefined)))
          )
        )
      ).pipe(
        Effect.tapCause(() => PubSub.publish(wakeups, undefined)),
        Effect.retry(reconnect),
        Effect.forkScoped,
        Effect.asVoid
      )
    )
  })

  /** Wakes this process's subscribers and, through the throttled NOTIFY, other processes'. */
  const wake = Effect.asVoid(Effect.andThen(PubSub.publish(wakeups, undefined), PubSub.publish(appended, undefined)))

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
      if (ExpectedVersion.isSatisfiedBy(expected, actual)) {
        const full = EventStore.refuseFull(stream, actual, prepared.length)
        return full === undefined ? Option.none<EventStore.AppendResult>() : yield* full
      }
      return yield* new EventStore.ConcurrencyError({ stream, expected: ExpectedVersion.describe(expected), actual })
    })

  /** How many events the caller's transaction has written so far, in its slot of positions. */
  const eventsInTransaction = sql<{ used: bigint }>`
    SELECT coalesce(max(global_position) + 1 - tx.base, 0) AS used
    FROM (SELECT pg_current_xact_id()::text::bigint << 20 AS base) tx
    LEFT JOIN chronicle_events ON global_position >= tx.base AND global_position < tx.base + ${transactionSlots}
    GROUP BY tx.base`.pipe(Effect.map(([row]) => Number(row?.used ?? 0n)))

  /** An append's own statement: the statement of its shape with its parameters. */
  const insertStatement = (
    stream: string,
    category: string,
    prepared: ReadonlyArray<EventStore.PreparedEvent>,
    expected: ExpectedVersion.ExpectedVersion,
    inTransaction: boolean
  ) => {
    const version = expected._tag === "Exact" ? expected.version : 0
    const statement = statements[expected._tag][(prepared.length === 1 ? 1 : 0) + (inTransaction ? 2 : 0)]!
    if (prepared.length === 1) {
      const { event, dataJson, metadataJson } = prepared[0]!
      return sql.unsafe<GroupCommit.Row>(statement, [
        stream,
        category,
        version,
        event.eventId,
        event.type,
        event.schemaVersion,
        dataJson,
        metadataJson
      ])
    }
    return sql.unsafe<GroupCommit.Row>(statement, [
      stream,
      category,
      version,
      prepared.map(({ event }) => event.eventId),
      prepared.map(({ event }) => event.type),
      prepared.map(({ event }) => event.schemaVersion),
      prepared.map(({ dataJson }) => dataJson),
      prepared.map(({ metadataJson }) => metadataJson),
      ...(inTransaction ? [prepared.length] : [])
    ])
  }

  const nothing: ReadonlyArray<GroupCommit.Row> = []
  /** An attempt's rows, or none when the unique indexes or the last version refused it: the caller resolves why. */
  const rowsOrNothing = (attempt: Effect.Effect<ReadonlyArray<GroupCommit.Row>, SqlError.SqlError>) =>
    Effect.catchIf(
      attempt,
      (error) => error.reason._tag === "UniqueViolation" || pastLastVersion(error),
      () => Effect.succeed(nothing)
    )

  /** The result of an attempt that wrote `rows` (at least one), after waking subscribers. */
  const written = (stream: string, rows: ReadonlyArray<GroupCommit.Row>, inTransaction: boolean) => {
    const last = rows.at(-1)!
    const result: EventStore.AppendResult = {
      stream,
      version: last.version,
      position: last.global_position,
      written: rows.length
    }
    // In a caller's transaction, subscribers can only see the events once it commits.
    return Effect.as(inTransaction ? sql.afterCommit(wake) : wake, result)
  }

  /**
   * After an attempt that wrote nothing: a repeat, a wrong expectation, or a concurrent writer that took the version
   * first. Retries wait for the stream's append lock first, so they stop competing with each other for the version.
   */
  const resolveOrRetry = (
    stream: string,
    prepared: ReadonlyArray<EventStore.PreparedEvent>,
    expected: ExpectedVersion.ExpectedVersion,
    inTransaction: boolean,
    insert: Effect.Effect<ReadonlyArray<GroupCommit.Row>, SqlError.SqlError>
  ) =>
    Effect.gen(function* () {
      const lockedInsert = sql.withTransaction(
        Effect.andThen(sql`SELECT pg_advisory_xact_lock(${appendLockClass}, hashtext(${stream}))`, insert)
      )
      for (let attempt = 2; ; attempt++) {
        const outcome = yield* resolveFailure(stream, prepared, expected)
        if (Option.isSome(outcome)) return outcome.value
        if (inTransaction && (yield* eventsInTransaction) + prepared.length > transactionSlots) {
          return yield* new EventStore.InvalidAppend({
            stream,
            reason: { _tag: "TransactionFull", limit: transactionSlots }
          })
        }
        if (attempt > attempts) break
        const rows = yield* rowsOrNothing(lockedInsert)
        if (rows.length > 0) return yield* written(stream, rows, inTransaction)
      }
      return yield* new EventStore.AppendContention({ stream, attempts })
    })

  // The common path (valid input, the first attempt writes) is a short chain without a generator: it runs once per
  // append, so its allocations are the client's cost per append.
  const append = (
    stream: string,
    events: ReadonlyArray<Envelope.EventData>,
    expected: ExpectedVersion.ExpectedVersion
  ): Effect.Effect<EventStore.AppendResult, EventStore.AppendError> =>
    Effect.withFiber<EventStore.AppendResult, EventStore.AppendError | SqlError.SqlError>((fiber) => {
      const checked = EventStore.prepareAppend(stream, events, expected)
      if (Result.isFailure(checked)) return Effect.fail(checked.failure)
      const { events: prepared, expected: valid } = checked.success
      // Inside a caller's transaction a unique violation would abort it, and the queries that classify the failure
      // with it: there the insert runs under a savepoint (a nested withTransaction), which the violation rolls back.
      const inTransaction = Context.getOrUndefined(fiber.context, sql.transactionService) !== undefined
      const category = StreamName.category(stream)
      // The append's own statement, built when it runs: an append that shares a batch never needs it.
      const insert = Effect.suspend(() => insertStatement(stream, category, prepared, valid, inTransaction))
      // An exact-version append outside a transaction may share a round trip (GroupCommit).
      const first =
        commits !== undefined && !inTransaction && (valid._tag === "Exact" || valid._tag === "NoStream")
          ? commits.submit({
              stream,
              category,
              expected: valid._tag === "Exact" ? valid.version : 0,
              events: prepared,
              alone: insert
            })
          : inTransaction
            ? sql.withTransaction(insert)
            : insert
      return Effect.flatMap(rowsOrNothing(first), (rows) =>
        rows.length > 0
          ? written(stream, rows, inTransaction)
          : resolveOrRetry(stream, prepared, valid, inTransaction, insert)
      )
    }).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(storeError("append", stream)(error))))

  const readStreamStatement = (backward: boolean) =>
    `SELECT ${columns} FROM chronicle_events WHERE stream_id = $1 AND version >= $2 AND version <= $3 ORDER BY version${backward ? " DESC" : ""}`

  // Without a page size a stream is read by one statement whose rows arrive as the consumer pulls them (the driver
  // pauses the socket while it is behind), so a load costs one round trip and memory stays bounded for any length;
  // the connection is held until the stream ends. With a page size, one statement per page.
  const readStream = (stream: string, readOptions: EventStore.ReadStreamOptions = {}) =>
    Stream.unwrap(
      Effect.map(Effect.fromResult(StreamName.validate(stream)), () => {
        const { from, to } = EventStore.streamRange(readOptions)
        const backward = readOptions.direction === "backward"
        const pageSize = readOptions.pageSize
        if (pageSize === undefined) {
          return sql
            .unsafe<EventRow>(readStreamStatement(backward), [stream, from, to])
            .stream.pipe(Stream.map(toRecorded), Stream.mapError(storeError("readStream", stream)))
        }
        // The cursor is the next version to read: the lowest still unread forward, the highest backward.
        return Stream.paginate(backward ? to : from, (cursor: number) =>
          sql
            .unsafe<EventRow>(
              `${readStreamStatement(backward)} LIMIT $4`,
              backward ? [stream, from, cursor, pageSize] : [stream, cursor, to, pageSize]
            )
            .pipe(
              Effect.map((rows) => {
                const page = rows.map(toRecorded)
                const last = page.at(-1)
                return [
                  page,
                  last === undefined || page.length < pageSize
                    ? Option.none<number>()
                    : Option.some(backward ? last.version - 1 : last.version + 1)
                ] as const
              }),
              Effect.mapError(storeError("readStream", stream))
            )
        )
      })
    )

  // Whether the partition index exists and is valid: asked at most once per `indexRecheckMillis` until it is seen, so
  // pages read without it do not each pay a catalog query; once seen, known.
  let partitionIndexed = false
  let indexCheckedAt = Number.NEGATIVE_INFINITY
  let warnedUnindexed = false
  const partitionIndex = Effect.suspend(() => {
    if (partitionIndexed) return Effect.succeed(true)
    const now = Date.now()
    if (now - indexCheckedAt < indexRecheckMillis) return Effect.succeed(false)
    indexCheckedAt = now
    return sql.unsafe<{ valid: boolean | null }>(PartitionIndex.state).pipe(
      Effect.map(([row]) => row?.valid === true),
      Effect.tap((valid) => {
        partitionIndexed = valid
        if (valid || warnedUnindexed) return Effect.void
        warnedUnindexed = true
        return Effect.logWarning(
          `reading a partition without the partition index (${PartitionIndex.name}): each page scans the log; create it with PgMigrations.partitionIndex`
        )
      })
    )
  })

  const readPage =
    (readOptions: EventStore.ReadAllOptions): Subscription.ReadPage<EventStore.EventStoreError> =>
    (after, limit) => {
      // A category or type Postgres cannot store matches no event: leave it out rather than send it.
      const storable = (names: ReadonlyArray<string> | undefined) =>
        names === undefined ? undefined : [...new Set(names)].filter((name) => Storable.textProblem(name) === undefined)
      const categories = storable(readOptions.categories)
      const types = storable(readOptions.types)
      const all = readOptions.partition === undefined ? undefined : Partition.buckets(readOptions.partition)
      if (categories?.length === 0 || types?.length === 0 || all?.length === 0) return Effect.succeed([])
      // The whole log is one partition: read it without the buckets.
      const buckets = all === undefined || all.length === Partition.maxCount ? undefined : all
      const params: Array<unknown> = [after, limit, ...(categories === undefined ? [] : [categories])]
      if (types !== undefined) params.push(types)
      return (buckets === undefined ? Effect.succeed(false) : partitionIndex).pipe(
        Effect.flatMap((indexed) =>
          sql.unsafe<EventRow>(
            readAllStatement({
              categories: categories !== undefined,
              types: types !== undefined,
              ...(buckets === undefined ? {} : { buckets, indexed })
            }),
            params
          )
        ),
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

  // Every committed row is visible to a new statement's snapshot, whatever the horizon.
  const lastCommitted = sql<{ p: bigint | null }>`SELECT max(global_position) AS p FROM chronicle_events`.pipe(
    Effect.map(([row]) => row?.p ?? 0n),
    Effect.mapError(storeError("lastCommitted"))
  )

  // A subscription outlives database restarts: failed reads are retried with capped backoff, unless the server's
  // answer shows waiting cannot help (a missing table, a refused permission), which ends it.
  const resilient =
    (read: Subscription.ReadPage<EventStore.EventStoreError>): Subscription.ReadPage<EventStore.EventStoreError> =>
    (after, limit) =>
      read(after, limit).pipe(
        Effect.tapError((error) => Effect.logWarning(`subscription read failed: ${error.message}`)),
        Effect.retry({ schedule: reconnect, while: (error) => error.retryMayHelp })
      )

  const locateEvent = (eventId: string) =>
    EventStore.isEventId(eventId)
      ? sql<{ stream_id: string; version: number; global_position: bigint }>`
          SELECT stream_id, version, global_position FROM chronicle_events WHERE event_id = ${eventId}::uuid`.pipe(
          Effect.map(([row]) =>
            row === undefined
              ? Option.none<EventStore.EventLocation>()
              : Option.some({ stream: row.stream_id, version: row.version, position: row.global_position })
          ),
          Effect.mapError(storeError("locateEvent"))
        )
      : Effect.succeed(Option.none<EventStore.EventLocation>())

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
      Stream.unwrap(
        Effect.as(
          RcRef.get(listener),
          Subscription.catchUpThenLive(
            resilient(readPage(readOptions)),
            readOptions.after ?? 0n,
            readOptions.pageSize ?? EventStore.defaultPageSize,
            { wakeups: Stream.fromPubSub(wakeups), pollInterval }
          )
        )
      ),
    head,
    lastCommitted,
    locateEvent
  }

  return store
})

/**
 * Reports the read horizon and the backend holding it back, if any: the session whose open writing transaction is the
 * oldest on the server (`pg_stat_activity.backend_xid`), what it runs, and for how long its transaction has been open;
 * sets `Metrics.horizonAge` to that age (0 when no transaction holds it).
 */
export const horizonNow: Effect.Effect<Horizon, EventStore.EventStoreError, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{ position: bigint; pid: number | null; query: string | null; age_ms: number | null }>`
      SELECT ${sql.literal(horizon)} AS position, a.pid, a.query,
        (extract(epoch FROM now() - a.xact_start) * 1000)::float8 AS age_ms
      FROM (SELECT 1) one
      LEFT JOIN pg_stat_activity a ON a.backend_xid IS NOT NULL
        AND a.backend_xid::text::bigint = pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296
      LIMIT 1`.pipe(
      Effect.map(
        ([row]): Horizon => ({
          position: row?.position ?? 0n,
          holder:
            row === undefined || row.pid === null
              ? Option.none()
              : Option.some({ pid: row.pid, query: row.query ?? "", ageMs: row.age_ms ?? 0 })
        })
      ),
      Effect.tap((horizon) =>
        Metric.update(Metrics.horizonAge, horizon.holder._tag === "Some" ? horizon.holder.value.ageMs / 1000 : 0)
      ),
      Effect.mapError((cause) => new EventStore.EventStoreError({ operation: "horizon", cause }))
    )
)

/** Provides the Postgres `EventStore` on the `PgClient` in context, with spans and metrics (run `PgMigrations` first). */
export const layer = (options: Options = {}): Layer.Layer<EventStore.EventStore, never, PgClient.PgClient> =>
  Layer.effect(
    EventStore.EventStore,
    Effect.map(make(options), (store) =>
      Instrumentation.eventStore(store, { system: "postgresql", collection: "chronicle_events" })
    )
  )
