/**
 * Command handling: load an aggregate, `decide`, and append the decided events with the loaded version as the
 * expected version. A concurrent writer makes the append fail with `ConcurrencyError`; the handler then loads and
 * decides again, a bounded number of times. A command may carry an id. Its events then get ids derived from it, so
 * sending the same command twice writes its events once.
 *
 * Loading and snapshots live in `AggregateLoader`. After a command wrote events, the handler passes the state it
 * reached to `AggregateLoader.saveIfDue`.
 *
 * A command is a span, `CommandHandler.handle`, and each attempt a child span, `CommandHandler.attempt`, holding the
 * load, `CommandHandler.decide` and the append; a retry is a second attempt, counted in `chronicle_command_retries_total`.
 * The attempt's W3C `traceparent` is stored in the metadata of the events it decides, with the correlation and
 * causation ids defaulting from it (see `TraceContext`), so whoever handles the events continues the command's trace.
 *
 * **Gotchas**: with snapshots, a command id is recognised among the events after the snapshot. A repeat of an older
 * command is still written once, because the store treats the same event ids as a repeat. But it is decided again
 * first, so a state that now refuses it refuses the repeat.
 */
import { Effect, Metric, Predicate, Result, Schedule, Schema } from "effect"
import type * as Aggregate from "./Aggregate.ts"
import * as AggregateLoader from "./AggregateLoader.ts"
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

/** Options of one command. */
export interface HandleOptions {
  /** The command's id: its events get ids derived from it, so a re-sent command writes nothing new. */
  readonly commandId?: string
  /** Metadata stored with every event the command produces (correlation id...). */
  readonly metadata?: Metadata
  /** How many times to reload and decide again after a `ConcurrencyError`; 3 unless set. */
  readonly maxRetries?: number
}

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
  | StreamClosed
  | AggregateLoader.LoadError
  | AppendError
  | EventCodec.EventEncodeError

const retried = Metrics.by(Metrics.commandRetries, "category")

/** Handles one command for aggregate `id`: load, decide, append; retried on a concurrent write. */
export const handle = <C, E extends Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  id: string,
  command: NoInfer<C>,
  options: HandleOptions = {}
): Effect.Effect<Handled<E, S>, HandleError<Err>, EventStore> => {
  const { decider } = aggregate
  const attempt = (number: number) =>
    Effect.gen(function* () {
      const loaded = yield* AggregateLoader.load(aggregate, id)
      const { stream, state, version } = loaded
      const unchanged = { stream, events: [], state, version, written: 0 }
      if (options.commandId !== undefined && loaded.eventIds.has(EventId.fromCommand(stream, options.commandId, 0))) {
        return unchanged
      }
      if (Decider.isTerminal(decider, state)) return yield* new StreamClosed({ stream, version })
      const decided = yield* Effect.sync(() => decider.decide(command, state)).pipe(
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
        return { ...unchanged, state: reloaded.state, version: reloaded.version }
      }
      const after = Decider.fold(decider, events, state)
      yield* AggregateLoader.saveIfDue(aggregate, loaded, {
        state: after,
        version: result.version,
        eventId: data.at(-1)!.eventId
      })
      return { stream, events, state: after, version: result.version, written: result.written }
    }).pipe(Effect.withSpan("CommandHandler.attempt", { attributes: { "chronicle.attempt": number } }))
  return Effect.suspend(() => {
    let attempts = 0
    return Effect.suspend(() => {
      attempts++
      return attempts === 1
        ? attempt(1)
        : Effect.andThen(Metric.update(retried(aggregate.category), 1), attempt(attempts))
    }).pipe(
      Effect.retry({
        schedule: Schedule.recurs(options.maxRetries ?? 3),
        while: (error) => error instanceof ConcurrencyError
      })
    )
  }).pipe(
    Effect.tap((handled) =>
      Effect.annotateCurrentSpan({ "chronicle.version": handled.version, "chronicle.written": handled.written })
    ),
    Effect.withSpan("CommandHandler.handle", {
      attributes: {
        "chronicle.stream": StreamName.make(aggregate.category, id),
        "chronicle.category": aggregate.category,
        ...(Predicate.hasProperty(command, "_tag") ? { "chronicle.command": String(command._tag) } : {}),
        ...(options.commandId === undefined ? {} : { "chronicle.command_id": options.commandId })
      }
    })
  )
}
