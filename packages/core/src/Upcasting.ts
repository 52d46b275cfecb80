/**
 * Upcasting as a decorator of the `EventStore`: every read (a stream, the global log, a subscription) hands out
 * events at their type's current schema version, upcast through the `EventVersions` transformations, so aggregates,
 * projections and the outbox all see current events. Appends pass through untouched (codecs already write the
 * current version).
 *
 * **Gotcha:** an event that cannot be upcast (unknown type or version, a transformation that fails) is handed on as
 * stored, never dropped: decoding it with the aggregate's `EventCodec` then fails with an `EventDecodeError` naming
 * its stream, version, position, type, schema version and the reason, which a caller can stop on or park.
 */
import { Effect, Layer, Result, Stream } from "effect"
import type { RecordedEvent } from "./Envelope.ts"
import { EventStore, type Service } from "./EventStore.ts"
import type * as EventVersions from "./EventVersions.ts"

/** The event at its type's current version, or the event as stored when it cannot be upcast. */
export const upcast =
  (registry: EventVersions.Registry) =>
  (event: RecordedEvent): RecordedEvent => {
    const entry = registry.get(event.type)
    if (entry === undefined || event.schemaVersion === entry.version) return event
    const data = entry.upcast(event.schemaVersion, event.data)
    return Result.isSuccess(data) ? { ...event, schemaVersion: entry.version, data: data.success } : event
  }

/** Decorates `store` so that every read upcasts events to their current version. */
export const make = (store: Service, registry: EventVersions.Registry): Service => {
  const current = upcast(registry)
  return {
    ...store,
    readStream: (stream, options) => Stream.map(store.readStream(stream, options), current),
    readAll: (options) => Stream.map(store.readAll(options), current),
    subscribe: (options) => Stream.map(store.subscribe(options), current)
  }
}

/** Decorates the `EventStore` in context with the upcasters of `registry`'s event types. */
export const layer = (registry: EventVersions.Registry): Layer.Layer<EventStore, never, EventStore> =>
  Layer.effect(
    EventStore,
    EventStore.use((store) => Effect.succeed(make(store, registry)))
  )
