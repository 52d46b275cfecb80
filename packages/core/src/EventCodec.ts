/**
 * Event codecs: an aggregate's events are an Effect `Schema` union of tagged structs. A codec turns a domain event
 * into the `type` + JSON `data` a store keeps, and a recorded event back into the domain type, failing with the facts
 * (stream, version, position, type, schema version) when a stored event does not decode.
 */
import { Effect, Result, Schema } from "effect"
import type * as Envelope from "./Envelope.ts"
import type { EventData, Metadata, RecordedEvent } from "./Envelope.ts"
import * as EventId from "./EventId.ts"
import * as EventVersions from "./EventVersions.ts"

/** Any domain event (defined in `Envelope`; kept here for modules that name it `EventCodec.Tagged`). */
export type Tagged = Envelope.Tagged

/** A stored event could not be decoded into its domain type. */
export class EventDecodeError extends Schema.TaggedError<EventDecodeError>()("EventDecodeError", {
  stream: Schema.String,
  version: Schema.Int,
  position: Schema.BigInt,
  type: Schema.String,
  schemaVersion: Schema.Int,
  reason: Schema.String
}) {
  /** A stored event that cannot be decoded stays so: reading it again cannot help. */
  get retryable(): false {
    return false
  }
  override get message() {
    return `cannot decode ${this.type} v${this.schemaVersion} at ${this.stream}@${this.version} (position ${this.position}): ${this.reason}`
  }
}

/** A domain event does not satisfy its own schema, so it cannot be stored. */
export class EventEncodeError extends Schema.TaggedError<EventEncodeError>()("EventEncodeError", {
  type: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot encode ${this.type}: ${this.reason}`
  }
}

/** Encodes and decodes one aggregate's events. */
export interface EventCodec<E extends Tagged> {
  /** The union schema the codec was made from. */
  readonly schema: Schema.Codec<E, unknown>
  /** The type tags the schema knows, for filtering reads. */
  readonly types: ReadonlyArray<string>
  /** Encodes a domain event for appending, with the given id and metadata. */
  readonly encode: (event: E, eventId: string, metadata: Metadata) => Result.Result<EventData, EventEncodeError>
  /** Decodes a recorded event into its domain type (pure and synchronous, so loads can decode whole pages). */
  readonly decode: (recorded: RecordedEvent) => Result.Result<E, EventDecodeError>
}

/**
 * Builds the codec of a union of tagged event schemas. Events are stored as their `_tag` (the type) and the rest of
 * their JSON encoding (the data), at their type's current schema version: 1, unless the member schema carries an
 * `EventVersions` history, whose older versions the codec then also reads.
 */
export const make = <E extends Tagged>(schema: Schema.Codec<E, unknown>): EventCodec<E> => {
  const json = Schema.toCodecJson(schema)
  const encodeJson = Schema.encodeResult(json)
  const decodeJson = Schema.decodeUnknownResult(json)
  const registry = EventVersions.registry([schema])
  const types = [...registry.keys()]
  return {
    schema,
    types,
    encode: (event, eventId, metadata) =>
      encodeJson(event).pipe(
        Result.map((encoded) => {
          const { _tag: _, ...data } = encoded as Schema.JsonObject
          return { eventId, type: event._tag, schemaVersion: registry.get(event._tag)?.version ?? 1, data, metadata }
        }),
        Result.mapError((error) => new EventEncodeError({ type: event._tag, reason: error.message }))
      ),
    decode: (recorded) => {
      const fail = (reason: string) =>
        new EventDecodeError({
          stream: recorded.stream,
          version: recorded.version,
          position: recorded.position,
          type: recorded.type,
          schemaVersion: recorded.schemaVersion,
          reason
        })
      const entry = registry.get(recorded.type)
      if (entry === undefined) return Result.fail(fail("unknown event type"))
      if (recorded.schemaVersion !== entry.version) {
        return entry.decode(recorded.schemaVersion, recorded.data).pipe(
          Result.map((event) => event as E),
          Result.mapError(fail)
        )
      }
      return decodeJson({ ...(recorded.data as Schema.JsonObject), _tag: recorded.type }).pipe(
        Result.mapError((error) => fail(error.message))
      )
    }
  }
}

/** Encodes events for one append, with random ids or, given a command id, ids derived from it. */
export const encodeAll = <E extends Tagged>(
  codec: EventCodec<E>,
  events: ReadonlyArray<E>,
  options: { readonly stream: string; readonly commandId?: string | undefined; readonly metadata: Metadata }
): Effect.Effect<ReadonlyArray<EventData>, EventEncodeError> =>
  Effect.forEach(events, (event, index) =>
    Effect.fromResult(
      codec.encode(
        event,
        options.commandId === undefined
          ? EventId.random()
          : EventId.fromCommand(options.stream, options.commandId, index),
        options.metadata
      )
    )
  )
