/**
 * The log follower: the one machine that reads the global log for a consumer. Every projection runner and the outbox
 * are followers; only their handler and their failure policy differ. A follower works under a `Lease` (one active
 * instance across processes), loads its checkpoint, reads the log from there (catch-up, then live), hands each batch
 * to its handler and advances its fenced checkpoint (`CheckpointStore.advance`) with the batch, inside `transaction`
 * when one is given. It restarts from the stored checkpoint, with the shared `Backoff`, after anything that is not
 * an event's fault: a lost lease, a moved checkpoint, the store or the transaction failing.
 *
 * A batch whose handler fails is retried with backoff. Its `FailurePolicy` says what comes next: retry forever (the
 * outbox: a broker outage must not skip events), or after `retries` replay the batch one event at a time to find the
 * failing event, then stop with `ProjectionFailed` naming it, or park it as a dead letter and go on. An event that
 * does not decode skips the retries (no retry can fix it).
 *
 * `start` runs a follower in the background and returns its `Handle`: `status` (state, checkpoint, lag, restarts),
 * `await` (its end, only ever `ProjectionFailed`) and `awaitCaughtUp` (waits until it has reached the head of the log
 * as of the call). The lag is also the gauge `chronicle_follower_lag{follower}`, beside the lag in events and in
 * seconds (see `Metrics`). Each batch is a span, `LogFollower.batch`, linked to the traces of its events. `catchUp` runs one up to the head
 * and returns, with progress; it fails where `start` would restart.
 *
 * **Gotchas**: a follower's name is the key of its checkpoint unless `checkpoint` says otherwise, so two followers of
 * one store need two names. Without a `transaction` a batch is handled before its checkpoint moves, so a crash in
 * between hands it over again (at least once): handlers must then be idempotent.
 */
import {
  Clock,
  Effect,
  Fiber,
  Metric,
  Option,
  Predicate,
  Ref,
  Result,
  Schedule,
  Schema,
  type Scope,
  Stream,
  SubscriptionRef
} from "effect"
import * as Backoff from "./Backoff.ts"
import {
  type CheckpointError,
  type CheckpointFenced,
  type CheckpointMoved,
  CheckpointStore
} from "./CheckpointStore.ts"
import * as DeadLetters from "./DeadLetters.ts"
import type { RecordedEvent } from "./Envelope.ts"
import type { EventDecodeError } from "./EventCodec.ts"
import { EventStore, type EventStoreError } from "./EventStore.ts"
import { describeCause } from "./internal/describeCause.ts"
import * as Lease from "./Lease.ts"
import * as Metrics from "./Metrics.ts"
import type { Partition } from "./Partition.ts"
import { readOptions } from "./Projection.ts"
import { textProblem } from "./Storable.ts"
import * as TraceContext from "./TraceContext.ts"

/**
 * A follower's name, checkpoint key or lease is text no store can hold (empty, or with a NUL or a lone surrogate): it
 * could never take its lease or save its checkpoint, so it is refused at once rather than retried forever.
 */
export class InvalidFollowerName extends Schema.TaggedError<InvalidFollowerName>()("InvalidFollowerName", {
  follower: Schema.String,
  field: Schema.Literals(["name", "checkpoint", "lease"]),
  detail: Schema.String
}) {
  override get message() {
    return `follower ${JSON.stringify(this.follower)}: its ${this.field} ${this.detail}`
  }
}

/** Checks that a follower's name, checkpoint key and lease are text every store can hold. */
export const validateNames = (follower: Follower<any, any, any>): Result.Result<void, InvalidFollowerName> => {
  const names = [
    ["name", follower.name],
    ["checkpoint", follower.checkpoint ?? follower.name],
    ["lease", follower.lease ?? follower.name]
  ] as const
  for (const [field, name] of names) {
    const detail =
      typeof name !== "string" ? `must be a string, not a ${typeof name}` : name === "" ? "is empty" : textProblem(name)
    if (detail !== undefined) {
      return Result.fail(new InvalidFollowerName({ follower: String(follower.name), field, detail }))
    }
  }
  return Result.succeed(undefined)
}

/** A follower stopped: an event still failed after the retries (or did not decode) and its policy stops. */
export class ProjectionFailed extends Schema.TaggedError<ProjectionFailed>()("ProjectionFailed", {
  projection: Schema.String,
  position: Schema.BigInt,
  stream: Schema.String,
  version: Schema.Int,
  type: Schema.String,
  eventId: Schema.String,
  reason: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    return `projection ${this.projection} stopped at ${this.type} ${this.stream}@${this.version} (position ${this.position}, event ${this.eventId}): ${this.reason}`
  }
}

/**
 * The transaction around a batch failed by itself: it could not begin or commit, or its connection was cut so that
 * it could not roll back. Nothing says the batch committed, so the follower starts again from its stored checkpoint.
 */
export class TransactionError extends Schema.TaggedError<TransactionError>()("TransactionError", {
  cause: Schema.Defect()
}) {
  override get message() {
    return `the transaction around a batch failed: ${describeCause(this.cause)}`
  }
}

/** Runs an effect atomically with the checkpoint and dead-letter writes inside it (a database transaction). */
export type Transaction = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TransactionError, R>

/** What a follower does with a batch whose handler fails. */
export type FailurePolicy<R = never> =
  | { readonly _tag: "RetryForever" }
  | { readonly _tag: "Stop"; readonly retries: number }
  | {
      readonly _tag: "Park"
      readonly retries: number
      readonly park: (letter: DeadLetters.DeadLetter) => Effect.Effect<void, DeadLetters.DeadLetterError, R>
    }

/** Retries a failing batch with backoff until it passes: nothing is skipped and the follower never stops by itself. */
export const retryForever: FailurePolicy = { _tag: "RetryForever" }

/** Retries a failing batch, then each of its events, `retries` times; then stops with `ProjectionFailed`. */
export const stopAfter = (retries: number): FailurePolicy => ({ _tag: "Stop", retries })

/** Retries like `stopAfter`, then parks the failing event with `park` (in the batch's transaction) and goes on. */
export const parkAfter = <R>(
  retries: number,
  park: (letter: DeadLetters.DeadLetter) => Effect.Effect<void, DeadLetters.DeadLetterError, R>
): FailurePolicy<R> => ({ _tag: "Park", retries, park })

/** A follower: what it reads, how it decodes and handles a batch, and what it does when a batch fails. */
export interface Follower<A, E = never, R = never> {
  /** Its name: in logs, status, the lag metric, dead letters and `ProjectionFailed`. */
  readonly name: string
  /** The key of its checkpoint; `name` unless set (a rebuild reads under a key of its own). */
  readonly checkpoint?: string
  /** The lease `start` works under; `name` unless set. */
  readonly lease?: string
  /** Only events of streams in these categories; every category unless set. */
  readonly categories?: ReadonlyArray<string>
  /** Only events of these types; every type unless set. */
  readonly types?: ReadonlyArray<string>
  /** Only events of streams in this partition of the log; the whole log unless set (see `Partition`). */
  readonly partition?: Partition
  /** The owner epoch from `CheckpointStore.claim`: its advances are refused once another instance claims the checkpoint. */
  readonly epoch?: bigint
  /** The most events one batch holds (and one read fetches). */
  readonly batchSize: number
  /** Turns a recorded event into what the handler sees; a failure goes to the policy without retries. */
  readonly decode: (recorded: RecordedEvent) => Result.Result<A, EventDecodeError>
  /** Handles one batch, in global order. A defect (a throw) fails the batch like a failure. */
  readonly handle: (events: ReadonlyArray<A>) => Effect.Effect<void, E, R>
  /** What a failing batch leads to. */
  readonly onFailure: FailurePolicy<R>
  /** Wraps each batch with its checkpoint advance; they run one after the other (at least once) unless set. */
  readonly transaction?: Transaction
  /** How many pages are read ahead while the handler works on a batch; 0 unless set. */
  readonly readAhead?: number
  /** The backoff of retries and restarts; `Backoff.schedule`'s defaults unless set. */
  readonly backoff?: Backoff.Options
}

/** A failure that restarts a running follower from its stored checkpoint: never an event's fault. */
export type Restart =
  | EventStoreError
  | CheckpointError
  | CheckpointMoved
  | CheckpointFenced
  | DeadLetters.DeadLetterError
  | TransactionError
  | Lease.LeaseError
  | Lease.LeaseLost

/** Every way `catchUp` can fail: the follower stopped on an event, or something `start` would restart after. */
export type CatchUpError = ProjectionFailed | InvalidFollowerName | Exclude<Restart, Lease.LeaseError | Lease.LeaseLost>

/** How far a catch-up has come. */
export interface Progress {
  readonly name: string
  /** Events handled so far. */
  readonly done: number
  /** Events to handle in all. */
  readonly total: number
  /** Events per second since the start. */
  readonly rate: number
  /** Seconds left at the current rate. */
  readonly etaSeconds: number
}

/** What a follower is doing, and how far behind the head of the log it is. */
export interface Status {
  readonly name: string
  /** `"standby"` while another instance holds the lease, `"running"` while this one works, `"stopped"` after a failure. */
  readonly state: "standby" | "running" | "stopped"
  /** The position of the last event handled. */
  readonly checkpoint: bigint
  /** Positions between the checkpoint and the head of the log; 0n when nothing it reads lies beyond the checkpoint. */
  readonly lag: bigint
  /** How many times it started again from its checkpoint after a `Restart` failure. */
  readonly restarts: number
  /** Why it stopped, if it did. */
  readonly error: ProjectionFailed | undefined
}

/** A follower running in the background (see `start`). */
export interface Handle {
  /** What the follower is doing and how far behind it is. */
  readonly status: Effect.Effect<Status, EventStoreError | CheckpointError>
  /** Waits until the follower stops; it stops only with `ProjectionFailed`. */
  readonly await: Effect.Effect<never, ProjectionFailed>
  /**
   * Waits until this instance has handled everything it reads that was committed before the call; fails if
   * the follower stops first. While another instance holds the lease it waits for this one's turn.
   */
  readonly awaitCaughtUp: Effect.Effect<void, ProjectionFailed | EventStoreError>
}

/** Positions behind the head of the log, per follower (attribute `follower`); defined in `Metrics`. */
export const lag = Metrics.followerLag

/** What a follower needs from its context besides its handler's requirements. */
export type Requirements<R> = R | EventStore | CheckpointStore

/** The handler's own failure, kept apart from the checkpoint's and the transaction's. */
interface HandlerFailed {
  readonly _tag: "HandlerFailed"
  readonly error: unknown
}

const handlerFailed = (error: unknown): HandlerFailed => ({ _tag: "HandlerFailed", error })

/** How one attempt at a batch can fail. */
type BatchError =
  | EventDecodeError
  | HandlerFailed
  | CheckpointError
  | CheckpointMoved
  | CheckpointFenced
  | TransactionError

/** An error as text: its message, after its name unless that is a plain `Error`. */
const describe = (error: unknown): string => {
  if (!Predicate.hasProperty(error, "message") || typeof error.message !== "string") return describeCause(error)
  const name = Predicate.hasProperty(error, "name") && typeof error.name === "string" ? error.name : "Error"
  return `${name === "Error" ? "" : `${name}: `}${error.message}`
}

/**
 * Handles the batch `events` read after `cursor` and advances the checkpoint past it; returns the new checkpoint.
 * Failing batches go through the policy; failures of the checkpoint, the transaction or the dead letters end it.
 */
const handleBatch = <A, E, R>(
  follower: Follower<A, E, R>,
  checkpoints: CheckpointStore["Service"],
  cursor: bigint,
  events: ReadonlyArray<RecordedEvent>
): Effect.Effect<bigint, CatchUpError, R> => {
  const last = events.at(-1)
  if (last === undefined) return Effect.succeed(cursor)
  const checkpoint = follower.checkpoint ?? follower.name
  const transaction: Transaction = follower.transaction ?? ((self) => self)
  const policy = follower.onFailure
  const advance = checkpoints.advance(checkpoint, cursor, last.position, follower.epoch)

  const attempt = Effect.suspend((): Effect.Effect<void, BatchError, R> => {
    const decoded: Array<A> = []
    for (const event of events) {
      const result = follower.decode(event)
      if (Result.isFailure(result)) return Effect.fail(result.failure)
      decoded.push(result.success)
    }
    const handle = follower.handle(decoded).pipe(
      Effect.mapError(handlerFailed),
      Effect.catchDefect((defect) => Effect.fail(handlerFailed(defect)))
    )
    // In a transaction the checkpoint moves first, so a runner racing a rebuild's swap waits on the checkpoint row
    // before touching the table. Without one, the batch is handled first: a crash between the two repeats it.
    return follower.transaction === undefined
      ? Effect.andThen(handle, advance)
      : transaction(Effect.andThen(advance, handle))
  }).pipe(
    Effect.tapError((error) =>
      error._tag === "HandlerFailed"
        ? Effect.logWarning(
            `${follower.name}: batch after position ${cursor} failed, retrying: ${describe(error.error)}`
          )
        : Effect.void
    ),
    Effect.retry({
      schedule: Backoff.schedule(follower.backoff),
      times: policy._tag === "RetryForever" ? Number.POSITIVE_INFINITY : policy.retries,
      while: (error) => error._tag === "HandlerFailed"
    }),
    Effect.as(last.position)
  )

  const settle = (error: unknown): Effect.Effect<bigint, CatchUpError, R> => {
    // Replayed one event at a time, the batch commits up to the failing event, which is then settled alone.
    if (events.length > 1) {
      return Effect.reduce(
        events,
        () => cursor,
        (at, event) => handleBatch(follower, checkpoints, at, [event])
      )
    }
    const reason = describe(error)
    if (policy._tag !== "Park") {
      return Effect.fail(
        new ProjectionFailed({
          projection: follower.name,
          position: last.position,
          stream: last.stream,
          version: last.version,
          type: last.type,
          eventId: last.eventId,
          reason,
          cause: error
        })
      )
    }
    const park = policy.park(DeadLetters.of(follower.name, last, reason))
    return Effect.logWarning(`${follower.name} parked ${last.type} at position ${last.position}: ${reason}`).pipe(
      // Without a transaction the letter is written first: parking again after a crash changes nothing.
      Effect.andThen(
        follower.transaction === undefined ? Effect.andThen(park, advance) : transaction(Effect.andThen(advance, park))
      ),
      Effect.tap(() => Metric.update(parked(follower.name), 1)),
      Effect.as(last.position)
    )
  }

  return Effect.catchTags(attempt, {
    HandlerFailed: (failed) => settle(failed.error),
    EventDecodeError: settle
  })
}

const handled = Metrics.by(Metrics.followerEvents, "follower")
const lagSeconds = Metrics.by(Metrics.followerLagSeconds, "follower")
const lagEvents = Metrics.by(Metrics.followerLagEvents, "follower")
const lagPositions = Metrics.by(Metrics.followerLag, "follower")
const parked = Metrics.by(Metrics.deadLetters, "follower")

/**
 * Handles a batch as `handleBatch` does, in a span, `LogFollower.batch`, linked to the traces its events came from;
 * once it commits, counts its events and sets the follower's lag in seconds from its last event.
 */
const followBatch = <A, E, R>(
  follower: Follower<A, E, R>,
  checkpoints: CheckpointStore["Service"],
  cursor: bigint,
  events: ReadonlyArray<RecordedEvent>
): Effect.Effect<bigint, CatchUpError, R> => {
  const last = events.at(-1)
  if (last === undefined) return Effect.succeed(cursor)
  return handleBatch(follower, checkpoints, cursor, events).pipe(
    Effect.tap(() =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.all([
          Metric.update(handled(follower.name), events.length),
          Metric.update(lagSeconds(follower.name), Math.max(0, (now - last.recordedAt.getTime()) / 1000))
        ])
      )
    ),
    Effect.withSpan("LogFollower.batch", {
      kind: "consumer",
      links: TraceContext.links(events),
      attributes: {
        "chronicle.follower": follower.name,
        "chronicle.event_count": events.length,
        "chronicle.after": String(cursor),
        "chronicle.last_position": String(last.position)
      }
    })
  )
}

/**
 * Sets the lag gauges of a follower from its status: positions, and events counted up to `Metrics.lagEventsCap` (a
 * read of that many at most); both lags are 0 once nothing lies beyond the checkpoint.
 */
const sampleLag = (
  store: EventStore["Service"],
  follower: Follower<any, any, any>,
  status: Pick<Status, "checkpoint" | "lag">
): Effect.Effect<void, EventStoreError> =>
  Effect.gen(function* () {
    yield* Metric.update(lagPositions(follower.name), status.lag)
    if (status.lag === 0n) {
      yield* Metric.update(lagEvents(follower.name), 0)
      return yield* Metric.update(lagSeconds(follower.name), 0)
    }
    const behind = yield* Stream.runCount(
      store
        .readAll({ ...readOptions(follower, status.checkpoint), pageSize: Metrics.lagEventsCap })
        .pipe(Stream.take(Metrics.lagEventsCap))
    )
    yield* Metric.update(lagEvents(follower.name), behind)
  })

/** The log as `follower` reads it after `after`, with its read-ahead. */
const reading = (
  follower: Follower<any, any, any>,
  stream: Stream.Stream<RecordedEvent, EventStoreError>
): Stream.Stream<RecordedEvent, EventStoreError> =>
  (follower.readAhead ?? 0) > 0 ? Stream.bufferArray(stream, { capacity: follower.readAhead ?? 0 }) : stream

/** The position of the next event `follower` reads after `after`, if any. */
const nextAfter = (
  store: EventStore["Service"],
  follower: Pick<Follower<any, any, any>, "categories" | "types" | "partition">,
  after: bigint
): Effect.Effect<Option.Option<bigint>, EventStoreError> =>
  Stream.runHead(store.readAll({ ...readOptions(follower, after), pageSize: 1 }).pipe(Stream.take(1))).pipe(
    Effect.map(Option.map((event) => event.position))
  )

/** The lag of a follower whose checkpoint is `checkpoint`: 0n when nothing it reads lies beyond it. */
const lagAt = (
  store: EventStore["Service"],
  follower: Pick<Follower<any, any, any>, "categories" | "types" | "partition">,
  checkpoint: bigint
): Effect.Effect<bigint, EventStoreError> =>
  Effect.gen(function* () {
    if (Option.isNone(yield* nextAfter(store, follower, checkpoint))) return 0n
    const head = yield* store.head
    return head > checkpoint ? head - checkpoint : 0n
  })

/**
 * Handles every event after the checkpoint up to the head of the log at the start, then returns the new checkpoint.
 * `onProgress` hears after each batch how far it has come out of `total` (counted by reading the log once unless
 * given). It does not take the lease and does not restart: it fails where `start` would start again.
 */
export const catchUp = <A, E, R, TotalError = never, TotalR = never>(
  follower: Follower<A, E, R>,
  options: {
    readonly onProgress?: (progress: Progress) => Effect.Effect<void>
    /** Counts the events between two positions (after `from`, up to `until`); read from the log unless given. */
    readonly total?: (from: bigint, until: bigint) => Effect.Effect<number, TotalError, TotalR>
  } = {}
): Effect.Effect<bigint, CatchUpError | TotalError, Requirements<R> | TotalR> =>
  Effect.gen(function* () {
    yield* Effect.fromResult(validateNames(follower))
    const store = yield* EventStore
    const checkpoints = yield* CheckpointStore
    const from = yield* checkpoints.load(follower.checkpoint ?? follower.name)
    const until = yield* store.head
    const upToHead = store
      .readAll(readOptions(follower, from))
      .pipe(Stream.takeWhile((event) => event.position <= until))
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
    yield* reading(follower, upToHead).pipe(
      Stream.runForEachArray((events) =>
        Effect.gen(function* () {
          cursor = yield* followBatch(follower, checkpoints, cursor, events)
          done += events.length
          if (options.onProgress !== undefined) {
            const rate = done / Math.max(0.001, (Date.now() - started) / 1000)
            const left = Math.max(0, total - done)
            yield* options.onProgress({ name: follower.name, done, total, rate, etaSeconds: left / rate })
          }
        })
      )
    )
    return cursor
  })

/**
 * Starts a follower in the background for as long as the scope is open: under its lease, from its checkpoint,
 * batch by batch, catch-up then live. It restarts from the stored checkpoint after any `Restart` failure (logged,
 * counted in `status`), waiting by the shared backoff, and stops only with `ProjectionFailed`. The lag gauge is
 * updated every `lagInterval` (1 second unless set). A name, checkpoint or lease no store can hold fails at once with
 * `InvalidFollowerName`.
 */
export const start = <A, E, R>(
  follower: Follower<A, E, R>,
  options: { readonly lagInterval?: Schedule.Schedule<unknown> } = {}
): Effect.Effect<Handle, InvalidFollowerName, Requirements<R> | Lease.Lease | Scope.Scope> =>
  Effect.gen(function* () {
    yield* Effect.fromResult(validateNames(follower))
    const store = yield* EventStore
    const checkpoints = yield* CheckpointStore
    const checkpoint = follower.checkpoint ?? follower.name
    const state = yield* Ref.make<Pick<Status, "state" | "restarts" | "error">>({
      state: "standby",
      restarts: 0,
      error: undefined
    })
    // Where this instance stands while it holds the lease; `undefined` in standby.
    const cursor = yield* SubscriptionRef.make<bigint | undefined>(undefined)
    const setState = (next: Status["state"], error?: ProjectionFailed) =>
      Ref.update(state, (current) => ({ ...current, state: next, error }))

    // One backoff per stretch without progress: after a batch commits, the next failure starts the delays afresh.
    let progressed = false
    const work = Effect.gen(function* () {
      const from = yield* checkpoints.load(checkpoint)
      yield* SubscriptionRef.set(cursor, from)
      yield* setState("running")
      let at = from
      yield* reading(follower, store.subscribe(readOptions(follower, from))).pipe(
        Stream.runForEachArray((events) =>
          Effect.flatMap(followBatch(follower, checkpoints, at, events), (next) => {
            at = next
            progressed = true
            return SubscriptionRef.set(cursor, next)
          })
        )
      )
    }).pipe(Effect.ensuring(Effect.andThen(SubscriptionRef.set(cursor, undefined), setState("standby"))))

    const attempt = Effect.suspend(() => {
      progressed = false
      return Lease.withLease(follower.lease ?? follower.name, work)
    }).pipe(
      Effect.andThen(Effect.never),
      // Stopping is the follower's one way to end: it leaves the restart loop as a value.
      Effect.catchTag("ProjectionFailed", Effect.succeed),
      Effect.tapError((error) =>
        Effect.andThen(
          Ref.update(state, (current) => ({ ...current, restarts: current.restarts + 1 })),
          Effect.logWarning(`${follower.name} restarts from its checkpoint: ${error.message}`)
        )
      ),
      Effect.retry({ schedule: Backoff.schedule(follower.backoff), while: () => !progressed }),
      Effect.catch(() => Effect.succeed(undefined)) // it made progress: a fresh stretch begins
    )
    const supervised = Effect.gen(function* () {
      while (true) {
        const failed = yield* attempt
        if (failed !== undefined) {
          yield* setState("stopped", failed)
          return yield* failed
        }
      }
    })
    const fiber = yield* Effect.forkScoped(supervised)
    const stopped = Fiber.join(fiber)

    const status = Effect.gen(function* () {
      const current = yield* Ref.get(state)
      const at = (yield* SubscriptionRef.get(cursor)) ?? (yield* checkpoints.load(checkpoint))
      return { name: follower.name, ...current, checkpoint: at, lag: yield* lagAt(store, follower, at) }
    })
    // The sampler makes no spans: it reads the log every second, which would bury the batches' spans.
    yield* status.pipe(
      Effect.flatMap((current) => sampleLag(store, follower, current)),
      Effect.ignore,
      Effect.withTracerEnabled(false),
      Effect.repeat(options.lagInterval ?? Schedule.spaced("1 second")),
      Effect.forkScoped
    )

    // Up to the last committed event, not the readable head: an event committed before the call may lie above the
    // horizon while an older transaction (another follower's batch, say) is still open, and must be waited for.
    const awaitCaughtUp = Effect.gen(function* () {
      const head = yield* store.lastCommitted
      const reached = (at: bigint | undefined) =>
        at === undefined
          ? Effect.succeed(false)
          : at >= head
            ? Effect.succeed(true)
            : Effect.map(nextAfter(store, follower, at), Option.match({ onNone: () => true, onSome: (p) => p > head }))
      yield* SubscriptionRef.changes(cursor).pipe(
        Stream.mapEffect(reached),
        Stream.filter((done) => done),
        Stream.runHead
      )
    })

    return { status, await: stopped, awaitCaughtUp: Effect.raceFirst(awaitCaughtUp, stopped) }
  })

/** The status of a follower from its stored checkpoint, for tools that do not run it (`chronicle status`). */
export const status = (
  follower: Pick<Follower<any, any, any>, "name" | "checkpoint" | "categories" | "types" | "partition">
): Effect.Effect<
  Omit<Status, "state" | "restarts" | "error">,
  EventStoreError | CheckpointError,
  EventStore | CheckpointStore
> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const checkpoint = yield* (yield* CheckpointStore).load(follower.checkpoint ?? follower.name)
    return { name: follower.name, checkpoint, lag: yield* lagAt(store, follower, checkpoint) }
  })
