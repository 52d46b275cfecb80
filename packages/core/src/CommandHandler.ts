/**
 * Command handling: load an aggregate, `decide`, and append the decided events with the loaded version as the
 * expected version. A concurrent writer makes the append fail with `ConcurrencyError`; the handler then loads and
 * decides again, after a jittered exponential backoff (the shared `Backoff` schedule), a bounded number of times
 * (`RetryPolicy`, per layer; `maxRetries` and `backoff`, per call). A command that does not fit the aggregate's
 * command schema fails with `InvalidCommand` before anything is loaded. A command may carry an id. Its events then get ids derived from it, so
 * sending the same command twice writes its events once.
 *
 * Loading and snapshots live in `AggregateLoader`. After a command wrote events, the handler passes the state it
 * reached to `AggregateLoader.saveIfDue`.
 *
 * A re-sent command (same command id) is recognised wherever its events are: in the events loaded, or, when loading
 * started from a snapshot, by one lookup of its first event id (`EventStore.locateEvent`). It succeeds with
 * `written: 0` and the stream's current state and version, with or without snapshots, however the state would decide
 * it now.
 *
 * An entity that keeps an aggregate between commands (see `@chronicle/cluster`'s `AggregateEntity`) calls
 * `handleFrom` with the `Loaded` it holds: the first attempt decides on it without reading the stream, and the reply
 * carries the `Loaded` to start the next command from. A conflict loads again, as `handle` does, so a stale state
 * costs one retry and never a lost event.
 *
 * A command is a span, `CommandHandler.handle`, and each attempt a child span, `CommandHandler.attempt`, holding the
 * load, `CommandHandler.decide` and the append; a retry is a second attempt, counted in `chronicle_command_retries_total`.
 * The attempt's W3C `traceparent` is stored in the metadata of the events it decides, with the correlation and
 * causation ids defaulting from it (see `TraceContext`), so whoever handles the events continues the command's trace.
 */
import { Context, Effect, Formatter, Layer, Metric, Option, Predicate, Result, Schema, SchemaIssue } from "effect"
import type * as Aggregate from "./Aggregate.ts"
import * as AggregateLoader from "./AggregateLoader.ts"
import * as Backoff from "./Backoff.ts"
import * as Decider from "./Decider.ts"
import type { Metadata, Tagged } from "./Envelope.ts"
import * as EventCodec from "./EventCodec.ts"
import * as EventId from "./EventId.ts"
import { type AppendError, ConcurrencyError, EventStore } from "./EventStore.ts"
import * as ExpectedVersion from "./ExpectedVersion.ts"
import * as Metrics from "./Metrics.ts"
import * as StreamName from "./StreamName.ts"
import * as TraceContext from "./TraceContext.ts"

/** The stream is in a terminal state (the decider's `isTerminal`) and accepts no more commands. */
export class StreamClosed extends Schema.TaggedError<StreamClosed>()("StreamClosed", {
  stream: Schema.String,
  version: Schema.Int
}) {
  override get message() {
    return `${this.stream} is closed at version ${this.version}`
  }
}

/**
 * The command does not satisfy the aggregate's command schema: it reached no decision and wrote nothing. `path` is
 * where the first problem is (`""` for the command itself), `issue` what it is.
 */
export class InvalidCommand extends Schema.TaggedError<InvalidCommand>()("InvalidCommand", {
  aggregate: Schema.String,
  stream: Schema.String,
  path: Schema.String,
  issue: Schema.String
}) {
  override get message() {
    return `invalid command for ${this.stream}${this.path === "" ? "" : ` at ${this.path}`}: ${this.issue}`
  }
}

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

/** `items[0].sku` for the path `["items", 0, "sku"]`. */
const showPath = (path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>) =>
  path
    .map((segment, index) => {
      const key = typeof segment === "object" ? segment.key : segment
      return typeof key === "number" ? `[${key}]` : `${index === 0 ? "" : "."}${String(key)}`
    })
    .join("")

/** Decodes `command` with the aggregate's command schema, or says where and why it does not fit. */
export const decodeCommand = <C, E extends Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  stream: string,
  command: unknown
): Effect.Effect<C, InvalidCommand> => {
  const decoded = Schema.decodeUnknownResult(aggregate.commands)(command)
  if (Result.isSuccess(decoded)) return Effect.succeed(decoded.success)
  const [first] = formatIssue(decoded.failure.issue).issues
  return Effect.fail(
    new InvalidCommand({
      aggregate: aggregate.category,
      stream,
      path: showPath(first?.path ?? []),
      issue: first?.message ?? decoded.failure.message
    })
  )
}

/**
 * Runs domain code (`decide`, `evolve`): a throw in it is a bug, so it stays a defect, with a message that names the
 * aggregate, the stream, the version and the command or event it was given.
 */
const domainCode = <A>(where: string, run: () => A): Effect.Effect<A> =>
  Effect.sync(run).pipe(
    Effect.catchDefect((defect) =>
      Effect.die(
        new Error(`${where} threw: ${defect instanceof Error ? defect.message : Formatter.format(defect)}`, {
          cause: defect
        })
      )
    )
  )

/** Options of one command. */
export interface HandleOptions {
  /** The command's id: its events get ids derived from it, so a re-sent command writes nothing new. */
  readonly commandId?: string
  /** Metadata stored with every event the command produces (correlation id...). */
  readonly metadata?: Metadata
  /** How many times to reload and decide again after a `ConcurrencyError`; the `RetryPolicy` in context unless set. */
  readonly maxRetries?: number
  /** The backoff between those attempts; the `RetryPolicy` in context unless set. */
  readonly backoff?: Backoff.Options
}

/** How commands retry after a `ConcurrencyError`: how many times, and the jittered backoff between attempts. */
export interface Retry {
  readonly maxRetries: number
  readonly backoff: Backoff.Options
}

/**
 * The default retry: 50 times, waiting from 5 ms, doubling, up to 250 ms, jittered. A command only loses a race when
 * another command of the aggregate wins one, so with n concurrent commands each needs at most n - 1 retries: 32 at
 * once all succeed. The backoff spreads them out so that fewer attempts are wasted.
 */
export const defaultRetry: Retry = { maxRetries: 50, backoff: { min: "5 millis", max: "250 millis" } }

/** The retry of every command that does not set its own; `defaultRetry` unless a layer provides another. */
export class RetryPolicy extends Context.Reference<Retry>("@chronicle/core/CommandHandler/RetryPolicy", {
  defaultValue: () => defaultRetry
}) {}

/** Provides `retry` as the retry of every command handled under it. */
export const layerRetry = (retry: Retry): Layer.Layer<never> => Layer.succeed(RetryPolicy, retry)

/** What handling a command did. */
export interface Handled<Event, State> {
  readonly stream: string
  /** The events the command produced (empty when it changed nothing or was a repeat). */
  readonly events: ReadonlyArray<Event>
  /** The aggregate's state after the command. */
  readonly state: State
  /** The stream's version after the command. */
  readonly version: number
  /** How many events were written: 0 when the command changed nothing or had been handled before. */
  readonly written: number
}

/** Every way handling a command can fail: the domain's refusal, a closed stream, or the store's errors. */
export type HandleError<Err> =
  | Err
  | InvalidCommand
  | StreamClosed
  | AggregateLoader.LoadError
  | AppendError
  | EventCodec.EventEncodeError

const retried = Metrics.by(Metrics.commandRetries, "category")

/** What `handleFrom` did, with the aggregate as it stands after the command: the `Loaded` to start the next from. */
export interface HandledFrom<Event, State> extends Handled<Event, State> {
  readonly loaded: AggregateLoader.Loaded<State>
}

/**
 * Handles one command for aggregate `id`: decode it with the aggregate's command schema, load, decide, append;
 * retried on a concurrent write.
 */
export const handle = <C, E extends Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  id: string,
  command: NoInfer<C>,
  options: HandleOptions = {}
): Effect.Effect<Handled<E, S>, HandleError<Err>, EventStore> =>
  Effect.map(run(aggregate, id, command, options, undefined), ({ loaded: _, ...handled }) => handled)

/**
 * Handles one command for aggregate `id` starting from `loaded`, the aggregate as the caller holds it (the `loaded`
 * of the previous `handleFrom`, or `AggregateLoader.load`): no read when it is current, a load and a retry when a
 * concurrent write made it stale.
 *
 * **Gotchas**: the ids of the events written are added to `loaded.eventIds` when it is a `Set` (they are in the
 * stream, so the set stays true); pass the `loaded` of the previous reply, never one shared with other code.
 */
export const handleFrom = <C, E extends Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  id: string,
  loaded: AggregateLoader.Loaded<S>,
  command: NoInfer<C>,
  options: HandleOptions = {}
): Effect.Effect<HandledFrom<E, S>, HandleError<Err>, EventStore> => run(aggregate, id, command, options, loaded)

const run = <C, E extends Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  id: string,
  command: NoInfer<C>,
  options: HandleOptions,
  start: AggregateLoader.Loaded<S> | undefined
): Effect.Effect<HandledFrom<E, S>, HandleError<Err>, EventStore> => {
  const { decider } = aggregate
  const stream = StreamName.make(aggregate.category, id)
  const attempt = (command: C, number: number) =>
    Effect.gen(function* () {
      const loaded = number === 1 && start !== undefined ? start : yield* AggregateLoader.load(aggregate, id)
      const { stream, state, version } = loaded
      const unchanged = { stream, events: [], state, version, written: 0, loaded }
      if (options.commandId !== undefined) {
        // A re-sent command: its first event is in the loaded tail or, when loading started from a snapshot, perhaps
        // behind it, where one lookup by id finds it. Either way the reply is the one without snapshots. Its first
        // event may also carry the id an older version derived (see EventId), looked up beside it.
        const first = [EventId.fromCommand(stream, options.commandId, 0)]
        const before = EventId.derivedBefore(stream, options.commandId, 0)
        if (before !== undefined) first.push(before)
        if (first.some((id) => loaded.eventIds.has(id))) return unchanged
        if (loaded.snapshotVersion > 0) {
          const store = yield* EventStore
          const found = yield* Effect.forEach(first, (id) => store.locateEvent(id), { concurrency: "unbounded" })
          if (found.some((one) => Option.isSome(one) && one.value.stream === stream)) return unchanged
        }
      }
      if (Decider.isTerminal(decider, state)) return yield* new StreamClosed({ stream, version })
      const decided = yield* domainCode(
        `${aggregate.category}: decide at ${stream}@${version}, command ${Formatter.format(command)}`,
        () => decider.decide(command, state)
      ).pipe(
        Effect.tap((result) =>
          Effect.annotateCurrentSpan("chronicle.event_count", Result.isSuccess(result) ? result.success.length : 0)
        ),
        Effect.withSpan("CommandHandler.decide", { attributes: { "chronicle.version": version } })
      )
      if (Result.isFailure(decided)) return yield* Effect.fail(decided.failure)
      const events = decided.success
      if (events.length === 0) return unchanged
      const metadata = yield* TraceContext.injectCurrent(
        options.commandId === undefined || options.metadata?.causationId !== undefined
          ? (options.metadata ?? {})
          : { ...options.metadata, causationId: options.commandId }
      )
      const data = yield* EventCodec.encodeAll(aggregate.events, events, {
        stream,
        commandId: options.commandId,
        metadata
      })
      const result = yield* (yield* EventStore).append(stream, data, ExpectedVersion.exact(version))
      // A repeat the store recognised. Stored before this load (behind a snapshot), its events are in the loaded state;
      // stored since (the same command sent twice at once), they are not, so the stream is loaded again to report it.
      if (result.written === 0) {
        if (result.version <= version) return unchanged
        const reloaded = yield* AggregateLoader.load(aggregate, id)
        return { ...unchanged, state: reloaded.state, version: reloaded.version, loaded: reloaded }
      }
      const after = yield* domainCode(
        `${aggregate.category}: evolve at ${stream}@${version}, events ${Formatter.format(events)}`,
        () => Decider.fold(decider, events, state)
      )
      const saved = yield* AggregateLoader.saveIfDue(aggregate, loaded, {
        state: after,
        version: result.version,
        eventId: data.at(-1)!.eventId
      })
      const eventIds = loaded.eventIds instanceof Set ? loaded.eventIds : new Set(loaded.eventIds)
      for (const event of data) eventIds.add(event.eventId)
      const next = {
        stream,
        state: after,
        version: result.version,
        eventIds,
        snapshotVersion: saved ? result.version : loaded.snapshotVersion
      }
      return { stream, events, state: after, version: result.version, written: result.written, loaded: next }
    }).pipe(Effect.withSpan("CommandHandler.attempt", { attributes: { "chronicle.attempt": number } }))
  return Effect.flatMap(decodeCommand(aggregate, stream, command), (decoded) =>
    Effect.flatMap(RetryPolicy, (policy) =>
      Effect.suspend(() => {
        let attempts = 0
        return Effect.suspend(() => {
          attempts++
          return attempts === 1
            ? attempt(decoded, 1)
            : Effect.andThen(Metric.update(retried(aggregate.category), 1), attempt(decoded, attempts))
        }).pipe(
          Effect.retry({
            schedule: Backoff.schedule(options.backoff ?? policy.backoff),
            times: options.maxRetries ?? policy.maxRetries,
            while: (error) => error instanceof ConcurrencyError
          })
        )
      })
    )
  ).pipe(
    Effect.tap((handled) =>
      Effect.annotateCurrentSpan({ "chronicle.version": handled.version, "chronicle.written": handled.written })
    ),
    Effect.withSpan("CommandHandler.handle", {
      attributes: {
        "chronicle.stream": stream,
        "chronicle.category": aggregate.category,
        ...(Predicate.hasProperty(command, "_tag") ? { "chronicle.command": String(command._tag) } : {}),
        ...(options.commandId === undefined ? {} : { "chronicle.command_id": options.commandId })
      }
    })
  )
}
