/**
 * Inboxes: how a consumer handles each event once although the broker delivers at least once. `handle` runs the
 * consumer's effect unless the event id is already recorded as handled, and records it together with the effect's
 * writes (in the same transaction, for a database inbox), so a redelivered event is recognised and skipped.
 * `layerMemory` serves tests; `PgInbox` keeps the ids in Postgres beside the consumer's own tables.
 */
import { Context, Effect, Layer, Option, Schema, Semaphore } from "effect"
import * as Instrumentation from "./Instrumentation.ts"
import { describeCause } from "./internal/describeCause.ts"

/** The inbox could not check or record whether `consumer` has handled `eventId`; the event was not handled. */
export class InboxError extends Schema.TaggedError<InboxError>()("InboxError", {
  consumer: Schema.String,
  eventId: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    const reason = describeCause(this.cause)
    return `inbox of ${this.consumer} could not handle event ${this.eventId}: ${reason}`
  }
}

/** An inbox's operation. */
export interface Service {
  /**
   * Runs `effect` unless `consumer` has already handled `eventId`: `Some` of its result when it ran, `None` for a
   * repeat. The id is recorded only when the effect succeeds, atomically with what the effect wrote, so a failed
   * handler can be retried and a successful one never runs twice.
   */
  readonly handle: <A, E, R>(
    consumer: string,
    eventId: string,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<Option.Option<A>, E | InboxError, R>
}

/** The inbox consumers handle broker deliveries through. */
export class Inbox extends Context.Service<Inbox, Service>()("@chronicle/core/Inbox") {}

/**
 * Builds an inbox that keeps handled ids in memory. Handlers run one at a time, so two deliveries of one event never
 * run concurrently.
 */
export const makeMemory: Effect.Effect<Service> = Effect.gen(function* () {
  // Only touched under the lock, so a plain set will do (copying it on every event made long runs quadratic).
  const handled = new Set<string>()
  const lock = yield* Semaphore.make(1)
  return Inbox.of({
    handle: (consumer, eventId, effect) => {
      const key = `${consumer}\u0000${eventId.toLowerCase()}`
      return lock.withPermits(1)(
        Effect.suspend(() =>
          handled.has(key)
            ? Effect.succeedNone
            : Effect.tap(Effect.map(effect, Option.some), () => Effect.sync(() => void handled.add(key)))
        )
      )
    }
  })
})

/** Provides an in-memory `Inbox`, empty when built, with spans and metrics (see `Instrumentation`). */
export const layerMemory: Layer.Layer<Inbox> = Layer.effect(Inbox, Effect.map(makeMemory, Instrumentation.inbox))
