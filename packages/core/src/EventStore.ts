/**
 * The event store: append events to a stream with an expected version, read a stream forward, read the global log
 * in order, and subscribe to it (catch-up, then live). `layerMemory` is a complete in-memory store for unit tests and
 * single-process apps; `@chronicle/postgres` provides the durable one. Both pass the same conformance suite.
 */
import { Context, Effect, Layer, Option, PubSub, Result, Schema, Stream } from "effect"
import type { EventData, RecordedEvent } from "./Envelope.ts"
import * as ExpectedVersion from "./ExpectedVersion.ts"
import * as Instrumentation from "./Instrumentation.ts"
import { describeCause } from "./internal/describeCause.ts"
import * as StreamName from "./StreamName.ts"
import * as Subscription from "./Subscription.ts"

/** The stream was not at the expected version, so nothing was written. */
export class ConcurrencyError extends Schema.TaggedError<ConcurrencyError>()("ConcurrencyError", {
  stream: Schema.String,
  expected: Schema.String,
  actual: Schema.Int
}) {
  override get message() {
    return `${this.stream}: expected version ${this.expected}, found ${this.actual}`
  }
}

/** The events offered to `append` cannot be stored as they are; nothing was written. */
export class InvalidAppend extends Schema.TaggedError<InvalidAppend>()("InvalidAppend", {
  stream: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot append to ${this.stream}: ${this.reason}`
  }
}

/**
 * The store could not be reached or failed while working. For an append the outcome is unknown when the failure hit
 * during commit: retry with the same event ids, which is safe because appends are idempotent.
 */
export class EventStoreError extends Schema.TaggedError<EventStoreError>()("EventStoreError", {
  operation: Schema.String,
  stream: Schema.optional(Schema.String),
  cause: Schema.Defect()
}) {
  override get message() {
    const detail = describeCause(this.cause)
    return `${this.operation}${this.stream === undefined ? "" : ` on ${this.stream}`} failed: ${detail}`
  }
}

/** Every way an append can fail. */
export type AppendError = ConcurrencyError | InvalidAppend | StreamName.InvalidStreamName | EventStoreError

/** What an append wrote: the stream's version and the global position of its last event afterwards. */
export interface AppendResult {
  readonly stream: string
  /** The stream's version after the append: pass it as the expected version of the next one. */
  readonly version: number
  /** The global position of the last event appended. */
  readonly position: bigint
  /** How many events this call wrote: 0 when it repeated an append that had already succeeded. */
  readonly written: number
}

/** Which part of the global log to read, and from where. */
export interface ReadAllOptions {
  /** Read events after this position (exclusive); 0n, the default, reads from the start. */
  readonly after?: bigint
  /** Only events of streams in these categories. */
  readonly categories?: ReadonlyArray<string>
  /** Only events of these types. */
  readonly types?: ReadonlyArray<string>
  /** How many events one page (one database query) reads; 1,000 unless set. */
  readonly pageSize?: number
}

/** Where to start reading a stream. */
export interface ReadStreamOptions {
  /** The first version to read (inclusive); 1, the default, reads the whole stream. */
  readonly from?: number
  /** How many events one page reads; 1,000 unless set. */
  readonly pageSize?: number
}

/** The event store's operations. */
export interface Service {
  /**
   * Appends `events` to `stream` if its version satisfies `expected`: all of them or none. Appending event ids the
   * stream already holds succeeds without writing anything (a retry); an id stored in another stream is refused.
   */
  readonly append: (
    stream: string,
    events: ReadonlyArray<EventData>,
    expected: ExpectedVersion.ExpectedVersion
  ) => Effect.Effect<AppendResult, AppendError>
  /** Reads a stream forward from a version, page by page; an unknown stream reads as empty. */
  readonly readStream: (
    stream: string,
    options?: ReadStreamOptions
  ) => Stream.Stream<RecordedEvent, EventStoreError | StreamName.InvalidStreamName>
  /** The number of events in `stream`: its version, 0 when it has none. */
  readonly streamVersion: (stream: string) => Effect.Effect<number, EventStoreError | StreamName.InvalidStreamName>
  /** Reads the global log in order from a position up to the head at the time of reading, then ends. */
  readonly readAll: (options?: ReadAllOptions) => Stream.Stream<RecordedEvent, EventStoreError>
  /** Reads the global log like `readAll`, then keeps following it: events appended later arrive as they commit. */
  readonly subscribe: (options?: ReadAllOptions) => Stream.Stream<RecordedEvent, EventStoreError>
  /** The position of the last event readers can see now; 0n for an empty log. */
  readonly head: Effect.Effect<bigint, EventStoreError>
}

/** The event store service. */
export class EventStore extends Context.Service<EventStore, Service>()("@chronicle/core/EventStore") {}

/** The largest JSON encoding of one event's data a store accepts, in bytes. */
export const maxEventBytes = 1_048_576

/** An event checked for appending, with its data and metadata already encoded as JSON text. */
export interface PreparedEvent {
  readonly event: EventData
  readonly dataJson: string
  readonly metadataJson: string
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * Checks an append before any store touches it: a valid stream name, at least one event, UUID event ids without
 * repeats, non-empty types, positive schema versions and data within `maxEventBytes`. Every store runs it, so bad
 * input fails the same way everywhere and nothing is half-written.
 */
export const prepareAppend = (
  stream: string,
  events: ReadonlyArray<EventData>
): Result.Result<ReadonlyArray<PreparedEvent>, InvalidAppend | StreamName.InvalidStreamName> => {
  const name = StreamName.validate(stream)
  if (Result.isFailure(name)) return Result.fail(name.failure)
  const fail = (reason: string) => Result.fail(new InvalidAppend({ stream, reason }))
  if (events.length === 0) return fail("no events to append")
  const seen = new Set<string>()
  const prepared: Array<PreparedEvent> = []
  for (const [index, event] of events.entries()) {
    const at = `event ${index} (${event.type})`
    if (!uuid.test(event.eventId)) return fail(`${at}: event id ${JSON.stringify(event.eventId)} is not a UUID`)
    const eventId = event.eventId.toLowerCase()
    if (seen.has(eventId)) return fail(`${at}: event id ${eventId} appears twice in one append`)
    seen.add(eventId)
    if (event.type.length === 0) return fail(`${at}: empty event type`)
    if (!Number.isInteger(event.schemaVersion) || event.schemaVersion < 1) {
      return fail(`${at}: schema version ${event.schemaVersion} is not a positive integer`)
    }
    const dataJson = JSON.stringify(event.data)
    if (dataJson === undefined) return fail(`${at}: data is not JSON`)
    if (Buffer.byteLength(dataJson) > maxEventBytes) {
      return fail(`${at}: data is ${Buffer.byteLength(dataJson)} bytes, more than ${maxEventBytes}`)
    }
    prepared.push({ event: { ...event, eventId }, dataJson, metadataJson: JSON.stringify(event.metadata) })
  }
  return Result.succeed(prepared)
}

/**
 * Decides what an append that did not go through means, from the events already stored under its ids: a repeat of
 * an append that succeeded (every id already in this stream), or a refusal when an id is stored in another stream or
 * only some of the ids are stored. Returns `undefined` when none of the ids is stored, so the cause is the expected
 * version.
 */
export const resolveRepeatedAppend = (
  stream: string,
  prepared: ReadonlyArray<PreparedEvent>,
  stored: ReadonlyArray<Pick<RecordedEvent, "eventId" | "stream" | "version" | "position">>
): Result.Result<AppendResult, InvalidAppend> | undefined => {
  if (stored.length === 0) return undefined
  const elsewhere = stored.find((event) => event.stream !== stream)
  if (elsewhere !== undefined) {
    return Result.fail(
      new InvalidAppend({ stream, reason: `event id ${elsewhere.eventId} is already stored in ${elsewhere.stream}` })
    )
  }
  if (stored.length < prepared.length) {
    return Result.fail(
      new InvalidAppend({
        stream,
        reason: `${stored.length} of the ${prepared.length} event ids are already stored in this stream, not all`
      })
    )
  }
  const last = stored.reduce((a, b) => (b.version > a.version ? b : a))
  return Result.succeed({ stream, version: last.version, position: last.position, written: 0 })
}

/** Whether an event passes the category and type filters of `options`. */
export const matches = (options: ReadAllOptions, event: Pick<RecordedEvent, "stream" | "type">): boolean =>
  (options.categories === undefined || options.categories.includes(StreamName.category(event.stream))) &&
  (options.types === undefined || options.types.includes(event.type))

/** How many events a page reads unless the caller says otherwise. */
export const defaultPageSize = 1_000

/**
 * Builds an in-memory event store: the same semantics as the Postgres store (expected versions, all-or-nothing,
 * idempotent appends, global order, live subscriptions), safe under concurrent fibers because every append is one
 * synchronous step.
 */
export const makeMemory: Effect.Effect<Service> = Effect.gen(function* () {
  const log: Array<RecordedEvent> = []
  const streams = new Map<string, Array<RecordedEvent>>()
  const byId = new Map<string, RecordedEvent>()
  const appended = yield* PubSub.sliding<void>(1)

  const append = (stream: string, events: ReadonlyArray<EventData>, expected: ExpectedVersion.ExpectedVersion) =>
    Effect.suspend((): Effect.Effect<AppendResult, AppendError> => {
      const prepared = prepareAppend(stream, events)
      if (Result.isFailure(prepared)) return Effect.fail(prepared.failure)
      const stored = prepared.success.flatMap(({ event }) => byId.get(event.eventId) ?? [])
      const repeated = resolveRepeatedAppend(stream, prepared.success, stored)
      if (repeated !== undefined) return Effect.fromResult(repeated)
      const history = streams.get(stream) ?? []
      if (!ExpectedVersion.isSatisfiedBy(expected, history.length)) {
        return Effect.fail(
          new ConcurrencyError({ stream, expected: ExpectedVersion.describe(expected), actual: history.length })
        )
      }
      const recordedAt = new Date()
      for (const { event, dataJson, metadataJson } of prepared.success) {
        const recorded: RecordedEvent = {
          ...event,
          data: JSON.parse(dataJson),
          metadata: JSON.parse(metadataJson),
          stream,
          version: history.length + 1,
          position: BigInt(log.length + 1),
          recordedAt
        }
        history.push(recorded)
        log.push(recorded)
        byId.set(recorded.eventId, recorded)
      }
      streams.set(stream, history)
      const last = history.at(-1)!
      return Effect.as(PubSub.publish(appended, undefined), {
        stream,
        version: last.version,
        position: last.position,
        written: prepared.success.length
      })
    })

  const validStream = (stream: string) => Effect.fromResult(StreamName.validate(stream))

  const readStream = (stream: string, options: ReadStreamOptions = {}) =>
    Stream.unwrap(
      Effect.map(validStream(stream), () => {
        const from = Math.max(1, options.from ?? 1)
        const pageSize = options.pageSize ?? defaultPageSize
        return Stream.paginate(from, (version: number) =>
          Effect.sync(() => {
            const page = (streams.get(stream) ?? []).slice(version - 1, version - 1 + pageSize)
            return [page, page.length < pageSize ? Option.none<number>() : Option.some(version + pageSize)] as const
          })
        )
      })
    )

  const readPage =
    (options: ReadAllOptions): Subscription.ReadPage<never> =>
    (after, limit) =>
      Effect.sync(() => {
        const page: Array<RecordedEvent> = []
        for (let i = Number(after); i < log.length && page.length < limit; i++) {
          const event = log[i]!
          if (matches(options, event)) page.push(event)
        }
        return page
      })

  return {
    append,
    readStream,
    streamVersion: (stream) => Effect.map(validStream(stream), () => streams.get(stream)?.length ?? 0),
    readAll: (options = {}) =>
      Subscription.catchUp(readPage(options), options.after ?? 0n, options.pageSize ?? defaultPageSize),
    subscribe: (options = {}) =>
      Subscription.catchUpThenLive(readPage(options), options.after ?? 0n, options.pageSize ?? defaultPageSize, {
        wakeups: Stream.fromPubSub(appended),
        pollInterval: "1 second"
      }),
    head: Effect.sync(() => BigInt(log.length))
  }
})

/** Provides an in-memory `EventStore`, empty when built, with spans and metrics (see `Instrumentation`). */
export const layerMemory: Layer.Layer<EventStore> = Layer.effect(
  EventStore,
  Effect.map(makeMemory, Instrumentation.eventStore)
)
