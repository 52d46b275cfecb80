/**
 * Command handling: load an aggregate (its latest usable snapshot, then the events after it), `decide`, and append
 * the decided events with the loaded version as the expected version. A concurrent writer makes the append fail with
 * `ConcurrencyError`; the handler then reloads and decides again, a bounded number of times. A command may carry an
 * id: its events then get ids derived from it, so sending the same command twice writes its events once.
 *
 * Snapshots are optional: with no `SnapshotStore` and `SnapshotPolicy` in context, loading folds the whole stream.
 * With them, a snapshot is used only when it was written for the current state schema (same fingerprint), decodes,
 * and matches the stream (the event it reflects is still there, with the same id); any other is ignored, never
 * fatal. After a command that wrote events the policy may ask for a snapshot; it is saved in a background fiber, off
 * the command's path, and a failed save only logs a warning.
 *
 * **Gotchas**: with snapshots, a command id is recognised among the events after the snapshot; a repeat of an older
 * command is still written once, because the store treats the same event ids as a repeat, but it is decided again
 * first, so a state that now refuses it refuses the repeat.
 */
import { Data, Effect, Option, Result, Schedule, Schema, Stream } from "effect"
import type * as Aggregate from "./Aggregate.ts"
import * as Decider from "./Decider.ts"
import type { Metadata } from "./Envelope.ts"
import * as EventCodec from "./EventCodec.ts"
import * as EventId from "./EventId.ts"
import { type AppendError, ConcurrencyError, EventStore, type EventStoreError } from "./EventStore.ts"
import * as ExpectedVersion from "./ExpectedVersion.ts"
import * as SnapshotCodec from "./SnapshotCodec.ts"
import { SnapshotPolicy } from "./SnapshotPolicy.ts"
import { type Snapshot, SnapshotStore } from "./SnapshotStore.ts"
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
  /** The ids of the events read while loading, to recognise a command that was already handled. */
  readonly eventIds: ReadonlySet<string>
  /** The version of the snapshot the load started from; 0 when it folded the stream from its first event. */
  readonly snapshotVersion: number
}

/** Every way loading can fail. */
export type LoadError = EventStoreError | InvalidStreamName | EventCodec.EventDecodeError

// The event a snapshot reflects is missing or has another id: the stream was truncated, deleted or written again.
class SnapshotMismatch extends Data.TaggedError("SnapshotMismatch")<{ readonly found: string }> {}

/**
 * Folds the stream into `start.state`: from the first event, or, from a snapshot, from the event the snapshot
 * reflects, which must still be there with the same id (it is checked, not folded again).
 */
const foldStream = <C, E extends EventCodec.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  stream: string,
  start: { readonly state: S; readonly snapshot?: Snapshot }
): Effect.Effect<Loaded<S>, LoadError | SnapshotMismatch, EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const snapshotVersion = start.snapshot?.version ?? 0
    let state = start.state
    let version = snapshotVersion
    let anchor = start.snapshot?.eventId.toLowerCase()
    const eventIds = new Set<string>()
    yield* Stream.runForEachArray(store.readStream(stream, { from: Math.max(1, snapshotVersion) }), (page) =>
      Effect.suspend((): Effect.Effect<void, EventCodec.EventDecodeError | SnapshotMismatch> => {
        for (const recorded of page) {
          if (anchor !== undefined) {
            if (recorded.version !== snapshotVersion || recorded.eventId.toLowerCase() !== anchor) {
              return Effect.fail(new SnapshotMismatch({ found: `event ${recorded.eventId} at v${recorded.version}` }))
            }
            anchor = undefined
            eventIds.add(recorded.eventId)
            continue
          }
          const decoded = aggregate.events.decode(recorded)
          if (Result.isFailure(decoded)) return Effect.fail(decoded.failure)
          state = aggregate.decider.evolve(state, decoded.success)
          version = recorded.version
          eventIds.add(recorded.eventId)
        }
        return Effect.void
      })
    )
    if (anchor !== undefined) return yield* new SnapshotMismatch({ found: "a stream that ends before it" })
    return { stream, state, version, eventIds, snapshotVersion }
  })

/** The stored snapshot of `stream` when it is usable for this state schema; every reason to ignore one is logged. */
const usableSnapshot = <S>(codec: SnapshotCodec.SnapshotCodec<S>, stream: string) =>
  Effect.gen(function* () {
    const stored = yield* (yield* SnapshotStore).load(stream)
    if (Option.isNone(stored)) return Option.none()
    const snapshot = stored.value
    if (snapshot.fingerprint !== codec.fingerprint) {
      yield* Effect.logDebug(`ignoring the snapshot of ${stream}@${snapshot.version}: written for another state schema`)
      return Option.none()
    }
    const state = codec.decode(snapshot.state, stream, snapshot.version)
    if (Result.isFailure(state)) {
      yield* Effect.logWarning(state.failure.message)
      return Option.none()
    }
    return Option.some({ state: state.success, snapshot })
  }).pipe(
    Effect.catchTag("SnapshotStoreError", (error) =>
      Effect.as(Effect.logWarning(`loading ${stream} without its snapshot: ${error.message}`), Option.none())
    )
  )

/**
 * Loads aggregate `id`: from its latest usable snapshot and the events after it when a `SnapshotStore` is in context
 * and the aggregate has a state schema, otherwise by folding every event of its stream.
 */
export const load = <C, E extends EventCodec.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  id: string
): Effect.Effect<Loaded<S>, LoadError, EventStore> =>
  Effect.gen(function* () {
    const stream = StreamName.make(aggregate.category, id)
    const fromScratch = foldStream(aggregate, stream, { state: aggregate.decider.initialState })
    const found =
      aggregate.state === undefined ? Option.none() : yield* usableSnapshot(SnapshotCodec.make(aggregate.state), stream)
    if (Option.isNone(found)) return yield* fromScratch
    const { snapshot } = found.value
    return yield* foldStream(aggregate, stream, found.value).pipe(
      Effect.catchTag("SnapshotMismatch", ({ found }) =>
        Effect.andThen(
          Effect.logWarning(
            `ignoring the snapshot of ${stream}@${snapshot.version}: it reflects event ${snapshot.eventId}, the stream has ${found}`
          ),
          fromScratch
        )
      )
    )
  }).pipe(Effect.catchTag("SnapshotMismatch", Effect.die))

/**
 * Saves a snapshot of the state a command reached when the policy in context asks for one, in a detached fiber: the
 * command does not wait for it, and a failed save is logged as a warning.
 */
const snapshotIfDue = <S>(
  schema: Schema.Codec<S, unknown> | undefined,
  loaded: Loaded<S>,
  after: { readonly state: S; readonly version: number; readonly eventId: string }
) =>
  Effect.gen(function* () {
    if (schema === undefined) return
    const policy = yield* SnapshotPolicy
    const input = {
      stream: loaded.stream,
      state: after.state,
      version: after.version,
      eventsSinceSnapshot: after.version - loaded.snapshotVersion
    }
    if (!policy(input)) return
    const store = yield* SnapshotStore
    const codec = SnapshotCodec.make(schema)
    yield* Effect.fromResult(codec.encode(after.state, loaded.stream, after.version)).pipe(
      Effect.flatMap((state) =>
        store.save({
          stream: loaded.stream,
          version: after.version,
          eventId: after.eventId,
          fingerprint: codec.fingerprint,
          state
        })
      ),
      Effect.catch((error) => Effect.logWarning(`no snapshot of ${loaded.stream}@${after.version}: ${error.message}`)),
      Effect.forkDetach
    )
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
    // A repeat the store recognised. Stored before this load (behind a snapshot), its events are in the loaded state;
    // stored since (the same command sent twice at once), they are not, so the stream is loaded again to report it.
    if (result.written === 0) {
      if (result.version <= version) return unchanged
      const reloaded = yield* load(aggregate, id)
      return { ...unchanged, state: reloaded.state, version: reloaded.version }
    }
    const after = Decider.fold(decider, events, state)
    yield* snapshotIfDue(aggregate.state, loaded, {
      state: after,
      version: result.version,
      eventId: data.at(-1)!.eventId
    })
    return { stream, events, state: after, version: result.version, written: result.written }
  })
  return attempt.pipe(
    Effect.retry({
      schedule: Schedule.recurs(options.maxRetries ?? 3),
      while: (error) => error instanceof ConcurrencyError
    })
  )
}
