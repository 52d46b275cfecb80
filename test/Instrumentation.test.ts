import { EventId, EventStore, ExpectedVersion, Inbox, Metrics, TraceContext } from "@chronicle/core"
import { SpanRecorder } from "@chronicle/testing"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Option, Stream } from "effect"

const event = (metadata = {}) => ({
  eventId: EventId.random(),
  type: "ItemAdded",
  schemaVersion: 1,
  data: { sku: "apple" },
  metadata
})

// Each test counts in a registry of its own.
const freshMetrics = Effect.provideService(Metric.MetricRegistry, new Map())

describe("Instrumentation.eventStore", () => {
  it.effect("makes an append a span with the stream's attributes and stores its traceparent in the events", () =>
    Effect.gen(function* () {
      const recorder = SpanRecorder.make()
      const store = yield* EventStore.EventStore
      yield* store
        .append("cart-1", [event(), event()], ExpectedVersion.noStream)
        .pipe(Effect.withTracer(recorder.tracer))
      const [append] = recorder.named("EventStore.append")
      assert.isDefined(append)
      assert.deepInclude(Object.fromEntries(append!.attributes), {
        "chronicle.stream": "cart-1",
        "chronicle.category": "cart",
        "chronicle.expected_version": "no stream",
        "chronicle.event_count": 2,
        "chronicle.version": 2,
        "db.operation.name": "append"
      })
      const stored = yield* Stream.runCollect(store.readStream("cart-1"))
      for (const recorded of stored) {
        const from = Option.getOrThrow(TraceContext.fromMetadata(recorded.metadata))
        assert.strictEqual(from.spanId, append!.spanId)
        assert.strictEqual(recorded.metadata.correlationId, append!.traceId)
      }
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.effect("counts appended events by category, and conflicts", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.append("cart-1", [event(), event()], ExpectedVersion.noStream)
      yield* store.append("order-1", [event()], ExpectedVersion.noStream)
      yield* Effect.flip(store.append("cart-1", [event()], ExpectedVersion.exact(1)))
      const appended = (category: string) => Metric.withAttributes(Metrics.eventsAppended, { category })
      assert.strictEqual((yield* Metric.value(appended("cart"))).count, 2)
      assert.strictEqual((yield* Metric.value(appended("order"))).count, 1)
      const conflicts = Metric.withAttributes(Metrics.appendConflicts, { category: "cart" })
      assert.strictEqual((yield* Metric.value(conflicts)).count, 1)
      const durations = Metric.withAttributes(Metrics.appendDuration, { category: "cart" })
      assert.strictEqual((yield* Metric.value(durations)).count, 2)
    }).pipe(Effect.provide(EventStore.layerMemory), freshMetrics)
  )

  it.effect("writes no trace context when tracing is off", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store
        .append("cart-1", [event({ tenant: "acme" })], ExpectedVersion.noStream)
        .pipe(Effect.withTracerEnabled(false))
      const [recorded] = yield* Stream.runCollect(store.readStream("cart-1"))
      assert.deepStrictEqual(recorded!.metadata, { tenant: "acme" })
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.effect("makes each page of a global read a span, inside the read's span", () =>
    Effect.gen(function* () {
      const recorder = SpanRecorder.make()
      const store = yield* EventStore.EventStore
      yield* store.append("cart-1", [event(), event(), event()], ExpectedVersion.noStream)
      yield* Stream.runDrain(store.readAll({ pageSize: 2 })).pipe(Effect.withTracer(recorder.tracer))
      const [read] = recorder.named("EventStore.readAll")
      const pages = recorder.childrenOf(read!)
      assert.deepStrictEqual(
        pages.map((page) => [page.name, page.attributes.get("chronicle.event_count")]),
        [
          ["EventStore.readPage", 2],
          ["EventStore.readPage", 1]
        ]
      )
    }).pipe(Effect.provide(EventStore.layerMemory))
  )
})

describe("Instrumentation.inbox", () => {
  it.effect("makes each handling a span that tells a repeat, and counts what the consumer handled", () =>
    Effect.gen(function* () {
      const recorder = SpanRecorder.make()
      const inbox = yield* Inbox.Inbox
      const id = EventId.random()
      yield* inbox.handle("billing", id, Effect.void).pipe(Effect.withTracer(recorder.tracer))
      yield* inbox.handle("billing", id, Effect.void).pipe(Effect.withTracer(recorder.tracer))
      assert.deepStrictEqual(
        recorder.named("Inbox.handle").map((span) => span.attributes.get("chronicle.repeat")),
        [false, true]
      )
      const consumed = Metric.withAttributes(Metrics.consumerEvents, { consumer: "billing" })
      assert.strictEqual((yield* Metric.value(consumed)).count, 1)
    }).pipe(Effect.provide(Inbox.layerMemory), freshMetrics)
  )
})
