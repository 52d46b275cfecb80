/**
 * Dead letters: events a projection could not handle, parked so that it can go on with the rest. A parked event
 * keeps its facts (projection, position, stream, version, type, event id) and the error's message, for someone to
 * inspect, fix and replay. Projections whose policy is `"park"` write here; the others stop instead.
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { RecordedEvent } from "./Envelope.ts"
import { describeCause } from "./internal/describeCause.ts"

/** An event a projection parked instead of handling. */
export interface DeadLetter {
  readonly projection: string
  readonly position: bigint
  readonly eventId: string
  readonly stream: string
  readonly version: number
  readonly type: string
  /** Why the projection could not handle it. */
  readonly error: string
}

/** Dead letters could not be written or read. */
export class DeadLetterError extends Schema.TaggedError<DeadLetterError>()("DeadLetterError", {
  projection: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    return `dead letters of ${this.projection} could not be written or read: ${describeCause(this.cause)}`
  }
}

/** The dead-letter store's operations. */
export interface Service {
  /** Parks an event; parking the same position of the same projection again changes nothing. */
  readonly park: (letter: DeadLetter) => Effect.Effect<void, DeadLetterError>
  /** The events `projection` parked, in global order. */
  readonly list: (projection: string) => Effect.Effect<ReadonlyArray<DeadLetter>, DeadLetterError>
  /** Removes the letter `projection` parked at `position` (handled or given up); true when there was one. */
  readonly discard: (projection: string, position: bigint) => Effect.Effect<boolean, DeadLetterError>
}

/** Where projections park the events they could not handle. */
export class DeadLetters extends Context.Service<DeadLetters, Service>()("@chronicle/core/DeadLetters") {}

/** The dead letter of `event` for `projection`, failed with `error`. */
export const of = (projection: string, event: RecordedEvent, error: string): DeadLetter => ({
  projection,
  position: event.position,
  eventId: event.eventId,
  stream: event.stream,
  version: event.version,
  type: event.type,
  error
})

/** Builds a dead-letter store in memory (for tests and single-process apps). */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const letters = new Map<string, DeadLetter>()
  return {
    park: (letter) => Effect.sync(() => void letters.set(`${letter.projection}\u0000${letter.position}`, letter)),
    list: (projection) =>
      Effect.sync(() =>
        [...letters.values()]
          .filter((letter) => letter.projection === projection)
          .sort((a, b) => (a.position < b.position ? -1 : 1))
      ),
    discard: (projection, position) => Effect.sync(() => letters.delete(`${projection}\u0000${position}`))
  }
})

/** Provides the in-memory `DeadLetters`, empty when built. */
export const layerMemory: Layer.Layer<DeadLetters> = Layer.effect(DeadLetters, makeMemory)
