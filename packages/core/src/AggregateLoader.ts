/**
 * Loading an aggregate: its state and version, read from its latest usable snapshot and the events after it, or by
 * folding its whole stream. A snapshot is used only when it was written for the current state schema (same
 * fingerprint), decodes, and still matches the stream (the event it reflects is there, with the same id). Any other
 * snapshot is ignored and logged, never fatal.
 *
 * Saving is the other half. After a command wrote events, `saveIfDue` asks the `SnapshotPolicy` in context. When the
 * policy says yes, the save runs in the policy layer's fibers: the command does not wait for it, and the layer waits
 * for pending saves when it ends. A failed save only logs a warning.
 *
 * A load is a span, `AggregateLoader.load`, with the snapshot version it started from and the events it folded; it
 * updates `chronicle_load_duration_seconds`, `chronicle_load_events_folded` and the snapshot counters (used, ignored
 * by reason, saved).
 *
 * `loadAsOf` loads the state after a given version, for tools that look back (the stream browser).
 *
 * The shape, for code built on it: `load` gives a `Loaded` (state, version, the ids of the events read, the snapshot
 * version it started from); `saveIfDue` takes that `Loaded` and the state a command reached.
 */
import { Data, Duration, Effect, FiberSet, Metric, Option, Result, type Schema, Stream } from "effect"
import type * as Aggregate from "./Aggregate.ts"
import type { RecordedEvent, Tagged } from "./Envelope.ts"
import type * as EventCodec from "./EventCodec.ts"
import { EventStore, type EventStoreError } from "./EventStore.ts"
import * as Metrics from "./Metrics.ts"
import * as SnapshotCodec from "./SnapshotCodec.ts"
import { SaveFibers, SnapshotPolicy } from "./SnapshotPolicy.ts"
import { type Snapshot, SnapshotStore } from "./SnapshotStore.ts"
import * as StreamName from "./StreamName.ts"

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
export type LoadError = EventStoreError | StreamName.InvalidStreamName | EventCodec.EventDecodeError

// The event a snapshot reflects is missing or has another id: the stream was truncated, deleted or written again.
class SnapshotMismatch extends Data.TaggedError("SnapshotMismatch")<{ readonly found: string }> {}

// Folds the stream into `start.state`: from the first event, or from the event a snapshot reflects. That event must
// still be there with the same id; it is checked, not folded again.
const foldStream = <C, E extends Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  stream: string,
  start: { readonly state: S; readonly snapshot?: Snapshot; readonly to?: number }
): Effect.Effect<Loaded<S>, LoadError | SnapshotMismatch, EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const snapshotVersion = start.snapshot?.version ?? 0
    let state = start.state
    let version = snapshotVersion
    let anchor = start.snapshot?.eventId.toLowerCase()
    const eventIds = new Set<string>()
    // The event `evolve` is applying: a throw in it is a bug in the domain, reported as a defect that names it.
    let folding: RecordedEvent | undefined
    const range = { from: Math.max(1, snapshotVersion), ...(start.to === undefined ? {} : { to: start.to }) }
    yield* Stream.runForEachArray(store.readStream(stream, range), (page) =>
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
          folding = recorded
          state = aggregate.decider.evolve(state, decoded.success)
          folding = undefined
          version = recorded.version
          eventIds.add(recorded.eventId)
        }
        return Effect.void
      })
    ).pipe(
      Effect.catchDefect((defect) =>
        Effect.die(
          folding === undefined
            ? defect
            : new Error(
                `${aggregate.category}: evolve at ${stream}@${folding.version}, event ${folding.type} ${folding.eventId}, threw: ${defect instanceof Error ? defect.message : String(defect)}`,
                { cause: defect }
              )
        )
      )
    )
    if (anchor !== undefined) return yield* new SnapshotMismatch({ found: "a stream that ends before it" })
    return { stream, state, version, eventIds, snapshotVersion }
  })

/** Counts a stored snapshot a load did not trust, by category and reason. */
const ignored = (stream: string, reason: "fingerprint" | "undecodable" | "mismatch" | "unavailable") =>
  Metric.update(Metric.withAttributes(Metrics.snapshotsIgnored, { category: StreamName.category(stream), reason }), 1)

// The stored snapshot of `stream` when it is usable for this state schema; every reason to ignore one is logged.
const usableSnapshot = <S>(codec: SnapshotCodec.SnapshotCodec<S>, stream: string) =>
  Effect.gen(function* () {
    const stored = yield* (yield* SnapshotStore).load(stream)
    if (Option.isNone(stored)) return Option.none()
    const snapshot = stored.value
    if (snapshot.fingerprint !== codec.fingerprint) {
      yield* Effect.logDebug(`ignoring the snapshot of ${stream}@${snapshot.version}: written for another state schema`)
      yield* ignored(stream, "fingerprint")
      return Option.none()
    }
    const state = codec.decode(snapshot.state, stream, snapshot.version)
    if (Result.isFailure(state)) {
      yield* Effect.logWarning(state.failure.message)
      yield* ignored(stream, "undecodable")
      return Option.none()
    }
    return Option.some({ state: state.success, snapshot })
  }).pipe(
    Effect.catchTag("SnapshotStoreError", (error) =>
      Effect.as(
        Effect.andThen(
          Effect.logWarning(`loading ${stream} without its snapshot: ${error.message}`),
          ignored(stream, "unavailable")
        ),
        Option.none()
      )
    )
  )

const loadDuration = Metrics.by(Metrics.loadDuration, "category")
const eventsFolded = Metrics.by(Metrics.eventsFolded, "category")
const snapshotsUsed = Metrics.by(Metrics.snapshotsUsed, "category")
const snapshotsSaved = Metrics.by(Metrics.snapshotsSaved, "category")

/**
 * Loads aggregate `id`: from its latest usable snapshot and the events after it when the aggregate has a state
 * schema and a `SnapshotStore` is in context, otherwise by folding every event of its stream.
 */
export const load = <C, E extends Tagged, S, Err>(
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
          Effect.andThen(
            Effect.logWarning(
              `ignoring the snapshot of ${stream}@${snapshot.version}: it reflects event ${snapshot.eventId}, the stream has ${found}`
            ),
            ignored(stream, "mismatch")
          ),
          fromScratch
        )
      )
    )
  }).pipe(
    Effect.catchTag("SnapshotMismatch", Effect.die),
    Effect.tap((loaded) => {
      const category = aggregate.category
      return Effect.andThen(
        Effect.annotateCurrentSpan({
          "chronicle.version": loaded.version,
          "chronicle.snapshot_version": loaded.snapshotVersion,
          "chronicle.events_folded": loaded.version - loaded.snapshotVersion
        }),
        Effect.all([
          Metric.update(eventsFolded(category), loaded.version - loaded.snapshotVersion),
          loaded.snapshotVersion > 0 ? Metric.update(snapshotsUsed(category), 1) : Effect.void
        ])
      )
    }),
    Effect.trackDuration(loadDuration(aggregate.category), (duration) => Duration.toMillis(duration) / 1000),
    Effect.withSpan("AggregateLoader.load", {
      attributes: {
        "chronicle.stream": StreamName.make(aggregate.category, id),
        "chronicle.category": aggregate.category
      }
    })
  )

/**
 * Loads aggregate `id` as of `version`: the state after its first `version` events (all of them when the stream is
 * shorter), folded from the first event without snapshots. For looking back ("why is the state what it is").
 */
export const loadAsOf = <C, E extends Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  id: string,
  version: number
): Effect.Effect<Loaded<S>, LoadError, EventStore> =>
  foldStream(aggregate, StreamName.make(aggregate.category, id), {
    state: aggregate.decider.initialState,
    to: version
  }).pipe(Effect.catchTag("SnapshotMismatch", Effect.die))

/** The state a command reached: what `saveIfDue` may snapshot. */
export interface Reached<State> {
  readonly state: State
  /** The stream's version after the command. */
  readonly version: number
  /** The id of the event at `version`. */
  readonly eventId: string
}

// Encodes and saves one snapshot; a failure is logged as a warning.
const save = <S>(schema: Schema.Codec<S, unknown>, stream: string, reached: Reached<S>) => {
  const codec = SnapshotCodec.make(schema)
  return Effect.fromResult(codec.encode(reached.state, stream, reached.version)).pipe(
    Effect.flatMap((state) =>
      SnapshotStore.use((store) =>
        store.save({
          stream,
          version: reached.version,
          eventId: reached.eventId,
          fingerprint: codec.fingerprint,
          state
        })
      )
    ),
    Effect.tap(() => Metric.update(snapshotsSaved(StreamName.category(stream)), 1)),
    Effect.catch((error) => Effect.logWarning(`no snapshot of ${stream}@${reached.version}: ${error.message}`))
  )
}

/**
 * Saves a snapshot of the state a command reached when the `SnapshotPolicy` in context asks for one. The save runs
 * in the policy layer's fibers (see `SnapshotPolicy.SaveFibers`), or in the caller's fiber when none are provided.
 * Succeeds with whether the policy asked for one (a failed save is only logged).
 */
export const saveIfDue = <C, E extends Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  loaded: Loaded<S>,
  reached: Reached<S>
): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    if (aggregate.state === undefined) return false
    const policy = yield* SnapshotPolicy
    const eventsSinceSnapshot = reached.version - loaded.snapshotVersion
    if (!policy({ stream: loaded.stream, state: reached.state, version: reached.version, eventsSinceSnapshot })) {
      return false
    }
    const saving = save(aggregate.state, loaded.stream, reached)
    const fibers = yield* SaveFibers
    if (Option.isNone(fibers)) yield* saving
    else yield* FiberSet.run(fibers.value, saving)
    return true
  })
