/**
 * Group commit by natural batching, for appends with an exact expected version (`exact(n)` or `noStream`) outside a
 * caller's transaction. One round trip is in flight at a time: an append that finds the store idle goes at once,
 * with its own statement, so a lone append costs what it always did; appends that arrive while a round trip is in
 * flight wait, and the next round trip carries all of them (at most one per stream, up to `maxEvents` events) in one
 * INSERT, so one transaction, one commit and one fsync serve them all. No timer holds anything back.
 *
 * Each append in a batch keeps its own expectation and its own all-or-nothing: the statement writes an append's
 * events only if its stream is exactly at the expected version and none of its event ids is stored, so a conflict
 * or a repeat writes nothing for that append and leaves the others alone. What a caller gets back is the rows its own
 * append wrote, or none: then it resolves its outcome (a repeat, a conflict, or a retry) on its own, as after a lone
 * attempt. When a batch fails as a whole (a writer outside the batch took a version or an id between the checks and
 * the insert, or one append holds a value the server refuses), every caller in it gets no rows and retries alone,
 * so one bad append fails only itself.
 *
 * Closing: when the scope the store was made in closes, every append not yet answered (queued, carried to the next
 * round, or in the round trip in flight) fails at once with a `ConnectionError` saying the store closed, and so does
 * every append submitted afterwards. One in flight may or may not have committed: like any failure during commit,
 * retrying it with the same event ids on an open store is safe.
 *
 * Positions: every event of a batch gets `(transaction id << 20) + its index in the batch`, exactly as the events of
 * one append in its own transaction do, so the global-order argument of `PgEventStore` holds unchanged.
 */
import type { EventStore } from "@chronicle/core"
import { Deferred, Effect, Exit, Queue, type Scope } from "effect"
import { type SqlClient, SqlError } from "effect/sql"

/** What an append statement returns for each event written. */
export interface Row {
  readonly global_position: bigint
  readonly version: number
}

/** An append that may share a round trip with others. */
export interface Append {
  readonly stream: string
  readonly category: string
  /** The version the stream must be at: 0 for a stream that must not exist yet. */
  readonly expected: number
  readonly events: ReadonlyArray<EventStore.PreparedEvent>
  /** The append's own statement, run when it goes alone. */
  readonly alone: Effect.Effect<ReadonlyArray<Row>, SqlError.SqlError>
}

/** Sends appends to the database, batching those that arrive while a round trip is in flight. */
export interface GroupCommit {
  /** The rows this append wrote, or none when it wrote nothing (the caller then resolves why). */
  readonly submit: (append: Append) => Effect.Effect<ReadonlyArray<Row>, SqlError.SqlError>
}

interface Pending {
  readonly append: Append
  readonly done: Deferred.Deferred<ReadonlyArray<Row>, SqlError.SqlError>
}

/**
 * The batch statement. Parameters: per append $1 stream, $2 category, $3 expected version; per event $4 its append's
 * index (1-based), $5 its ordinal in that append, $6 id, $7 type, $8 schema version, $9 data, $10 metadata.
 */
const batchStatement = `WITH a AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int4[]) WITH ORDINALITY AS a(stream, category, expected, n)
  ), e AS (
    SELECT * FROM unnest($4::int4[], $5::int4[], $6::uuid[], $7::text[], $8::int4[], $9::text[]::jsonb[], $10::text[]::jsonb[])
      WITH ORDINALITY AS e(n, ord, id, type, schema_version, data, metadata, pos)
  ), repeated AS (
    SELECT DISTINCT e.n FROM e JOIN chronicle_events c ON c.event_id = e.id
  ), ok AS (
    SELECT a.n, a.stream, a.category, a.expected FROM a
    WHERE (a.expected = 0 OR EXISTS (SELECT 1 FROM chronicle_events c WHERE c.stream_id = a.stream AND c.version = a.expected))
      AND NOT EXISTS (SELECT 1 FROM chronicle_events c WHERE c.stream_id = a.stream AND c.version = a.expected + 1)
      AND a.n NOT IN (SELECT n FROM repeated)
  )
  INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
  SELECT (pg_current_xact_id()::text::bigint << 20) + e.pos - 1, ok.stream, ok.category, ok.expected + e.ord,
    e.id, e.type, e.schema_version, e.data, e.metadata
  FROM e JOIN ok ON ok.n = e.n
  ORDER BY e.pos
  RETURNING global_position, version, stream_id`

const batchParams = (appends: ReadonlyArray<Append>): ReadonlyArray<unknown> => {
  const events = appends.flatMap((append, index) =>
    append.events.map((event, ord) => ({ n: index + 1, ord: ord + 1, event }))
  )
  return [
    appends.map((append) => append.stream),
    appends.map((append) => append.category),
    appends.map((append) => append.expected),
    events.map(({ n }) => n),
    events.map(({ ord }) => ord),
    events.map(({ event }) => event.event.eventId),
    events.map(({ event }) => event.event.type),
    events.map(({ event }) => event.event.schemaVersion),
    events.map(({ event }) => event.dataJson),
    events.map(({ event }) => event.metadataJson)
  ]
}

/** The answer to an append the store could not send or finish because its scope closed. */
const closedError = new SqlError.SqlError({
  reason: new SqlError.ConnectionError({
    cause: undefined,
    operation: "append",
    message:
      "the event store closed before this append was answered; it may or may not have been written: retry it with the same event ids on an open store"
  })
})

/** The most events one batch carries; an append larger than this still goes, alone. */
export const maxEvents = 4_096

/** Starts the batching fiber in the caller's scope. */
export const make = (sql: SqlClient.SqlClient): Effect.Effect<GroupCommit, never, Scope.Scope> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Pending>()
    // Appends left for the next round: a second append to a stream already in a batch, or past `maxEvents`.
    let carried: Array<Pending> = []
    // Every append submitted and not yet answered, wherever it is: the queue, `carried` or the round in flight.
    const unanswered = new Set<Pending>()
    let closed = false
    const close = Effect.sync(() => {
      closed = true
      for (const { done } of unanswered) Deferred.doneUnsafe(done, Exit.fail(closedError))
    })

    const runAlone = (pending: Pending) =>
      Effect.flatMap(Effect.exit(pending.append.alone), (exit) => Deferred.done(pending.done, exit))

    const runBatch = (batch: ReadonlyArray<Pending>) =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(
          sql.unsafe<Row & { stream_id: string }>(batchStatement, batchParams(batch.map(({ append }) => append)))
        )
        const written = new Map<string, Array<Row>>()
        if (Exit.isSuccess(exit)) {
          for (const row of exit.value) {
            const rows = written.get(row.stream_id) ?? []
            rows.push(row)
            written.set(row.stream_id, rows)
          }
        }
        // A batch that failed as a whole wrote nothing: every append in it resolves and retries on its own.
        for (const { append, done } of batch) {
          const rows = (written.get(append.stream) ?? []).sort((x, y) => x.version - y.version)
          yield* Deferred.succeed(done, rows)
        }
      })

    const round = Effect.gen(function* () {
      const arrived = carried.length > 0 ? yield* Queue.clear(queue) : yield* Queue.takeAll(queue)
      const waiting = [...carried, ...arrived]
      carried = []
      const batch: Array<Pending> = []
      const streams = new Set<string>()
      let events = 0
      for (const pending of waiting) {
        const size = pending.append.events.length
        const fits = batch.length === 0 || (!streams.has(pending.append.stream) && events + size <= maxEvents)
        if (fits) {
          batch.push(pending)
          streams.add(pending.append.stream)
          events += size
        } else {
          carried.push(pending)
        }
      }
      yield* batch.length === 1 ? runAlone(batch[0]!) : runBatch(batch)
    })

    yield* Effect.forkScoped(Effect.ensuring(Effect.forever(round), close))
    // Added after the fork, so it runs before the fiber is interrupted: callers are answered without waiting for the
    // round trip in flight to give way.
    yield* Effect.addFinalizer(() => close)

    return {
      submit: (append) =>
        Effect.suspend(() => {
          if (closed) return Effect.fail(closedError)
          const pending: Pending = { append, done: Deferred.makeUnsafe() }
          unanswered.add(pending)
          Queue.offerUnsafe(queue, pending)
          return Effect.ensuring(
            Deferred.await(pending.done),
            Effect.sync(() => unanswered.delete(pending))
          )
        })
    }
  })
