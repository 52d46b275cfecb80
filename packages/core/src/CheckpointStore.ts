/**
 * Checkpoints: how far each projection (or outbox publisher) has read the global log. A checkpoint is one global
 * position, exclusive: the consumer has handled everything up to and including it, and resumes after it. `advance`
 * moves a checkpoint only from the position its caller last saw, so a runner that lost its lease, or raced a
 * rebuild, cannot overwrite newer progress.
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

/** The checkpoint store's operations. */
export interface Service {
  /** The last position `projection` saved; `0n` before its first save. */
  readonly load: (projection: string) => Effect.Effect<bigint, CheckpointError>
  /** Records that `projection` has handled everything up to `position`, whatever was saved before. */
  readonly save: (projection: string, position: bigint) => Effect.Effect<void, CheckpointError>
  /**
   * Moves the checkpoint of `projection` from `from` to `to`, or fails with `CheckpointMoved` if it is not at `from`.
   * Inside a database transaction it commits or rolls back with the caller's own writes.
   */
  readonly advance: (
    projection: string,
    from: bigint,
    to: bigint
  ) => Effect.Effect<void, CheckpointError | CheckpointMoved>
}

/** Where each projection records the last global position it has handled. */
export class CheckpointStore extends Context.Service<CheckpointStore, Service>()("@chronicle/core/CheckpointStore") {}

/** Builds a store that keeps checkpoints in memory (for tests and single-process apps). */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const positions = new Map<string, bigint>()
  return {
    load: (projection) => Effect.sync(() => positions.get(projection) ?? 0n),
    save: (projection, position) => Effect.sync(() => void positions.set(projection, position)),
    advance: (projection, from, to) =>
      Effect.suspend(() => {
        const actual = positions.get(projection) ?? 0n
        if (actual !== from) return Effect.fail(new CheckpointMoved({ projection, expected: from, actual }))
        positions.set(projection, to)
        return Effect.void
      })
  }
})

/** Provides the in-memory `CheckpointStore`, empty when built. */
export const layerMemory: Layer.Layer<CheckpointStore> = Layer.effect(CheckpointStore, makeMemory)
