/**
 * Command handling: load an aggregate (fold its stream), `decide`, and append the decided events with the loaded
 * version as the expected version. A concurrent writer makes the append fail with `ConcurrencyError`; the handler then
 * reloads and decides again, a bounded number of times. A command may carry an id: its events then get ids derived
 * from it, so sending the same command twice writes its events once.
 */
import { Effect, Result, Schedule, Schema, Stream } from "effect"
import type * as Aggregate from "./Aggregate.ts"
import * as Decider from "./Decider.ts"
import type { Metadata } from "./Envelope.ts"
import * as EventCodec from "./EventCodec.ts"
import * as EventId from "./EventId.ts"
import { type AppendError, EventStore, type EventStoreError } from "./EventStore.ts"
import * as ExpectedVersion from "./ExpectedVersion.ts"
import type { InvalidStreamName } from "./StreamName.ts"
import * as StreamName from "./StreamName.ts"

/** The stream is in a terminal state (the decider's `isTerminal`) and accepts no more commands. */
export class StreamClosed extends Schema.TaggedError<StreamClosed>()("StreamClosed", {
  stream: Schema.String,
  version: Schema.Int
}) {
  override get message() {
    return `${this.stream} is closed at version ${this.version}`
  }
}

/** An aggregate's state as loaded from its stream. */
export interface Loaded<State> {
  readonly stream: string
  readonly state: State
  /** The stream's version the state reflects: the expected version of the next append. */
  readonly version: number
  /** The ids of the events folded while loading, to recognise a command that was already handled. */
  readonly eventIds: ReadonlySet<string>
}

/** Every way loading can fail. */
export type LoadError = EventStoreError | InvalidStreamName | EventCodec.EventDecodeError

/** Loads aggregate `id`: reads its stream page by page and folds every event into the state. */
export const load = <C, E extends EventCodec.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  id: string
): Effect.Effect<Loaded<S>, LoadError, EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const stream = StreamName.make(aggregate.category, id)
    let state = aggregate.decider.initialState
    let version = 0
    const eventIds = new Set<string>()
    yield* Stream.runForEachArray(store.readStream(stream), (page) =>
      Effect.suspend(() => {
        for (const recorded of page) {
          const decoded = aggregate.events.decode(recorded)
          if (Result.isFailure(decoded)) return Effect.fail(decoded.failure)
          state = aggregate.decider.evolve(state, decoded.success)
          version = recorded.version
          eventIds.add(recorded.eventId)
        }
        return Effect.void
      })
    )
    return { stream, state, version, eventIds }
  })

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
export type HandleError<Err> = Err | StreamClosed | LoadError | AppendError | EventCodec.EventEncodeError

/** Handles one command for aggregate `id`: load, decide, append; retried on a concurrent write. */
export const handle = <C, E extends EventCodec.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  id: string,
  command: NoInfer<C>,
  options: HandleOptions = {}
): Effect.Effect<Handled<E, S>, HandleError<Err>, EventStore> => {
  const { decider } = aggregate
  const attempt = Effect.gen(function* () {
    const loaded = yield* load(aggregate, id)
    const { stream, state, version } = loaded
    const unchanged = { stream, events: [], state, version, written: 0 }
    if (options.commandId !== undefined && loaded.eventIds.has(EventId.fromCommand(stream, options.commandId, 0))) {
      return unchanged
    }
    if (Decider.isTerminal(decider, state)) return yield* new StreamClosed({ stream, version })
    const decided = decider.decide(command, state)
    if (Result.isFailure(decided)) return yield* Effect.fail(decided.failure)
    const events = decided.success
    if (events.length === 0) return unchanged
    const metadata: Metadata =
      options.commandId === undefined || options.metadata?.causationId !== undefined
        ? (options.metadata ?? {})
        : { ...options.metadata, causationId: options.commandId }
    const data = yield* EventCodec.encodeAll(aggregate.events, events, {
      stream,
      commandId: options.commandId,
      metadata
    })
    const result = yield* (yield* EventStore).append(stream, data, ExpectedVersion.exact(version))
    return {
      stream,
      events: result.written === 0 ? [] : events,
      state: result.written === 0 ? state : Decider.fold(decider, events, state),
      version: result.version,
      written: result.written
    }
  })
  return attempt.pipe(
    Effect.retry({
      schedule: Schedule.recurs(options.maxRetries ?? 3),
      while: (error) => (error as { readonly _tag?: unknown })._tag === "ConcurrencyError"
    })
  )
}
