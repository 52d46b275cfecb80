/**
 * The projection runner: runs a `Projection` as a `LogFollower`. It feeds the projection the global log from its
 * checkpoint, batch by batch, and commits each batch's checkpoint with the batch's effect (inside `transaction`, when
 * the read model lives in the same database as the checkpoints; at least once otherwise, with each event's id at hand
 * for deduplication). The projection's `onFailure` becomes the follower's policy: `"retry"` forever, or after
 * `retries` `"stop"` with `ProjectionFailed` naming the event or `"park"` it in `DeadLetters`.
 *
 * `start` keeps one projection running under the lease `projection:<name>` and returns the follower's `Handle`
 * (`status`, `await`, `awaitCaughtUp`); `catchUp` and `rebuild` run it once up to the head of the log, with progress.
 */
import { Effect, Layer, type Schedule, type Scope, Stream } from "effect"
import { type CheckpointError, CheckpointStore } from "./CheckpointStore.ts"
import * as DeadLetters from "./DeadLetters.ts"
import type { EventStore, EventStoreError } from "./EventStore.ts"
import type * as Lease from "./Lease.ts"
import * as LogFollower from "./LogFollower.ts"
import type { Projection } from "./Projection.ts"

/** How a projection is run; every field has a default. */
export interface Options {
  /** Wraps each batch with its checkpoint advance; runs them one after the other (at least once) unless set. */
  readonly transaction?: LogFollower.Transaction
  /** The checkpoint's key; the projection's name unless set (a rebuild uses its own). */
  readonly checkpoint?: string
}

/** What a projection needs from its context besides its own requirements. */
export type Requirements<R> = R | EventStore | CheckpointStore | DeadLetters.DeadLetters

/** The follower's policy for the projection's `onFailure`: parked events go to the `DeadLetters` in context. */
const policy = <A, Err, R>(projection: Projection<A, Err, R>): LogFollower.FailurePolicy<DeadLetters.DeadLetters> => {
  switch (projection.onFailure) {
    case "retry":
      return LogFollower.retryForever
    case "stop":
      return LogFollower.stopAfter(projection.retries)
    case "park":
      return LogFollower.parkAfter(projection.retries, (letter) =>
        DeadLetters.DeadLetters.use((deadLetters) => deadLetters.park(letter))
      )
  }
}

/** The follower that runs `projection`: under the lease `projection:<name>`, each batch handed over as a stream. */
export const follower = <A, Err, R>(
  projection: Projection<A, Err, R>,
  options: Options = {}
): LogFollower.Follower<A, Err, R | DeadLetters.DeadLetters> => ({
  ...projection,
  ...(options.transaction === undefined ? {} : { transaction: options.transaction }),
  ...(options.checkpoint === undefined ? {} : { checkpoint: options.checkpoint }),
  lease: `projection:${projection.name}`,
  handle: (events) => projection.handle(Stream.fromIterable(events)),
  onFailure: policy(projection)
})

/**
 * Handles every event after the checkpoint up to the head of the log at the start, then returns the new checkpoint
 * (see `LogFollower.catchUp`).
 */
export const catchUp = <A, Err, R, TotalError = never, TotalR = never>(
  projection: Projection<A, Err, R>,
  options: Options & {
    readonly onProgress?: (progress: LogFollower.Progress) => Effect.Effect<void>
    /** Counts the events between two positions (after `from`, up to `until`); read from the log unless given. */
    readonly total?: (from: bigint, until: bigint) => Effect.Effect<number, TotalError, TotalR>
  } = {}
): Effect.Effect<bigint, LogFollower.CatchUpError | TotalError, Requirements<R> | TotalR> =>
  LogFollower.catchUp(follower(projection, options), options)

/**
 * Rebuilds a projection in place: resets its read model (its `reset`, whose failure is the projection's own error),
 * sets its checkpoint back to the start and replays the log up to the head, reporting progress. Readers see the model
 * while it fills up: use `PgProjection.rebuild` to build aside and swap, and stop the live runner, or let its fenced
 * checkpoint turn it away, while this runs.
 */
export const rebuild = <A, Err, R>(
  projection: Projection<A, Err, R>,
  options: Options & { readonly onProgress?: (progress: LogFollower.Progress) => Effect.Effect<void> } = {}
): Effect.Effect<bigint, LogFollower.CatchUpError | Err, Requirements<R>> =>
  Effect.gen(function* () {
    yield* projection.reset
    yield* (yield* CheckpointStore).save(options.checkpoint ?? projection.name, 0n)
    return yield* catchUp(projection, options)
  })

/**
 * Starts a projection in the background for as long as the scope is open: under its lease, from its checkpoint,
 * batch by batch, catch-up then live (see `LogFollower.start`). It stops only with `ProjectionFailed`.
 */
export const start = <A, Err, R>(
  projection: Projection<A, Err, R>,
  options: Options & { readonly lagInterval?: Schedule.Schedule<unknown> } = {}
): Effect.Effect<LogFollower.Handle, LogFollower.InvalidFollowerName, Requirements<R> | Lease.Lease | Scope.Scope> =>
  LogFollower.start(follower(projection, options), options)

/** Runs a projection in the background for as long as the layer lives (see `start`). */
export const layer = <A, Err, R>(
  projection: Projection<A, Err, R>,
  options: Options = {}
): Layer.Layer<never, LogFollower.InvalidFollowerName, Requirements<R> | Lease.Lease> =>
  Layer.effectDiscard(start(projection, options))

/** The status of a projection from its stored checkpoint, for tools that do not run it (`chronicle status`). */
export const status = <A, Err, R>(
  projection: Projection<A, Err, R>
): Effect.Effect<
  Omit<LogFollower.Status, "state" | "restarts" | "error">,
  EventStoreError | CheckpointError,
  EventStore | CheckpointStore
> => LogFollower.status(projection)
