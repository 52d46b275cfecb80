/**
 * Projections as values: a name, the part of the global log it reads (categories and event types, merged by the
 * store in global order), how each recorded event is decoded, and a handler built from `Stream` operations. The
 * runner (`ProjectionRunner`, a `LogFollower`) cuts the log into batches and hands each batch to the handler as a
 * finite stream, so a handler composes `Stream.filter`, `Stream.map`, `Stream.grouped` and friends and ends in one
 * effect; the batch's checkpoint commits with that effect. A projection also says what to do with a batch it cannot
 * handle (retry forever, or stop or park after its retries), and how to reset its read model for a rebuild.
 */
import { Effect, Result, type Stream } from "effect"
import * as Envelope from "./Envelope.ts"
import type * as EventCodec from "./EventCodec.ts"
import * as EventStore from "./EventStore.ts"
import type * as Partition from "./Partition.ts"

/**
 * What a failing batch leads to: `"retry"` retries it with backoff until it passes (nothing is skipped, the projection
 * never stops by itself; an event that does not decode still stops it); `"stop"` and `"park"` retry it `retries` times,
 * then find the failing event and stop the projection with `ProjectionFailed`, or park the event and go on.
 */
export type FailurePolicy = "retry" | "stop" | "park"

/** A projection: what it reads, how it decodes, how it handles a batch, and what it does on failure. */
export interface Projection<A, Err = never, R = never> {
  /** Its name: the key of its checkpoint, lease and dead letters. */
  readonly name: string
  /** Only events of streams in these categories; every category unless set. */
  readonly categories?: ReadonlyArray<string>
  /** Only events of these types; every type unless set. */
  readonly types?: ReadonlyArray<string>
  /** Turns a recorded event into what the handler sees; a failure goes through the failure policy. */
  readonly decode: (recorded: Envelope.RecordedEvent) => Result.Result<A, EventCodec.EventDecodeError>
  /** Handles one batch, given as a finite stream in global order. */
  readonly handle: (events: Stream.Stream<A>) => Effect.Effect<void, Err, R>
  /** Clears the read model before a rebuild. */
  readonly reset: Effect.Effect<void, Err, R>
  /** The most events one batch holds (and one read fetches). */
  readonly batchSize: number
  /** How many times a failing batch, then a failing event, is retried (with `Backoff`) before the policy. */
  readonly retries: number
  /** What to do with an event that still fails after the retries. */
  readonly onFailure: FailurePolicy
}

/** Builds a projection; batches of 500, 3 retries and the `"stop"` policy unless set. */
export const make = <A, Err = never, R = never>(definition: {
  readonly name: string
  readonly categories?: ReadonlyArray<string>
  readonly types?: ReadonlyArray<string>
  readonly decode: (recorded: Envelope.RecordedEvent) => Result.Result<A, EventCodec.EventDecodeError>
  readonly handle: (events: Stream.Stream<NoInfer<A>>) => Effect.Effect<void, Err, R>
  readonly reset?: Effect.Effect<void, Err, R>
  readonly batchSize?: number
  readonly retries?: number
  readonly onFailure?: FailurePolicy
}): Projection<A, Err, R> => ({
  ...definition,
  reset: definition.reset ?? Effect.void,
  batchSize: definition.batchSize ?? 500,
  retries: definition.retries ?? 3,
  onFailure: definition.onFailure ?? "stop"
})

/** Decodes nothing: the handler sees recorded events, JSON data and all. */
export const recorded = (event: Envelope.RecordedEvent): Result.Result<Envelope.RecordedEvent, never> =>
  Result.succeed(event)

/**
 * Decodes with an aggregate's event codec: the handler sees envelopes, with position and event id for dedup.
 * **Gotcha:** bind the decoder to a constant before passing it to `make`, or TypeScript infers the handler's input as
 * `unknown`.
 */
export const decodeWith =
  <Ev extends EventCodec.Tagged>(codec: EventCodec.EventCodec<Ev>) =>
  (event: Envelope.RecordedEvent): Result.Result<Envelope.Envelope<Ev>, EventCodec.EventDecodeError> =>
    Result.map(codec.decode(event), (decoded) => Envelope.make(event, decoded))

/** What to read from the log for `projection` (or any follower), after `after`, one batch per page. */
export const readOptions = (
  projection: {
    readonly categories?: ReadonlyArray<string>
    readonly types?: ReadonlyArray<string>
    readonly partition?: Partition.Partition
    readonly batchSize?: number
  },
  after: bigint
): EventStore.ReadAllOptions => ({
  after,
  pageSize: projection.batchSize ?? EventStore.defaultPageSize,
  ...(projection.categories === undefined ? {} : { categories: projection.categories }),
  ...(projection.types === undefined ? {} : { types: projection.types }),
  ...(projection.partition === undefined ? {} : { partition: projection.partition })
})
