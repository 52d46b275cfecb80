/**
 * The projection runner: feeds a projection the global log from its checkpoint, batch by batch, and commits each
 * batch's checkpoint with the batch's effect (inside `transaction`, when the read model lives in the same database
 * as the checkpoints; at least once otherwise, with each event's id at hand for deduplication). A failing batch is
 * retried with exponential backoff, then replayed one event at a time to find the failing event, which is retried
 * again and then stops the projection (`ProjectionFailed`, naming the event) or is parked as a dead letter, per the
 * projection's policy. Events that do not decode follow the same policy without retries.
 *
 * `run` keeps one projection running for as long as it is needed: it waits for the projection's lease (so one
 * instance across processes is active), catches up, follows the live log, and starts over from the stored checkpoint
 * after a lost lease, a moved checkpoint (a rebuild) or a store outage. Its lag, in positions behind the head of what
 * it reads, is the gauge `chronicle_projection_lag` and part of `status`.
 */
import { Effect, Fiber, Layer, Metric, Ref, Result, Schedule, Schema, type Scope, Stream } from "effect"
import { CheckpointError, CheckpointMoved, CheckpointStore } from "./CheckpointStore.ts"
import * as DeadLetters from "./DeadLetters.ts"
import type { RecordedEvent } from "./Envelope.ts"
import { EventStore, type EventStoreError } from "./EventStore.ts"
import * as Lease from "./Lease.ts"
import { type Projection, readOptions } from "./Projection.ts"

/** A projection stopped: an event still failed after the retries and its policy is `"stop"`. */
export class ProjectionFailed extends Schema.TaggedError<ProjectionFailed>()("ProjectionFailed", {
  projection: Schema.String,
  position: Schema.BigInt,
  stream: Schema.String,
  version: Schema.Int,
  type: Schema.String,
  eventId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `projection ${this.projection} stopped at ${this.type} ${this.stream}@${this.version} (position ${this.position}, event ${this.eventId}): ${this.reason}`
  }
}

/** Runs an effect atomically with the checkpoint and dead-letter writes inside it (a database transaction). */
export type Transaction = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>

/** How a projection is run; every field has a default. */
export interface Options {
  /** Wraps each batch with its checkpoint advance; runs them one after the other (at least once) unless set. */
  readonly transaction?: Transaction
  /** The checkpoint's key; the projection's name unless set (a rebuild uses its own). */
  readonly checkpoint?: string
}

/** How far a catch-up or rebuild has come. */
export interface Progress {
  readonly projection: string
  /** Events handled so far. */
  readonly done: number
  /** Events to handle in all. */
  readonly total: number
  /** Events per second since the start. */
  readonly rate: number
  /** Seconds left at the current rate. */
  readonly etaSeconds: number
}

/** What a projection is doing, and how far behind the head of the log it is. */
export interface Status {
  readonly projection: string
  /** `"standby"` while another instance holds the lease, `"running"` while this one works, `"stopped"` after a failure. */
  readonly state: "standby" | "running" | "stopped"
  /** The position of the last event handled. */
  readonly checkpoint: bigint
  /** Positions between the checkpoint and the last event the projection reads; 0n when it is caught up. */
  readonly lag: bigint
  /** Why it stopped, if it did. */
  readonly error: ProjectionFailed | undefined
}

/** Positions behind the head, per projection (attribute `projection`). */
export const lag = Metric.gauge("chronicle_projection_lag", {
  description: "Global positions between a projection's checkpoint and the head of the log it reads",
  bigint: true
})

/** What a projection needs from its context besides its own requirements. */
export type Requirements<R> = R | EventStore | CheckpointStore | DeadLetters.DeadLetters

const isMoved = (error: unknown): error is CheckpointMoved => error instanceof CheckpointMoved
// The checkpoint store failing is not the batch's fault: no event is blamed for it, the runner restarts instead.
const isCheckpointFailure = (error: unknown) => isMoved(error) || error instanceof CheckpointError
const retryable = (error: unknown) =>
  !isMoved(error) && (error as { readonly _tag?: unknown })._tag !== "EventDecodeError"
const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}` : String(error)

/**
 * Handles one batch of events read after `cursor` and commits its checkpoint; returns the new checkpoint. Fails with
 * `CheckpointMoved` when another runner or a rebuild moved the checkpoint, with `CheckpointError` when the checkpoint
 * store still fails after the retries, with `ProjectionFailed` when an event fails under the `"stop"` policy, and
 * with the store's errors (as `unknown`) when parking fails.
 */
const handleBatch = <A, Err, R>(
  projection: Projection<A, Err, R>,
  options: Options,
  cursor: bigint,
  events: ReadonlyArray<RecordedEvent>
): Effect.Effect<bigint, unknown, Requirements<R>> =>
  Effect.gen(function* () {
    const checkpoints = yield* CheckpointStore
    const name = options.checkpoint ?? projection.name
    const transaction: Transaction = options.transaction ?? ((self) => self)
    const last = events.at(-1)
    if (last === undefined) return cursor

    const commit = Effect.suspend(() => {
      const decoded: Array<A> = []
      for (const event of events) {
        const result = projection.decode(event)
        if (Result.isFailure(result)) return Effect.fail(result.failure)
        decoded.push(result.success)
      }
      const advance = checkpoints.advance(name, cursor, last.position)
      // A handler that throws fails its batch like one that fails: retried, then stopped on or parked.
      const handle = projection.handle(Stream.fromIterable(decoded)).pipe(Effect.catchDefect(Effect.fail))
      // In a transaction the checkpoint moves first, so a runner racing a rebuild's swap waits on the checkpoint row
      // before touching the table. Without one, the batch is handled first: a crash between the two repeats it.
      return options.transaction === undefined
        ? Effect.andThen(handle, advance)
        : transaction(Effect.andThen(advance, handle))
    }).pipe(
      Effect.retry({ schedule: Schedule.exponential("50 millis"), times: projection.retries, while: retryable }),
      Effect.as(last.position)
    )

    return yield* Effect.catch(commit, (error): Effect.Effect<bigint, unknown, Requirements<R>> => {
      if (isCheckpointFailure(error)) return Effect.fail(error)
      if (events.length > 1) {
        return Effect.reduce(
          events,
          () => cursor,
          (at, event) => handleBatch(projection, options, at, [event])
        )
      }
      const reason = describe(error)
      if (projection.onFailure === "stop") {
        return Effect.fail(
          new ProjectionFailed({
            projection: projection.name,
            position: last.position,
            stream: last.stream,
            version: last.version,
            type: last.type,
            eventId: last.eventId,
            reason
          })
        )
      }
      return Effect.gen(function* () {
        const deadLetters = yield* DeadLetters.DeadLetters
        yield* Effect.logWarning(
          `projection ${projection.name} parked ${last.type} at position ${last.position}: ${reason}`
        )
        yield* transaction(
          Effect.andThen(
            checkpoints.advance(name, cursor, last.position),
            deadLetters.park(DeadLetters.of(projection.name, last, reason))
          )
        )
        return last.position
      })
    })
  })

/** The lag of a projection whose checkpoint is `checkpoint`: 0n when nothing it reads lies beyond it. */
const lagAt = <A, Err, R>(
  projection: Projection<A, Err, R>,
  checkpoint: bigint
): Effect.Effect<bigint, EventStoreError, EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const next = yield* Stream.runHead(
      store.readAll({ ...readOptions(projection, checkpoint), pageSize: 1 }).pipe(Stream.take(1))
    )
    if (next._tag === "None") return 0n
    const head = yield* store.head
    return head > checkpoint ? head - checkpoint : 0n
  })

/**
 * Handles every event after the checkpoint up to the head of the log at the start, then returns the new checkpoint.
 * `onProgress` hears after each batch how far it has come out of `total` (counted by reading the log once unless
 * given).
 */
export const catchUp = <A, Err, R>(
  projection: Projection<A, Err, R>,
  options: Options & {
    readonly onProgress?: (progress: Progress) => Effect.Effect<void>
    /** Counts the events between two positions (after `from`, up to `until`); read from the log unless given. */
    readonly total?: (from: bigint, until: bigint) => Effect.Effect<number, unknown, Requirements<R>>
  } = {}
): Effect.Effect<bigint, unknown, Requirements<R>> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const checkpoints = yield* CheckpointStore
    const name = options.checkpoint ?? projection.name
    const from = yield* checkpoints.load(name)
    const until = yield* store.head
    const upToHead = store.readAll(readOptions(projection, from)).pipe(Stream.takeWhile((e) => e.position <= until))
    // Counting costs a read of its own: only done for someone who listens to the progress.
    const total =
      options.onProgress === undefined
        ? 0
        : options.total === undefined
          ? yield* Stream.runCount(upToHead)
          : yield* options.total(from, until)
    const started = Date.now()
    let cursor = from
    let done = 0
    yield* upToHead.pipe(
      Stream.runForEachArray((events) =>
        Effect.gen(function* () {
          cursor = yield* handleBatch(projection, options, cursor, events)
          done += events.length
          if (options.onProgress !== undefined) {
            const rate = done / Math.max(0.001, (Date.now() - started) / 1000)
            const left = Math.max(0, total - done)
            yield* options.onProgress({ projection: projection.name, done, total, rate, etaSeconds: left / rate })
          }
        })
      )
    )
    return cursor
  })

/**
 * Rebuilds a projection in place: resets its read model (its `reset`), sets its checkpoint back to the start and
 * replays the log up to the head, reporting progress. Readers see the model while it fills up: use
 * `PgProjection.rebuild` to build aside and swap, and stop the live runner, or let its fenced checkpoint turn it
 * away, while this runs.
 */
export const rebuild = <A, Err, R>(
  projection: Projection<A, Err, R>,
  options: Options & { readonly onProgress?: (progress: Progress) => Effect.Effect<void> } = {}
): Effect.Effect<bigint, unknown, Requirements<R>> =>
  Effect.gen(function* () {
    const checkpoints = yield* CheckpointStore
    yield* projection.reset
    yield* checkpoints.save(options.checkpoint ?? projection.name, 0n)
    return yield* catchUp(projection, options)
  })

/** A projection running in the background: its status, and its end (only ever a failure). */
export interface Runner {
  /** What the projection is doing and how far behind it is. */
  readonly status: Effect.Effect<Status, EventStoreError | CheckpointError>
  /** Waits until the projection stops; it stops only with `ProjectionFailed`. */
  readonly await: Effect.Effect<never, ProjectionFailed>
}

/** How often a runner restarts after its lease or its store failed: capped exponential backoff. */
const restart = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])

/**
 * Starts a projection in the background for as long as the scope is open: under its lease, from its checkpoint,
 * batch by batch, catch-up then live. It restarts from the stored checkpoint after a lost lease, a moved checkpoint
 * or a store failure, and stops only with `ProjectionFailed`.
 */
export const start = <A, Err, R>(
  projection: Projection<A, Err, R>,
  options: Options & { readonly lagInterval?: Schedule.Schedule<unknown> } = {}
): Effect.Effect<Runner, never, Requirements<R> | Lease.Lease | Scope.Scope> =>
  Effect.gen(function* () {
    const state = yield* Ref.make<Pick<Status, "state" | "error">>({ state: "standby", error: undefined })
    const cursor = yield* Ref.make<bigint | undefined>(undefined)
    const gauge = Metric.withAttributes(lag, { projection: projection.name })
    const name = options.checkpoint ?? projection.name

    const work = Effect.gen(function* () {
      const store = yield* EventStore
      const from = yield* (yield* CheckpointStore).load(name)
      yield* Ref.set(cursor, from)
      yield* Ref.set(state, { state: "running", error: undefined })
      let at = from
      yield* store.subscribe(readOptions(projection, from)).pipe(
        Stream.runForEachArray((events) =>
          Effect.flatMap(handleBatch(projection, options, at, events), (next) => {
            at = next
            return Ref.set(cursor, next)
          })
        )
      )
    }).pipe(Effect.ensuring(Ref.set(state, { state: "standby", error: undefined })))

    const supervised = Lease.withLease(`projection:${projection.name}`, work).pipe(
      Effect.catch(
        (error): Effect.Effect<never, ProjectionFailed | "restart"> =>
          error instanceof ProjectionFailed
            ? Effect.fail(error)
            : Effect.andThen(
                Effect.logWarning(`projection ${projection.name} restarts: ${describe(error)}`),
                Effect.fail("restart" as const)
              )
      ),
      Effect.retry({ schedule: restart, while: (error) => error === "restart" }),
      Effect.catch((error) =>
        error instanceof ProjectionFailed
          ? Effect.andThen(Ref.set(state, { state: "stopped", error }), Effect.fail(error))
          : Effect.die(error)
      ),
      Effect.andThen(Effect.never)
    )
    const fiber = yield* Effect.forkScoped(supervised)

    const status = Effect.gen(function* () {
      const current = yield* Ref.get(state)
      const checkpoint = (yield* Ref.get(cursor)) ?? (yield* (yield* CheckpointStore).load(name))
      return {
        projection: projection.name,
        state: current.state,
        checkpoint,
        lag: yield* lagAt(projection, checkpoint),
        error: current.error
      }
    })
    yield* status.pipe(
      Effect.flatMap((s) => Metric.update(gauge, s.lag)),
      Effect.ignore,
      Effect.repeat(options.lagInterval ?? Schedule.spaced("1 second")),
      Effect.forkScoped
    )
    const context = yield* Effect.context<EventStore | CheckpointStore>()
    return { status: Effect.provideContext(status, context), await: Fiber.join(fiber) }
  })

/** Runs a projection in the background for as long as the layer lives (see `start`). */
export const layer = <A, Err, R>(
  projection: Projection<A, Err, R>,
  options: Options = {}
): Layer.Layer<never, never, Requirements<R> | Lease.Lease> => Layer.effectDiscard(start(projection, options))

/** The status of a projection from its stored checkpoint, for tools that do not run it (`chronicle status`). */
export const status = <A, Err, R>(
  projection: Projection<A, Err, R>
): Effect.Effect<Omit<Status, "state" | "error">, EventStoreError | CheckpointError, EventStore | CheckpointStore> =>
  Effect.gen(function* () {
    const checkpoint = yield* (yield* CheckpointStore).load(projection.name)
    return { projection: projection.name, checkpoint, lag: yield* lagAt(projection, checkpoint) }
  })
