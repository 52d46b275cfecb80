/**
 * The outbox: a `LogFollower` that hands every event it reads to the `Publisher`, at least once and in log order (so
 * in order within each stream). The checkpoint advances only after the broker has acknowledged a batch; a batch the
 * broker refuses or cannot take is retried with the shared capped backoff, forever, without losing its place, while
 * the next pages are read ahead. Across app instances one outbox of a name is active: it works under a `Lease` of
 * that name, and when the holder dies a waiting instance takes over from the checkpoint. Like every follower it has a
 * `status` with its lag, and `awaitCaughtUp`. `layer` starts it with the layer and stops it when the app's scope
 * closes:
 *
 * ```ts
 * const OutboxLive = Outbox.layer().pipe(Layer.provide(NatsPublisher.layer({ servers: "nats://127.0.0.1:4222" })))
 * ```
 *
 * It publishes events as stored: when the store in context opens sealed personal values (`CryptoShredding`), the
 * outbox publishes the sealed form it read, so the broker never carries them in the clear.
 *
 * **Gotchas**: after a crash between publication and checkpoint the last batch is published again; JetStream drops
 * the repeats inside its duplicate window and an `Inbox` drops the rest. The outbox's name is also the name of its
 * checkpoint and lease, so it must differ from every projection's name.
 */
import { type Duration, type Effect, Layer, Result, type Scope } from "effect"
import type * as CheckpointStore from "./CheckpointStore.ts"
import * as CryptoShredding from "./CryptoShredding.ts"
import type { RecordedEvent } from "./Envelope.ts"
import type * as EventStore from "./EventStore.ts"
import type * as Lease from "./Lease.ts"
import * as LogFollower from "./LogFollower.ts"
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

/** What the outbox needs from its context. */
export type Requirements = EventStore.EventStore | Publisher.Publisher | CheckpointStore.CheckpointStore | Lease.Lease

/** The follower an outbox runs: publishes each batch, retries it forever, reads two pages ahead. */
export const follower = (
  options: Options = {}
): LogFollower.Follower<RecordedEvent, Publisher.PublishError, Publisher.Publisher> => ({
  name: options.name ?? "outbox",
  ...(options.categories === undefined ? {} : { categories: options.categories }),
  ...(options.types === undefined ? {} : { types: options.types }),
  batchSize: options.batchSize ?? 500,
  decode: (recorded) => Result.succeed(CryptoShredding.asStored(recorded)),
  handle: (events) => Publisher.Publisher.use((publisher) => publisher.publish(events)),
  onFailure: LogFollower.retryForever,
  readAhead: 2,
  backoff: {
    ...(options.minBackoff === undefined ? {} : { min: options.minBackoff }),
    ...(options.maxBackoff === undefined ? {} : { max: options.maxBackoff })
  }
})

/**
 * Starts the outbox in the background for as long as the scope is open and returns its handle: `status`,
 * `awaitCaughtUp`, and `await`, which never ends (the outbox never stops by itself).
 */
export const start = (
  options: Options = {}
): Effect.Effect<LogFollower.Handle, LogFollower.InvalidFollowerName, Requirements | Scope.Scope> =>
  LogFollower.start(follower(options))

/** Starts the outbox when the layer is built and stops it when the layer's scope closes. */
export const layer = (options: Options = {}): Layer.Layer<never, LogFollower.InvalidFollowerName, Requirements> =>
  Layer.effectDiscard(start(options))
