/**
 * Checkpoints: how far each projection (or outbox publisher) has read the global log. A checkpoint is one global
 * position, exclusive: the consumer has handled everything up to and including it, and resumes after it. `advance`
 * moves a checkpoint only from the position its caller last saw, so a runner that lost its lease, or raced a
 * rebuild, cannot overwrite newer progress. A checkpoint also has an owner epoch: `claim` bumps it, and an `advance` that
 * names an older epoch is refused (`CheckpointFenced`), so once a new owner has claimed a checkpoint (a partition that
 * moved to another runner) the old owner can commit nothing more, however late it runs.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { describeCause } from "./internal/describeCause.ts"

/** A checkpoint could not be read or written. */
export class CheckpointError extends Schema.TaggedError<CheckpointError>()("CheckpointError", {
  projection: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    return `checkpoint of ${this.projection} could not be read or written: ${describeCause(this.cause)}`
  }
}

/** Another writer moved the checkpoint since its caller loaded it, so this advance was refused. */
export class CheckpointMoved extends Schema.TaggedError<CheckpointMoved>()("CheckpointMoved", {
  projection: Schema.String,
  expected: Schema.BigInt,
  actual: Schema.BigInt
}) {
  override get message() {
    return `checkpoint of ${this.projection} is at ${this.actual}, not ${this.expected}: another runner or a rebuild moved it`
  }
}

/** Another owner claimed the checkpoint since its caller did (`claim`), so this advance was refused. */
export class CheckpointFenced extends Schema.TaggedError<CheckpointFenced>()("CheckpointFenced", {
  projection: Schema.String,
  epoch: Schema.BigInt,
  current: Schema.BigInt
}) {
  override get message() {
    return `checkpoint of ${this.projection} is owned under epoch ${this.current}, not ${this.epoch}: another instance claimed it`
  }
}

/** The checkpoint store's operations. */
export interface Service {
  /** The last position `projection` saved; `0n` before its first save. */
  readonly load: (projection: string) => Effect.Effect<bigint, CheckpointError>
  /** Records that `projection` has handled everything up to `position`, whatever was saved before. */
  readonly save: (projection: string, position: bigint) => Effect.Effect<void, CheckpointError>
  /**
   * Moves the checkpoint of `projection` from `from` to `to`, or fails with `CheckpointMoved` if it is not at `from`,
   * or, when `epoch` is given, with `CheckpointFenced` if the checkpoint was claimed under another epoch since.
   * Inside a database transaction it commits or rolls back with the caller's own writes.
   */
  readonly advance: (
    projection: string,
    from: bigint,
    to: bigint,
    epoch?: bigint
  ) => Effect.Effect<void, CheckpointError | CheckpointMoved | CheckpointFenced>
  /**
   * Makes the caller the owner of the checkpoint of `projection`: bumps its owner epoch and returns the new one.
   * Advances under any older epoch are refused from then on; one in flight commits first or is refused.
   */
  readonly claim: (projection: string) => Effect.Effect<bigint, CheckpointError>
}

/** Where each projection records the last global position it has handled. */
export class CheckpointStore extends Context.Service<CheckpointStore, Service>()("@chronicle/core/CheckpointStore") {}

/** Builds a store that keeps checkpoints in memory (for tests and single-process apps). */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const positions = new Map<string, bigint>()
  const epochs = new Map<string, bigint>()
  return {
    load: (projection) => Effect.sync(() => positions.get(projection) ?? 0n),
    save: (projection, position) => Effect.sync(() => void positions.set(projection, position)),
    advance: (projection, from, to, epoch) =>
      Effect.suspend((): Effect.Effect<void, CheckpointMoved | CheckpointFenced> => {
        const current = epochs.get(projection) ?? 0n
        if (epoch !== undefined && epoch !== current) {
          return Effect.fail(new CheckpointFenced({ projection, epoch, current }))
        }
        const actual = positions.get(projection) ?? 0n
        if (actual !== from) return Effect.fail(new CheckpointMoved({ projection, expected: from, actual }))
        positions.set(projection, to)
        return Effect.void
      }),
    claim: (projection) =>
      Effect.sync(() => {
        const epoch = (epochs.get(projection) ?? 0n) + 1n
        epochs.set(projection, epoch)
        return epoch
      })
  }
})

/** Provides the in-memory `CheckpointStore`, empty when built. */
export const layerMemory: Layer.Layer<CheckpointStore> = Layer.effect(CheckpointStore, makeMemory)
