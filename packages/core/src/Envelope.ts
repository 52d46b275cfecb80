/**
 * Envelopes: what travels with an event. `EventData` is an event ready to append (already encoded to JSON);
 * `RecordedEvent` is what a store hands back, with the stream, stream version, global position and time it was
 * recorded; `Envelope` is a recorded event whose data has been decoded into its domain type.
 */
import { Schema } from "effect"

/** Any domain event: a value with a type tag. */
export interface Tagged {
  readonly _tag: string
}

/** Who caused an event and why: correlation and causation ids, plus any JSON fields the application adds. */
export interface Metadata {
  readonly correlationId?: string
  readonly causationId?: string
  readonly [field: string]: Schema.Json | undefined
}

/** The schema of `Metadata`, used where metadata crosses a boundary (the database, the broker). */
export const Metadata: Schema.Codec<Metadata> = Schema.Record(Schema.String, Schema.Json) as any

/** An event ready to append: its id, type, schema version, JSON data and metadata. */
export interface EventData {
  /** A UUID; appending an event id the stream already holds is a no-op (idempotent retry). */
  readonly eventId: string
  /** The event's type tag, such as `"ItemAdded"`. */
  readonly type: string
  /** The version of the event's schema that `data` is written in; 1 until the type's shape changes. */
  readonly schemaVersion: number
  /** The event's fields, encoded as JSON (without the type tag). */
  readonly data: Schema.Json
  /** Correlation, causation and application fields. */
  readonly metadata: Metadata
}

/** An event as a store returns it. */
export interface RecordedEvent extends EventData {
  /** The stream it belongs to, `<category>-<id>`. */
  readonly stream: string
  /** Its version in the stream: the first event of a stream is version 1. */
  readonly version: number
  /**
   * Its position in the global log. Positions increase in the order readers see events; they need not be dense.
   */
  readonly position: bigint
  /** When the store recorded it. */
  readonly recordedAt: Date
}

/** A recorded event whose data has been decoded into the domain type `E`. */
export interface Envelope<E> extends Omit<RecordedEvent, "data"> {
  readonly event: E
}

/** Builds an envelope from a recorded event and its decoded domain event. */
export const make = <E>({ data: _, ...recorded }: RecordedEvent, event: E): Envelope<E> => ({ ...recorded, event })
