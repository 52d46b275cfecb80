/**
 * The event store: append events to a stream with an expected version, read a stream forward, read the global log
 * in order, and subscribe to it (catch-up, then live). `layerMemory` is a complete in-memory store for unit tests and
 * single-process apps; `@chronicle/postgres` provides the durable one. Both pass the same conformance suite.
 */
import { Context, Effect, Layer, Option, PubSub, Result, Schema, Stream } from "effect"
import type { EventData, Metadata, RecordedEvent } from "./Envelope.ts"
import * as ExpectedVersion from "./ExpectedVersion.ts"
import * as Instrumentation from "./Instrumentation.ts"
import { describeCause, retryMayHelp } from "./internal/describeCause.ts"
import * as Partition from "./Partition.ts"
import { encodeJson, type JsonProblem, textProblem } from "./Storable.ts"
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

/** Why `append` refused its input: one case per kind of bad input, each carrying its facts. */
export const Reason = Schema.Union([
  /** The append held no events. */
  Schema.TaggedStruct("NoEvents", {}),
  /** An entry of the batch is not an event, or one of its fields (`field`) has the wrong type or range. */
  Schema.TaggedStruct("BadEvent", { index: Schema.Int, field: Schema.String, detail: Schema.String }),
  /** An event id is not a UUID. */
  Schema.TaggedStruct("NotUuid", { index: Schema.Int, eventId: Schema.String }),
  /** One event id appears twice in the batch. */
  Schema.TaggedStruct("DuplicateIdInBatch", { eventId: Schema.String, first: Schema.Int, second: Schema.Int }),
  /** An event id is already stored in another stream. */
  Schema.TaggedStruct("IdInOtherStream", { eventId: Schema.String, otherStream: Schema.String }),
  /** Some, but not all, of the batch's event ids are already stored in this stream: not a repeat of one append. */
  Schema.TaggedStruct("PartialRepeat", { stored: Schema.Int, total: Schema.Int }),
  /** An event (its type, data and metadata as JSON, in UTF-8 bytes) is larger than `maxEventBytes`. */
  Schema.TaggedStruct("TooLarge", { index: Schema.Int, bytes: Schema.Int, limit: Schema.Int }),
  /** Data or metadata holds a value JSON cannot (a BigInt, NaN, a cycle, a class instance...) at `path`. */
  Schema.TaggedStruct("NotJson", { index: Schema.Int, path: Schema.String, detail: Schema.String }),
  /** A type, or a string in data or metadata (at `path`), holds a NUL or a lone surrogate, which Postgres cannot store. */
  Schema.TaggedStruct("UnrepresentableText", { index: Schema.Int, path: Schema.String, detail: Schema.String }),
  /** The expected version is not one `ExpectedVersion` builds (a plain number, `exact(NaN)`, `exact(2 ** 31)`...). */
  Schema.TaggedStruct("BadExpectedVersion", { expected: Schema.String, detail: Schema.String }),
  /** The stream is at `version`, and `events` more would take it past its last possible version, `limit`. */
  Schema.TaggedStruct("StreamFull", { version: Schema.Int, events: Schema.Int, limit: Schema.Int }),
  /** The caller's transaction already holds as many events as one transaction can (Postgres: 1,048,576). */
  Schema.TaggedStruct("TransactionFull", { limit: Schema.Int }),
  /** Personal data was offered for a subject that has been forgotten (see `CryptoShredding`). */
  Schema.TaggedStruct("SubjectForgotten", { subject: Schema.String }),
  /** An event with personal fields has no subject to encrypt them for (see `CryptoShredding`). */
  Schema.TaggedStruct("NoSubject", { index: Schema.Int, field: Schema.String }),
  /** A personal value would also be stored in the clear: in metadata, the stream name or another field. */
  Schema.TaggedStruct("PersonalDataInClear", { index: Schema.Int }),
  /** The shredding layer has no schema for this type and version, and the type is not declared free of personal data. */
  Schema.TaggedStruct("UnregisteredType", { index: Schema.Int, type: Schema.String, schemaVersion: Schema.Int })
])
export type Reason = typeof Reason.Type

/** A sentence for a reason, as `InvalidAppend`'s message shows it. */
export const describeReason = (reason: Reason): string => {
  switch (reason._tag) {
    case "NoEvents":
      return "no events to append"
    case "BadEvent":
      return `event ${reason.index}: ${reason.field} ${reason.detail}`
    case "NotUuid":
      return `event ${reason.index}: event id ${reason.eventId} is not a UUID`
    case "DuplicateIdInBatch":
      return `event id ${reason.eventId} appears twice in one append (events ${reason.first} and ${reason.second})`
    case "IdInOtherStream":
      return `event id ${reason.eventId} is already stored in ${reason.otherStream}`
    case "PartialRepeat":
      return `${reason.stored} of the ${reason.total} event ids are already stored in this stream, not all`
    case "TooLarge":
      return `event ${reason.index} is ${reason.bytes} bytes, more than ${reason.limit}`
    case "NotJson":
      return `event ${reason.index}: ${reason.path} is not JSON: ${reason.detail}`
    case "UnrepresentableText":
      return `event ${reason.index}: ${reason.path} ${reason.detail}`
    case "BadExpectedVersion":
      return `expected version ${reason.expected}: ${reason.detail}`
    case "StreamFull":
      return `the stream is at version ${reason.version}: ${reason.events} more events would take it past its last version ${reason.limit}`
    case "TransactionFull":
      return `the transaction already holds ${reason.limit} events, as many as one transaction can`
    case "SubjectForgotten":
      return `subject ${reason.subject} was forgotten; its personal data cannot be stored`
    case "NoSubject":
      return `event ${reason.index}: personal fields need a subject, and ${reason.field} is empty`
    case "PersonalDataInClear":
      return `event ${reason.index}: a personal value also appears in the clear (metadata, stream name or a field)`
    case "UnregisteredType":
      return `event ${reason.index}: the shredding layer has no schema for ${reason.type} v${reason.schemaVersion}; add its aggregate to the layer, or declare the type free of personal data`
  }
}

/**
 * The input offered to `append` cannot be stored as it is; nothing was written, and no retry of the same input can
 * succeed. `reason` says which rule it broke, with the facts (`catchTag("InvalidAppend")`, then switch on
 * `reason._tag`).
 */
export class InvalidAppend extends Schema.TaggedError<InvalidAppend>()("InvalidAppend", {
  stream: Schema.String,
  reason: Reason
}) {
  override get message() {
    return `cannot append to ${this.stream}: ${describeReason(this.reason)}`
  }
}

/**
 * An append whose expectation held kept losing its version to other writers, so the store gave up; nothing was
 * written and retrying may succeed. The Postgres store serialises such appends on the stream, so this only happens
 * inside a caller's REPEATABLE READ or SERIALIZABLE transaction, whose snapshot never shows the winners (retry the
 * transaction), or when exact-version writers keep winning its version (`attempts` times in a row).
 */
export class AppendContention extends Schema.TaggedError<AppendContention>()("AppendContention", {
  stream: Schema.String,
  attempts: Schema.Int
}) {
  override get message() {
    return `${this.stream}: other writers kept taking the next version for ${this.attempts} attempts; nothing was written, retry`
  }
}

/**
 * The store could not be reached or failed while working: infrastructure trouble, never bad input. `retryMayHelp`
 * says whether trying again may succeed (a lost connection, a restarting server) or not (a missing table, a refused
 * permission). For an append the outcome is unknown when the failure hit during commit: retry with the same event
 * ids, which is safe because appends are idempotent.
 */
export class EventStoreError extends Schema.TaggedError<EventStoreError>()("EventStoreError", {
  operation: Schema.String,
  stream: Schema.optional(Schema.String),
  cause: Schema.Defect()
}) {
  /** Whether trying again may succeed: false when the server's answer shows waiting cannot help. */
  get retryMayHelp(): boolean {
    return retryMayHelp(this.cause)
  }
  override get message() {
    const detail = describeCause(this.cause)
    const advice = this.retryMayHelp ? "a retry may help" : "retrying cannot help"
    return `${this.operation}${this.stream === undefined ? "" : ` on ${this.stream}`} failed (${advice}): ${detail}`
  }
}

/** Every way an append can fail. */
export type AppendError =
  | ConcurrencyError
  | AppendContention
  | InvalidAppend
  | StreamName.InvalidStreamName
  | EventStoreError

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
  /** Only events of streams in this partition of the log (see `Partition`); a page costs about its share of the log. */
  readonly partition?: Partition.Partition
  /** How many events one page (one database query) reads; 1,000 unless set. */
  readonly pageSize?: number
}

/** Which versions of a stream to read, and in which order. */
export interface ReadStreamOptions {
  /** The first version to read (inclusive); 1, the default, reads the whole stream. */
  readonly from?: number
  /** The last version to read (inclusive); the stream's end unless set ("as of" a version). */
  readonly to?: number
  /** `"forward"` (the default) reads oldest first; `"backward"` reads newest first, from `to` down to `from`. */
  readonly direction?: "forward" | "backward"
  /**
   * How many events one page (one query) reads. Unset, the Postgres store reads the stream in one streamed statement
   * (holding a connection until the stream ends) and the in-memory store in pages of 1,000.
   */
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
  /** Reads the versions `from`..`to` of a stream, forward or backward (see `pageSize`); an unknown stream reads as empty. */
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
  /**
   * The position of the last event readers can see now; 0n for an empty log. Reading or subscribing `after` it never
   * skips an event that commits later.
   */
  readonly head: Effect.Effect<bigint, EventStoreError>
  /**
   * The position of the last committed event; 0n for an empty log. At least `head`: on a store whose readers wait
   * behind a transaction still open (Postgres's horizon), events committed after that transaction began lie between
   * the two until it ends. Wait for it to know that everything committed before now has been read.
   */
  readonly lastCommitted: Effect.Effect<bigint, EventStoreError>
  /**
   * Where the event stored under `eventId` is, in whichever stream holds it: one index lookup. None when no stream
   * holds it (or `eventId` is not a UUID). The command handler uses it to recognise a re-sent command.
   */
  readonly locateEvent: (eventId: string) => Effect.Effect<Option.Option<EventLocation>, EventStoreError>
}

/** Where a stored event is: its stream, its version there, and its global position. */
export interface EventLocation {
  readonly stream: string
  readonly version: number
  readonly position: bigint
}

/** Whether `eventId` is a UUID, as every stored event id is. */
export const isEventId = (eventId: unknown): eventId is string => typeof eventId === "string" && uuid.test(eventId)

/** The event store service. */
export class EventStore extends Context.Service<EventStore, Service>()("@chronicle/core/EventStore") {}

/**
 * The largest event a store accepts, in UTF-8 bytes: its type plus the JSON encodings of its data and its metadata.
 */
export const maxEventBytes = 1_048_576

/** An event checked for appending, with its data and metadata already encoded as JSON text. */
export interface PreparedEvent {
  readonly event: EventData
  readonly dataJson: string
  readonly metadataJson: string
}

/** An append checked before any store touches it: its events, ready to write, and its valid expectation. */
export interface PreparedAppend {
  readonly events: ReadonlyArray<PreparedEvent>
  readonly expected: ExpectedVersion.ExpectedVersion
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const describeValue = (value: unknown): string =>
  typeof value === "string"
    ? JSON.stringify(value)
    : typeof value === "number" || typeof value === "boolean" || value === null || value === undefined
      ? String(value)
      : `a ${typeof value}`

const notStorable = (index: number, { kind, path, detail }: JsonProblem): Reason => ({
  _tag: kind,
  index,
  path,
  detail
})

/**
 * Checks an append before any store touches it, and encodes its events: a valid stream name and expectation, at
 * least one event, UUID event ids without repeats, types of storable text, schema versions from 1 to
 * `ExpectedVersion.maxVersion`, data and metadata that are storable JSON (finite numbers, text without NUL or lone
 * surrogates), events within `maxEventBytes`, and an exact expectation that leaves room for the events below
 * `ExpectedVersion.maxVersion`. A missing metadata is stored as `{}`. Every store runs it, so bad
 * input fails the same way everywhere, before any I/O, and nothing is half-written. It never throws, whatever a
 * JavaScript caller passes.
 */
export const prepareAppend = (
  stream: string,
  events: ReadonlyArray<EventData>,
  expected: ExpectedVersion.ExpectedVersion
): Result.Result<PreparedAppend, InvalidAppend | StreamName.InvalidStreamName> => {
  const name = StreamName.validate(stream)
  if (Result.isFailure(name)) return Result.fail(name.failure)
  const fail = (reason: Reason) => Result.fail(new InvalidAppend({ stream, reason }))
  const expectation = ExpectedVersion.validate(expected)
  if (Result.isFailure(expectation)) {
    return fail({
      _tag: "BadExpectedVersion",
      expected: ExpectedVersion.describeUnknown(expected),
      detail: expectation.failure
    })
  }
  if (!Array.isArray(events)) {
    return fail({
      _tag: "BadEvent",
      index: 0,
      field: "events",
      detail: `must be an array, not ${describeValue(events)}`
    })
  }
  if (events.length === 0) return fail({ _tag: "NoEvents" })
  const seen = new Map<string, number>()
  const prepared: Array<PreparedEvent> = []
  for (let index = 0; index < events.length; index++) {
    const event: unknown = events[index]
    const bad = (field: string, detail: string) => fail({ _tag: "BadEvent", index, field, detail })
    if (typeof event !== "object" || event === null)
      return bad("event", `must be an object, not ${describeValue(event)}`)
    const { eventId, type, schemaVersion, data, metadata = {} } = event as Partial<EventData>
    if (!isEventId(eventId)) {
      return fail({ _tag: "NotUuid", index, eventId: describeValue(eventId) })
    }
    const id = eventId.toLowerCase()
    const first = seen.get(id)
    if (first !== undefined) return fail({ _tag: "DuplicateIdInBatch", eventId: id, first, second: index })
    seen.set(id, index)
    if (typeof type !== "string" || type.length === 0) {
      return bad("type", `must be a non-empty string, not ${describeValue(type)}`)
    }
    const typeProblem = textProblem(type)
    if (typeProblem !== undefined)
      return fail({ _tag: "UnrepresentableText", index, path: "type", detail: typeProblem })
    if (
      typeof schemaVersion !== "number" ||
      !Number.isInteger(schemaVersion) ||
      schemaVersion < 1 ||
      schemaVersion > ExpectedVersion.maxVersion
    ) {
      return bad(
        "schemaVersion",
        `must be an integer from 1 to ${ExpectedVersion.maxVersion}, not ${describeValue(schemaVersion)}`
      )
    }
    if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
      return bad("metadata", `must be a JSON object, not ${describeValue(metadata)}`)
    }
    const dataJson = encodeJson(data, "data")
    if (Result.isFailure(dataJson)) return fail(notStorable(index, dataJson.failure))
    const metadataJson = encodeJson(metadata, "metadata")
    if (Result.isFailure(metadataJson)) return fail(notStorable(index, metadataJson.failure))
    const bytes =
      Buffer.byteLength(type) + Buffer.byteLength(dataJson.success) + Buffer.byteLength(metadataJson.success)
    if (bytes > maxEventBytes) return fail({ _tag: "TooLarge", index, bytes, limit: maxEventBytes })
    prepared.push({
      event: { eventId: id, type, schemaVersion, data: data as Schema.Json, metadata: metadata as Metadata },
      dataJson: dataJson.success,
      metadataJson: metadataJson.success
    })
  }
  const full =
    expectation.success._tag === "Exact" ? refuseFull(stream, expectation.success.version, prepared.length) : undefined
  if (full !== undefined) return Result.fail(full)
  return Result.succeed({ events: prepared, expected: expectation.success })
}

/**
 * Refuses an append of `events` events to a stream at `version` when it would take the stream past
 * `ExpectedVersion.maxVersion` (a Postgres `integer` version); `undefined` when there is room.
 */
export const refuseFull = (stream: string, version: number, events: number): InvalidAppend | undefined =>
  version + events > ExpectedVersion.maxVersion
    ? new InvalidAppend({
        stream,
        reason: { _tag: "StreamFull", version, events, limit: ExpectedVersion.maxVersion }
      })
    : undefined

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
      new InvalidAppend({
        stream,
        reason: { _tag: "IdInOtherStream", eventId: elsewhere.eventId, otherStream: elsewhere.stream }
      })
    )
  }
  if (stored.length < prepared.length) {
    return Result.fail(
      new InvalidAppend({ stream, reason: { _tag: "PartialRepeat", stored: stored.length, total: prepared.length } })
    )
  }
  const last = stored.reduce((a, b) => (b.version > a.version ? b : a))
  return Result.succeed({ stream, version: last.version, position: last.position, written: 0 })
}

/** Whether an event passes the category, type and partition filters of `options`. */
export const matches = (options: ReadAllOptions, event: Pick<RecordedEvent, "stream" | "type">): boolean =>
  (options.categories === undefined || options.categories.includes(StreamName.category(event.stream))) &&
  (options.types === undefined || options.types.includes(event.type)) &&
  (options.partition === undefined || Partition.contains(options.partition, event.stream))

/** How many events a page reads unless the caller says otherwise. */
export const defaultPageSize = 1_000

/** The inclusive version range `options` ask for: 1 up to the highest version a stream can reach unless set. */
export const streamRange = (options: ReadStreamOptions): { readonly from: number; readonly to: number } => ({
  from: Math.max(1, options.from ?? 1),
  to: Math.min(options.to ?? 2_147_483_647, 2_147_483_647)
})

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
      const checked = prepareAppend(stream, events, expected)
      if (Result.isFailure(checked)) return Effect.fail(checked.failure)
      const prepared = checked.success.events
      const stored = prepared.flatMap(({ event }) => byId.get(event.eventId) ?? [])
      const repeated = resolveRepeatedAppend(stream, prepared, stored)
      if (repeated !== undefined) return Effect.fromResult(repeated)
      const history = streams.get(stream) ?? []
      if (!ExpectedVersion.isSatisfiedBy(checked.success.expected, history.length)) {
        return Effect.fail(
          new ConcurrencyError({
            stream,
            expected: ExpectedVersion.describe(checked.success.expected),
            actual: history.length
          })
        )
      }
      const full = refuseFull(stream, history.length, prepared.length)
      if (full !== undefined) return Effect.fail(full)
      const recordedAt = new Date()
      for (const { event, dataJson, metadataJson } of prepared) {
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
        written: prepared.length
      })
    })

  const validStream = (stream: string) => Effect.fromResult(StreamName.validate(stream))

  const readStream = (stream: string, options: ReadStreamOptions = {}) =>
    Stream.unwrap(
      Effect.map(validStream(stream), () => {
        const { from, to } = streamRange(options)
        const pageSize = options.pageSize ?? defaultPageSize
        const history = () => (streams.get(stream) ?? []).slice(from - 1, to)
        if (options.direction === "backward") {
          return Stream.paginate(0, (skip: number) =>
            Effect.sync(() => {
              const all = history()
              const page = all.slice(Math.max(0, all.length - skip - pageSize), all.length - skip).reverse()
              return [page, page.length < pageSize ? Option.none<number>() : Option.some(skip + pageSize)] as const
            })
          )
        }
        return Stream.paginate(0, (skip: number) =>
          Effect.sync(() => {
            const page = history().slice(skip, skip + pageSize)
            return [page, page.length < pageSize ? Option.none<number>() : Option.some(skip + pageSize)] as const
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
    head: Effect.sync(() => BigInt(log.length)),
    lastCommitted: Effect.sync(() => BigInt(log.length)),
    locateEvent: (eventId) =>
      Effect.sync(() => {
        const found = isEventId(eventId) ? byId.get(eventId.toLowerCase()) : undefined
        return found === undefined
          ? Option.none()
          : Option.some({ stream: found.stream, version: found.version, position: found.position })
      })
  }
})

/** Provides an in-memory `EventStore`, empty when built, with spans and metrics (see `Instrumentation`). */
export const layerMemory: Layer.Layer<EventStore> = Layer.effect(
  EventStore,
  Effect.map(makeMemory, Instrumentation.eventStore)
)
