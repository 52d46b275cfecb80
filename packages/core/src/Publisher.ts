/**
 * Publishers: where the outbox sends the events it reads from the log. A publisher hands a batch of recorded events to
 * a message broker and succeeds only once the broker has acknowledged every one, so the outbox may then advance its
 * checkpoint. `layerMemory` keeps what was published in memory for users' tests and can simulate an outage;
 * `@chronicle/nats` publishes to NATS JetStream.
 */
import { Context, Effect, Layer, Ref, Schema } from "effect"
import type { RecordedEvent } from "./Envelope.ts"
import { describeCause } from "./internal/describeCause.ts"

/** The broker did not acknowledge an event (unreachable, timed out, or refused it); the outbox publishes it again. */
export class PublishError extends Schema.TaggedError<PublishError>()("PublishError", {
  eventId: Schema.String,
  stream: Schema.String,
  version: Schema.Int,
  destination: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    const reason = describeCause(this.cause)
    return `event ${this.eventId} (${this.stream} v${this.version}) was not acknowledged by ${this.destination}: ${reason}`
  }
}

/** A publisher's operation. */
export interface Service {
  /**
   * Publishes `events` in their order and succeeds once the broker has acknowledged every one of them. After a
   * failure some may have been published anyway, so publishing an event again must be harmless: the broker or the
   * consumers drop the repeat by its event id.
   */
  readonly publish: (events: ReadonlyArray<RecordedEvent>) => Effect.Effect<void, PublishError>
}

/** The publisher the outbox sends events through. */
export class Publisher extends Context.Service<Publisher, Service>()("@chronicle/core/Publisher") {}

/** The in-memory publisher, with what a test needs to look at and to break it. */
export interface Memory extends Service {
  /** Every event published, in publication order, each event id once (repeats are dropped, as a broker does). */
  readonly published: Effect.Effect<ReadonlyArray<RecordedEvent>>
  /** How many publications were dropped as repeats of an event id already published. */
  readonly duplicates: Effect.Effect<number>
  /** Simulates an outage: while down, every publish fails with `PublishError` and publishes nothing. */
  readonly setDown: (down: boolean) => Effect.Effect<void>
}

/** The in-memory publisher's controls, provided by `layerMemory` beside `Publisher`. */
export class MemoryPublisher extends Context.Service<MemoryPublisher, Memory>()("@chronicle/core/MemoryPublisher") {}

interface MemoryState {
  readonly published: ReadonlyArray<RecordedEvent>
  readonly ids: ReadonlySet<string>
  readonly duplicates: number
  readonly down: boolean
}

/** Builds a publisher that keeps published events in memory and drops repeated event ids. */
export const makeMemory: Effect.Effect<Memory> = Effect.gen(function* () {
  const state = yield* Ref.make<MemoryState>({ published: [], ids: new Set(), duplicates: 0, down: false })
  const publish = (events: ReadonlyArray<RecordedEvent>) =>
    Effect.flatMap(
      Ref.modify(state, (current): readonly [RecordedEvent | undefined, MemoryState] => {
        if (current.down) return [events[0], current]
        const ids = new Set(current.ids)
        const fresh: Array<RecordedEvent> = []
        for (const event of events) {
          if (ids.has(event.eventId)) continue
          ids.add(event.eventId)
          fresh.push(event)
        }
        const next = {
          ...current,
          published: [...current.published, ...fresh],
          ids,
          duplicates: current.duplicates + events.length - fresh.length
        }
        return [undefined, next]
      }),
      (refused) =>
        refused === undefined
          ? Effect.void
          : Effect.fail(
              new PublishError({
                eventId: refused.eventId,
                stream: refused.stream,
                version: refused.version,
                destination: "the in-memory publisher",
                cause: new Error("the publisher is down")
              })
            )
    )
  return MemoryPublisher.of({
    publish,
    published: Effect.map(Ref.get(state), (current) => current.published),
    duplicates: Effect.map(Ref.get(state), (current) => current.duplicates),
    setDown: (down) => Ref.update(state, (current) => ({ ...current, down }))
  })
})

/** Provides an in-memory `Publisher`, and its controls as `MemoryPublisher`. */
export const layerMemory: Layer.Layer<Publisher | MemoryPublisher> = Layer.effectContext(
  Effect.map(makeMemory, (memory) => Context.make(Publisher, memory).pipe(Context.add(MemoryPublisher, memory)))
)
