/**
 * The snapshot store: the latest snapshot of each stream, so loading an aggregate reads the snapshot and the events
 * after it instead of the whole stream. A snapshot is an optimisation, never a source of truth: it records which
 * event it reflects (version and event id) and the fingerprint of the state's schema, and the loader ignores any
 * snapshot that does not match the stream or the current schema. Without a store in context, `SnapshotStore` is one
 * that holds nothing, so snapshots are off; `layerMemory` keeps them in memory, `@chronicle/postgres` in Postgres.
 */
import { Context, Effect, Layer, Option, Ref, Result, Schema } from "effect"
import { isEventId } from "./EventStore.ts"
import * as Instrumentation from "./Instrumentation.ts"
import { describeCause } from "./internal/describeCause.ts"
import { encodeJson, textProblem } from "./Storable.ts"
import { type InvalidStreamName, validate } from "./StreamName.ts"

/** The state of a stream at one version, encoded as JSON. */
export interface Snapshot {
  /** The stream it belongs to, `<category>-<id>`. */
  readonly stream: string
  /** The stream's version the state reflects: the number of events folded into it. */
  readonly version: number
  /** The id of the event at `version`, so a stream deleted and written again is not mistaken for the old one. */
  readonly eventId: string
  /** The fingerprint of the state's schema when it was written (see `SnapshotCodec.fingerprint`). */
  readonly fingerprint: string
  /** The state, encoded through the state schema's JSON codec. */
  readonly state: Schema.Json
}

/** The snapshot store could not be reached or failed while working. */
export class SnapshotStoreError extends Schema.TaggedError<SnapshotStoreError>()("SnapshotStoreError", {
  operation: Schema.String,
  stream: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    const detail = describeCause(this.cause)
    return `snapshot ${this.operation} on ${this.stream} failed: ${detail}`
  }
}

/**
 * A snapshot no store can hold, refused by `save` before any I/O: its state is not storable JSON (the rules of an
 * event's data, `Storable`: no NUL or lone surrogate in its text, no NaN, BigInt or class instance...), or its
 * version, event id or fingerprint is malformed. `path` names the first bad value, such as `state.items[2]`.
 */
export class InvalidSnapshot extends Schema.TaggedError<InvalidSnapshot>()("InvalidSnapshot", {
  stream: Schema.String,
  path: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `the snapshot of ${this.stream} cannot be stored: ${this.path} ${this.detail}`
  }
}

/**
 * The snapshot's state as JSON text, after every check a store makes before saving (`InvalidStreamName`,
 * `InvalidSnapshot`); every store Chronicle ships saves through it, so all accept and refuse the same snapshots.
 */
export const prepareSave = (snapshot: Snapshot): Result.Result<string, InvalidStreamName | InvalidSnapshot> => {
  const stream = validate(snapshot.stream)
  if (Result.isFailure(stream)) return stream
  const invalid = (path: string, detail: string) =>
    Result.fail(new InvalidSnapshot({ stream: snapshot.stream, path, detail }))
  if (!Number.isInteger(snapshot.version) || snapshot.version < 0 || snapshot.version > 2_147_483_647) {
    return invalid("version", `is ${String(snapshot.version)}, not an integer from 0 to 2^31-1`)
  }
  if (!isEventId(snapshot.eventId)) return invalid("eventId", "is not a UUID")
  const fingerprint = typeof snapshot.fingerprint === "string" ? textProblem(snapshot.fingerprint) : "is not a string"
  if (fingerprint !== undefined) return invalid("fingerprint", fingerprint)
  return Result.mapError(
    encodeJson(snapshot.state, "state"),
    (problem) => new InvalidSnapshot({ stream: snapshot.stream, path: problem.path, detail: problem.detail })
  )
}

/**
 * The snapshot store's operations. A stream name no event store accepts (`StreamName.validate`: a NUL, a lone
 * surrogate...) fails with `InvalidStreamName` before any I/O, and a snapshot no store can hold fails `save` with
 * `InvalidSnapshot` (`prepareSave`), in every store Chronicle ships.
 */
export interface Service {
  /** The latest snapshot saved for `stream`, if any. */
  readonly load: (stream: string) => Effect.Effect<Option.Option<Snapshot>, SnapshotStoreError | InvalidStreamName>
  /** Replaces the snapshot of `snapshot.stream` (the last save wins: every snapshot the loader accepts is correct). */
  readonly save: (snapshot: Snapshot) => Effect.Effect<void, SnapshotStoreError | InvalidStreamName | InvalidSnapshot>
  /** Forgets the snapshot of `stream`, for example after forgetting personal data its state held. */
  readonly delete: (stream: string) => Effect.Effect<void, SnapshotStoreError | InvalidStreamName>
}

/** Runs `effect` only if `stream` is a valid stream name, failing with `InvalidStreamName` otherwise. */
export const withValidStream = <A, E, R>(
  stream: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | InvalidStreamName, R> => Effect.andThen(Effect.fromResult(validate(stream)), effect)

/** A store that keeps nothing: what `SnapshotStore` is when no layer provides one. */
export const none: Service = {
  load: () => Effect.succeedNone,
  save: () => Effect.void,
  delete: () => Effect.void
}

/** The snapshot store service; it defaults to `none` (snapshots off), so providing one is optional. */
export class SnapshotStore extends Context.Reference<Service>("@chronicle/core/SnapshotStore", {
  defaultValue: () => none
}) {}

/** Builds a store that keeps snapshots in memory (for tests and single-process apps). */
export const makeMemory: Effect.Effect<Service> = Effect.map(
  Ref.make(new Map<string, Snapshot>()),
  (snapshots): Service => ({
    load: (stream) =>
      withValidStream(
        stream,
        Effect.map(Ref.get(snapshots), (all) => Option.fromNullishOr(all.get(stream)))
      ),
    // What a real store keeps: the state as its JSON text reads back.
    save: (snapshot) =>
      Effect.flatMap(Effect.fromResult(prepareSave(snapshot)), (json) =>
        Ref.update(snapshots, (all) => new Map(all).set(snapshot.stream, { ...snapshot, state: JSON.parse(json) }))
      ),
    delete: (stream) =>
      withValidStream(
        stream,
        Ref.update(snapshots, (all) => {
          const rest = new Map(all)
          rest.delete(stream)
          return rest
        })
      )
  })
)

/** Provides an in-memory `SnapshotStore`, empty when built, with spans (see `Instrumentation`). */
export const layerMemory: Layer.Layer<never> = Layer.effect(
  SnapshotStore,
  Effect.map(makeMemory, Instrumentation.snapshotStore)
)
