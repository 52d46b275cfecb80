/**
 * The outbox: a background fiber that tails the global log from its own checkpoint and hands every event to the
 * `Publisher`, at least once and in log order (so in order within each stream). The checkpoint advances only after
 * the broker has acknowledged a batch; a batch the broker refuses or cannot take is retried with capped exponential
 * backoff, without losing its place. Across app instances one outbox of a name is active: it works under a `Lease`
 * of that name, and when the holder dies a waiting instance takes over from the checkpoint. `layer` starts the fiber
 * with the layer and stops it when the app's scope closes:
 *
 * ```ts
 * const OutboxLive = Outbox.layer().pipe(Layer.provide(NatsPublisher.layer({ servers: "nats://127.0.0.1:4222" })))
 * ```
 *
 * **Gotchas**: after a crash between publication and checkpoint the last batch is published again; JetStream drops
 * the repeats inside its duplicate window and an `Inbox` drops the rest. The outbox's name is also the name of its
 * checkpoint and lease, so it must differ from every projection's name.
 */
import { type Duration, Effect, Layer, Schedule, Stream } from "effect"
import * as CheckpointStore from "./CheckpointStore.ts"
import * as EventStore from "./EventStore.ts"
import * as Lease from "./Lease.ts"
import * as Publisher from "./Publisher.ts"

/** Which events an outbox publishes and how it retries; every field has a default. */
export interface Options {
  /** The name of the outbox, its checkpoint and its lease; `"outbox"` unless set. */
  readonly name?: string
  /** Publish only events of streams in these categories; all categories unless set. */
  readonly categories?: ReadonlyArray<string>
  /** Publish only events of these types; all types unless set. */
  readonly types?: ReadonlyArray<string>
  /** The most events read and published as one batch (one checkpoint write); 500 unless set. */
  readonly batchSize?: number
  /** The first delay before retrying after a failure; doubles up to `maxBackoff`. 100 ms unless set. */
  readonly minBackoff?: Duration.Input
  /** The longest delay between retries while the broker or the database is down; 5 seconds unless set. */
  readonly maxBackoff?: Duration.Input
}

type Dependencies = EventStore.EventStore | Publisher.Publisher | CheckpointStore.CheckpointStore | Lease.Lease

/**
 * Runs the outbox until interrupted: waits for its lease, then publishes from its checkpoint; after a failure (a lost
 * lease, a checkpoint moved by another instance, an unreachable database) it backs off and starts again from the
 * checkpoint. It never fails.
 */
export const run = (options: Options = {}): Effect.Effect<never, never, Dependencies> =>
  Effect.gen(function* () {
    const name = options.name ?? "outbox"
    const store = yield* EventStore.EventStore
    const publisher = yield* Publisher.Publisher
    const checkpoints = yield* CheckpointStore.CheckpointStore
    const backoff = Schedule.min([
      Schedule.exponential(options.minBackoff ?? "100 millis"),
      Schedule.spaced(options.maxBackoff ?? "5 seconds")
    ]).pipe(Schedule.jittered)
    const warn = (what: string) => (error: { readonly message: string }) =>
      Effect.logWarning(`outbox "${name}": ${what}, retrying: ${error.message}`)

    const publishFromCheckpoint = Effect.gen(function* () {
      let checkpoint = yield* checkpoints.load(name)
      yield* Effect.logDebug(`outbox "${name}": publishing after position ${checkpoint}`)
      return yield* store
        .subscribe({
          after: checkpoint,
          pageSize: options.batchSize ?? 500,
          ...(options.categories === undefined ? {} : { categories: options.categories }),
          ...(options.types === undefined ? {} : { types: options.types })
        })
        .pipe(
          // Reads the next pages while a batch awaits the broker's acknowledgements.
          Stream.bufferArray({ capacity: 2 }),
          Stream.runForEachArray((batch) =>
            Effect.gen(function* () {
              yield* publisher.publish(batch).pipe(Effect.tapError(warn("publication failed")), Effect.retry(backoff))
              const last = batch.at(-1)!.position
              yield* checkpoints.advance(name, checkpoint, last)
              checkpoint = last
            })
          ),
          Effect.andThen(Effect.never)
        )
    })

    return yield* Lease.withLease(name, publishFromCheckpoint).pipe(
      Effect.tapError(warn("stopped")),
      Effect.retry(backoff),
      Effect.orDie // the backoff schedule never ends, so only a bug could get here
    )
  })

/** Starts the outbox fiber when the layer is built and interrupts it when the layer's scope closes. */
export const layer = (options: Options = {}): Layer.Layer<never, never, Dependencies> =>
  Layer.effectDiscard(Effect.forkScoped(run(options)))
