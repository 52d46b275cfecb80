/**
 * Group commit by natural batching, for appends with an exact expected version (`exact(n)` or `noStream`) outside a
 * caller's transaction. An append that finds nothing in flight and nothing waiting runs its own statement at once in
 * the caller's fiber (no queue, no fiber of its own, no timer), so a lone append costs what it would without group
 * commit. Appends that arrive while a round trip is in flight wait; whichever round trip ends first starts the next
 * round, which carries those that wait (at most one per stream, none to a stream already in flight, up to `maxEvents`
 * events and `maxJsonChars` characters of JSON) in one INSERT, so one transaction, one commit and one fsync serve them
 * all. It starts right after the callers of the round that ended are answered, so those that append again at once go
 * in it too.
 *
 * Up to `inFlight` round trips (2 unless set) may be in flight, each on its own connection, but one beside another
 * starts only when at least `splitFrom` events (32 unless set) wait: a second commit pays for itself only when it
 * brings enough work to the server's other cores. Rounds side by side are cut to an even share of the events waiting
 * and in flight (never under `splitFrom`), so that they stay about as large as each other.
 *
 * Each append in a batch keeps its own expectation and its own all-or-nothing: the statement writes an append's
 * events only if its stream is exactly at the expected version and none of its event ids is stored, so a conflict
 * or a repeat writes nothing for that append and leaves the others alone. What a caller gets back is the rows its own
 * append wrote, or none: then it resolves its outcome (a repeat, a conflict, or a retry) on its own, as after a lone
 * attempt. When a batch fails as a whole (a writer outside the batch took a version or an id between the checks and
 * the insert, or one append holds a value the server refuses), every caller in it gets no rows and retries alone,
 * so one bad append fails only itself.
 *
 * Closing: when the scope the store was made in closes, every append not yet answered (waiting, or in a batch in
 * flight) fails at once with a `ConnectionError` saying the store closed, and so does every append submitted
 * afterwards; the batches in flight are then interrupted. One in flight may or may not have committed: like any
 * failure during commit, retrying it with the same event ids on an open store is safe. A lone append in flight runs in
 * its caller's fiber and ends as its statement does, as with group commit off.
 *
 * Positions: every event of a batch gets `(transaction id << 20) + its index in the batch`, exactly as the events of
 * one append in its own transaction do, so the global-order argument of `PgEventStore` holds unchanged.
 */
import type { EventStore } from "@chronicle/core"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
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
 * The batch statement. Parameters: $1 the appends as a JSON array of `{ n, stream, category, expected }` (`n` counts
 * from 1); $2 their events as a JSON array of `{ n, ord, pos, id, type, schema_version }` (`n` the append's, `ord` the
 * ordinal in it, `pos` in the batch), and in the same order their data ($3) and metadata ($4) as arrays of JSON text.
 * `ok` is materialized so that the stream checks run once per append, not once per event.
 *
 * The plan must not depend on the table's size when the statement is first planned. Every look-up in the events table
 * is a correlated scalar subquery with `LIMIT 1`, which Postgres cannot turn into a join, so it stays one index probe
 * per row: as joins, a generic plan made while the table was small scanned it for every batch, and kept doing so as it
 * grew (80-event batches on one connection went from 7 to 24 ms within 120,000 events; in one bench repetition appends
 * fell to 1,200 events/s). And the rows' count comes from `jsonb_to_recordset`, whose estimate does not depend on its
 * argument, so the plan made once is reused: with every column in arrays the planner can count, Postgres planned
 * every batch anew.
 */
export const batchStatement = `WITH a AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS a(n int4, stream text, category text, expected int4)
  ), e AS (
    SELECT x.*, (SELECT true FROM chronicle_events c WHERE c.event_id = x.id LIMIT 1) AS stored
    FROM ROWS FROM (
        jsonb_to_recordset($2::jsonb) AS (n int4, ord int4, pos int4, id uuid, type text, schema_version int4),
        unnest($3::text[]::jsonb[]),
        unnest($4::text[]::jsonb[])
      ) AS x(n, ord, pos, id, type, schema_version, data, metadata)
  ), ok AS MATERIALIZED (
    SELECT a.n, a.stream, a.category, a.expected FROM a
    WHERE (a.expected = 0
        OR (SELECT true FROM chronicle_events c WHERE c.stream_id = a.stream AND c.version = a.expected LIMIT 1))
      AND (SELECT true FROM chronicle_events c WHERE c.stream_id = a.stream AND c.version = a.expected + 1 LIMIT 1)
        IS NULL
      AND a.n NOT IN (SELECT n FROM e WHERE stored)
  )
  INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
  SELECT (pg_current_xact_id()::text::bigint << 20) + e.pos - 1, ok.stream, ok.category, ok.expected + e.ord,
    e.id, e.type, e.schema_version, e.data, e.metadata
  FROM e JOIN ok ON ok.n = e.n
  ORDER BY e.pos
  RETURNING global_position, version, stream_id`

/** The parameters of `batchStatement` for `appends`. */
export const batchParams = (appends: ReadonlyArray<Append>): ReadonlyArray<unknown> => {
  const streams: Array<string> = []
  const events: Array<string> = []
  const data: Array<string> = []
  const metadata: Array<string> = []
  appends.forEach((append, index) => {
    streams.push(
      `{"n":${index + 1},"stream":${JSON.stringify(append.stream)},"category":${JSON.stringify(append.category)},"expected":${append.expected}}`
    )
    append.events.forEach(({ event, dataJson, metadataJson }, ord) => {
      events.push(
        `{"n":${index + 1},"ord":${ord + 1},"pos":${events.length + 1},"id":"${event.eventId}","type":${JSON.stringify(event.type)},"schema_version":${event.schemaVersion}}`
      )
      data.push(dataJson)
      metadata.push(metadataJson)
    })
  })
  return [`[${streams.join(",")}]`, `[${events.join(",")}]`, data, metadata]
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

/**
 * The most characters of JSON (data and metadata together) one batch carries: at most 96 MB of UTF-8, well below the
 * 1 GB Postgres allows one message, so a batch of large events is never refused as a whole. An append larger than
 * this still goes, alone.
 */
export const maxJsonChars = 32 * 2 ** 20

/**
 * The fewest events that start a round trip beside one already in flight, and the smallest share a round is cut to.
 * A round trip costs about 0.5 ms of its own (a commit, an fsync, the trip) and about 20 µs per event on the server,
 * so below about 30 events a second commit costs more than the second core it could use saves.
 */
export const splitFromEvents = 32

/** `value` as a whole number of at least 1, or `otherwise` when it is not a finite number. */
const atLeastOne = (value: number | undefined, otherwise: number): number =>
  value !== undefined && Number.isFinite(value) ? Math.max(1, Math.floor(value)) : otherwise

/** The events of the appends in `batch`. */
const eventsOf = (batch: ReadonlyArray<Pending>): number => {
  let events = 0
  for (const { append } of batch) events += append.events.length
  return events
}

/** How the appends share round trips; every field has a default. */
export interface Options {
  /**
   * How many round trips (lone appends or batches) may be in flight at once, each on its own connection; 2 unless set
   * (a whole number of at least 1; anything else counts as unset).
   */
  readonly inFlight?: number
  /** The fewest waiting events that start a round trip beside one in flight; `splitFromEvents` unless set (as `inFlight`). */
  readonly splitFrom?: number
  /** The most characters of JSON one batch carries; `maxJsonChars` unless set. */
  readonly maxJsonChars?: number
}

/** Starts group commit; round trips still in flight are interrupted when the caller's scope closes. */
export const make = (sql: SqlClient.SqlClient, options: Options = {}): Effect.Effect<GroupCommit, never, Scope.Scope> =>
  Effect.gen(function* () {
    const limit = atLeastOne(options.inFlight, 2)
    const splitFrom = atLeastOne(options.splitFrom, splitFromEvents)
    const jsonLimit = options.maxJsonChars ?? maxJsonChars
    // Round trips run on fibers of their own, with the context the store was made in, in a scope that closes after
    // `close` below (finalizers run in reverse): callers are answered without waiting for a round trip to give way.
    const context = yield* Effect.context<never>()
    const rounds = yield* Scope.fork(yield* Scope.Scope)
    const start = Effect.runForkWith(context)
    // Appends not yet sent, oldest first, and every append submitted and not yet answered, wherever it is.
    let waiting: Array<Pending> = []
    const unanswered = new Set<Pending>()
    // The streams of the appends in flight: a second append to one of them waits for the next round.
    const streams = new Set<string>()
    let inFlight = 0
    // The events waiting and the events in flight.
    let waitingEvents = 0
    let inFlightEvents = 0
    let closed = false

    /** Whether a round trip of `events` events may start now: at once when none is in flight, beside others from `splitFrom`. */
    const mayStart = (events: number) => inFlight === 0 || (inFlight < limit && events >= splitFrom)

    /**
     * Takes the next round's appends from `waiting` (their events count as in flight from here): at most one per stream,
     * up to `maxEvents` events and `maxJsonChars` characters of JSON, and when round trips may run side by side, up to an
     * even share of the events waiting and in flight (never under `splitFrom`), so that the rounds in flight stay about
     * as large as each other.
     */
    const take = (): Array<Pending> => {
      const share = Math.max(splitFrom, Math.ceil((waitingEvents + inFlightEvents) / limit))
      const eventLimit = Math.min(maxEvents, share)
      const batch: Array<Pending> = []
      const rest: Array<Pending> = []
      let events = 0
      let chars = 0
      for (const pending of waiting) {
        const { stream, events: own } = pending.append
        let ownChars = 0
        for (const event of own) ownChars += event.dataJson.length + event.metadataJson.length
        if (
          !streams.has(stream) &&
          (batch.length === 0 || (events + own.length <= eventLimit && chars + ownChars <= jsonLimit))
        ) {
          batch.push(pending)
          streams.add(stream)
          events += own.length
          chars += ownChars
        } else {
          rest.push(pending)
        }
      }
      waiting = rest
      waitingEvents -= events
      inFlightEvents += events
      return batch
    }

    /** Sends what waits, while a round trip may start. */
    const next = (): void => {
      while (!closed && waiting.length > 0 && mayStart(waitingEvents)) {
        const batch = take()
        if (batch.length === 0) return
        inFlight++
        Fiber.runIn(start(round(batch)), rounds)
      }
    }

    /**
     * Ends a round trip, after its callers are answered: those that append again at once (they resume in the answer)
     * wait beside the others, and the next round carries them all.
     */
    const finished = (batch: ReadonlyArray<Pending>) => {
      inFlight--
      inFlightEvents -= eventsOf(batch)
      for (const { append } of batch) streams.delete(append.stream)
      next()
    }

    /** One round trip: a lone append's own statement, or one statement for a batch. */
    const round = (batch: ReadonlyArray<Pending>): Effect.Effect<void> => {
      if (batch.length === 1) {
        const { append, done } = batch[0]!
        return Effect.flatMap(Effect.exit(append.alone), (exit) =>
          Effect.sync(() => {
            Deferred.doneUnsafe(done, exit)
            finished(batch)
          })
        )
      }
      const statement = sql.unsafe<Row & { readonly stream_id: string }>(
        batchStatement,
        batchParams(batch.map(({ append }) => append))
      )
      return Effect.flatMap(Effect.exit(statement), (exit) =>
        Effect.sync(() => {
          const written = new Map<string, Array<Row>>()
          if (Exit.isSuccess(exit)) {
            for (const row of exit.value) {
              const rows = written.get(row.stream_id)
              if (rows === undefined) written.set(row.stream_id, [row])
              else rows.push(row)
            }
          }
          // A batch that failed as a whole wrote nothing: every append in it resolves and retries on its own.
          for (const { append, done } of batch) {
            const rows = (written.get(append.stream) ?? []).sort((x, y) => x.version - y.version)
            Deferred.doneUnsafe(done, Exit.succeed(rows))
          }
          finished(batch)
        })
      )
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        waiting = []
        waitingEvents = 0
        for (const { done } of unanswered) Deferred.doneUnsafe(done, Exit.fail(closedError))
      })
    )

    /**
     * Ends a lone append's round trip. When appends wait, the next round starts after the caller's own continuation
     * (a microtask later), so a caller that appends again at once goes in it too.
     */
    const aloneFinished = (stream: string, events: number) => {
      inFlight--
      inFlightEvents -= events
      streams.delete(stream)
      if (waiting.length > 0) queueMicrotask(next)
    }

    return {
      submit: (append) =>
        Effect.suspend(() => {
          if (closed) return Effect.fail(closedError)
          // The store is idle: the append's own statement runs in the caller's fiber, as without group commit.
          const events = append.events.length
          if (waiting.length === 0 && !streams.has(append.stream) && mayStart(events)) {
            inFlight++
            inFlightEvents += events
            streams.add(append.stream)
            return Effect.ensuring(
              append.alone,
              Effect.sync(() => aloneFinished(append.stream, events))
            )
          }
          const pending: Pending = { append, done: Deferred.makeUnsafe() }
          unanswered.add(pending)
          waiting.push(pending)
          waitingEvents += events
          next()
          return Effect.ensuring(
            Deferred.await(pending.done),
            Effect.sync(() => unanswered.delete(pending))
          )
        })
    }
  })
