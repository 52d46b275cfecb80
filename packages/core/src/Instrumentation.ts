/**
 * Spans and metrics around the stores: `eventStore`, `snapshotStore` and `inbox` wrap a store's service so every
 * operation is a span carrying the stream, its category, versions and event counts (and the database attributes of
 * OpenTelemetry's semantic conventions, given the store's `system`), and updates Chronicle's `Metrics`. Every store
 * layer Chronicle ships is wrapped; a custom store can wrap itself the same way.
 *
 * The stores store metadata as they are given it: the trace context of a command is written into its events by
 * `CommandHandler` (see `TraceContext`).
 *
 * **Gotchas**: spans cost a little even when nothing exports them (Effect's native tracer keeps them in memory until
 * they end); `Effect.withTracerEnabled(false)` turns them into no-ops.
 */
import { Duration, Effect, Metric, Predicate, Stream } from "effect"
import type { EventData } from "./Envelope.ts"
import type * as EventStore from "./EventStore.ts"
import * as ExpectedVersion from "./ExpectedVersion.ts"
import type * as Inbox from "./Inbox.ts"
import * as Metrics from "./Metrics.ts"
import type * as SnapshotStore from "./SnapshotStore.ts"
import * as StreamName from "./StreamName.ts"

/** What the wrapped store runs on, for the `db.*` span attributes. */
export interface Options {
  /** OpenTelemetry's `db.system.name` of the backend, such as `"postgresql"`; none for an in-memory store. */
  readonly system?: string
  /** The table or collection the events live in (`db.collection.name`). */
  readonly collection?: string
}

const appended = Metrics.by(Metrics.eventsAppended, "category")
const appendDuration = Metrics.by(Metrics.appendDuration, "category")
const conflicts = Metrics.by(Metrics.appendConflicts, "category")
const toSeconds = (duration: Duration.Duration) => Duration.toMillis(duration) / 1000

const dbAttributes = (options: Options, operation: string): Record<string, unknown> => ({
  ...(options.system === undefined ? {} : { "db.system.name": options.system }),
  ...(options.collection === undefined ? {} : { "db.collection.name": options.collection }),
  "db.operation.name": operation
})

/** Wraps an event store so each operation is a span and appends update the append metrics. */
export const eventStore = (store: EventStore.Service, options: Options = {}): EventStore.Service => {
  const system = options.system
  const readStreamAttributes = dbAttributes(options, "readStream")
  const readAllAttributes = dbAttributes(options, "readAll")
  const noStackTrace = { captureStackTrace: false } as const

  const append = (stream: string, events: ReadonlyArray<EventData>, expected: ExpectedVersion.ExpectedVersion) => {
    // Attributes come from input not yet validated (the store refuses bad input inside the span), so read it warily.
    const category = typeof stream === "string" ? StreamName.category(stream) : ""
    const count = Array.isArray(events) ? events.length : 0
    // Exporting a span costs about in proportion to its attributes, so the append's carry no derivable or constant
    // one (the category is in the stream, the events' table in the store's docs) and `written` only for a repeat.
    const attributes: Record<string, unknown> = {
      "db.operation.name": "append",
      "chronicle.stream": stream,
      "chronicle.expected_version": Predicate.hasProperty(expected, "_tag")
        ? ExpectedVersion.describe(expected)
        : String(expected),
      "chronicle.event_count": count
    }
    if (system !== undefined) attributes["db.system.name"] = system
    // Level Debug: an app that sets `Tracer.MinimumTraceLevel` to Info exports its commands without these spans.
    return Effect.useSpan("EventStore.append", { kind: "client", level: "Debug", attributes }, (span) =>
      // The append is one span: the statements it runs make none, which halves what tracing costs per append.
      store.append(stream, events, expected).pipe(
        Effect.withTracerEnabled(false),
        Effect.tap((result) => {
          span.attribute("chronicle.version", result.version)
          if (result.written !== count) span.attribute("chronicle.written", result.written)
          return Metric.update(appended(category), result.written)
        }),
        Effect.tapError((error) =>
          error._tag === "ConcurrencyError" ? Metric.update(conflicts(category), 1) : Effect.void
        ),
        Effect.trackDuration(appendDuration(category), toSeconds),
        Effect.withParentSpan(span, noStackTrace)
      )
    )
  }

  return {
    append,
    readStream: (stream, readOptions) =>
      store.readStream(stream, readOptions).pipe(
        Stream.withSpan("EventStore.readStream", {
          attributes: {
            ...readStreamAttributes,
            "chronicle.stream": stream,
            "chronicle.category": StreamName.category(stream),
            "chronicle.from_version": readOptions?.from ?? 1
          }
        })
      ),
    streamVersion: (stream) =>
      Effect.withSpan(store.streamVersion(stream), "EventStore.streamVersion", {
        attributes: { ...readStreamAttributes, "chronicle.stream": stream }
      }),
    readAll: (readOptions) =>
      store.readAll(readOptions).pipe(
        Stream.withSpan("EventStore.readAll", {
          attributes: { ...readAllAttributes, ...filterAttributes(readOptions) }
        })
      ),
    locateEvent: (eventId) =>
      Effect.withSpan(store.locateEvent(eventId), "EventStore.locateEvent", {
        attributes: { ...dbAttributes(options, "locateEvent"), "chronicle.event_id": eventId }
      }),
    // A subscription never ends, so a span around it would never be exported: its pages are spans instead.
    subscribe: store.subscribe,
    head: Effect.withSpan(store.head, "EventStore.head", { attributes: dbAttributes(options, "head") }),
    lastCommitted: Effect.withSpan(store.lastCommitted, "EventStore.lastCommitted", {
      attributes: dbAttributes(options, "lastCommitted")
    })
  }
}

const filterAttributes = (readOptions: EventStore.ReadAllOptions | undefined): Record<string, unknown> => ({
  "chronicle.after": String(readOptions?.after ?? 0n),
  ...(readOptions?.categories === undefined ? {} : { "chronicle.categories": readOptions.categories.join(",") }),
  ...(readOptions?.types === undefined ? {} : { "chronicle.types": readOptions.types.join(",") })
})

/** Wraps a snapshot store so loads, saves and deletes are spans. */
export const snapshotStore = (store: SnapshotStore.Service, options: Options = {}): SnapshotStore.Service => ({
  load: (stream) =>
    store.load(stream).pipe(
      Effect.tap((found) => Effect.annotateCurrentSpan("chronicle.snapshot_found", found._tag === "Some")),
      Effect.withSpan("SnapshotStore.load", {
        attributes: { ...dbAttributes(options, "loadSnapshot"), "chronicle.stream": stream }
      })
    ),
  save: (snapshot) =>
    Effect.withSpan(store.save(snapshot), "SnapshotStore.save", {
      attributes: {
        ...dbAttributes(options, "saveSnapshot"),
        "chronicle.stream": snapshot.stream,
        "chronicle.version": snapshot.version
      }
    }),
  delete: (stream) =>
    Effect.withSpan(store.delete(stream), "SnapshotStore.delete", {
      attributes: { ...dbAttributes(options, "deleteSnapshot"), "chronicle.stream": stream }
    })
})

const consumed = Metrics.by(Metrics.consumerEvents, "consumer")

/**
 * Wraps an inbox so each `handle` is a span saying whether the event was new or a repeat, and counts the events each
 * consumer handled.
 */
export const inbox = (service: Inbox.Service, options: Options = {}): Inbox.Service => ({
  handle: (consumer, eventId, effect) =>
    service.handle(consumer, eventId, effect).pipe(
      Effect.tap((ran) =>
        Effect.andThen(
          Effect.annotateCurrentSpan("chronicle.repeat", ran._tag === "None"),
          ran._tag === "Some" ? Metric.update(consumed(consumer), 1) : Effect.void
        )
      ),
      Effect.withSpan("Inbox.handle", {
        attributes: {
          ...dbAttributes(options, "handle"),
          "messaging.consumer.group.name": consumer,
          "messaging.message.id": eventId
        }
      })
    )
})
