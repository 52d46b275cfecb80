import {
  Aggregate,
  CheckpointStore,
  CommandHandler,
  Decider,
  EventId,
  EventStore,
  ExpectedVersion,
  Inbox,
  Instrumentation,
  LogFollower,
  Metrics,
  Projection,
  TraceContext
} from "@chronicle/core"
import { SpanRecorder } from "@chronicle/testing"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric, Option, Result, Schema, Stream } from "effect"

const event = (metadata = {}) => ({
  eventId: EventId.random(),
  type: "ItemAdded",
  schemaVersion: 1,
  data: { sku: "apple" },
  metadata
})

const Counted = Schema.TaggedStruct("Counted", { by: Schema.Int })
const Count = Schema.TaggedStruct("Count", { by: Schema.Int })
const Counter = Aggregate.make({
  category: "counter",
  commands: Count,
  events: Counted,
  decider: Decider.make({
    initialState: 0,
    decide: (command: typeof Count.Type, _: number) => Result.succeed([Counted.make({ by: command.by })]),
    evolve: (total: number, event: typeof Counted.Type) => total + event.by
  })
})

// Each test counts in a registry of its own.
const freshMetrics = Effect.provideService(Metric.MetricRegistry, new Map())

describe("Instrumentation.eventStore", () => {
  it.effect("makes an append a span with the stream's attributes, and stores the metadata as given", () =>
    Effect.gen(function* () {
      const recorder = SpanRecorder.make()
      const store = yield* EventStore.EventStore
      const events = [event({ tenant: "acme" }), event()]
      yield* store.append("cart-1", events, ExpectedVersion.noStream).pipe(Effect.withTracer(recorder.tracer))
      yield* store.append("cart-1", events, ExpectedVersion.noStream).pipe(Effect.withTracer(recorder.tracer))
      const [append, repeat] = recorder.named("EventStore.append").map((span) => Object.fromEntries(span.attributes))
      // Only what cannot be derived: no category (it is in the stream), `written` only when it is not the count.
      assert.deepStrictEqual(append, {
        "chronicle.stream": "cart-1",
        "chronicle.expected_version": "no stream",
        "chronicle.event_count": 2,
        "chronicle.version": 2,
        "db.operation.name": "append"
      })
      assert.deepStrictEqual(repeat, { ...append, "chronicle.written": 0 })
      const [first] = yield* Stream.runCollect(store.readStream("cart-1"))
      assert.deepStrictEqual(first!.metadata, { tenant: "acme" })
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

// A store whose first append to a stream meets a concurrent writer: another event lands just before it.
const contended = Layer.effect(
  EventStore.EventStore,
  Effect.gen(function* () {
    const raw = yield* EventStore.makeMemory
    const store = Instrumentation.eventStore(raw)
    let contend = true
    return {
      ...store,
      append: (stream, events, expected) =>
        Effect.suspend(() => {
          if (!contend) return store.append(stream, events, expected)
          contend = false
          const other = { ...events[0]!, eventId: EventId.random() }
          return Effect.andThen(
            raw.append(stream, [other], ExpectedVersion.any),
            store.append(stream, events, expected)
          )
        })
    } satisfies EventStore.Service
  })
)

describe("Instrumentation of command handling", () => {
  // Live clock: the retry waits out the shared jittered backoff, which a TestClock would never advance.
  it.live("a command is a span: each attempt loads, decides and appends, and a retry is a second attempt", () =>
    Effect.gen(function* () {
      const recorder = SpanRecorder.make()
      yield* CommandHandler.handle(Counter, "1", { _tag: "Count", by: 2 }).pipe(Effect.withTracer(recorder.tracer))
      const [handle] = recorder.named("CommandHandler.handle")
      assert.isDefined(handle)
      assert.strictEqual(recorder.parentOf(handle!), undefined, "the command is the root")
      const attempts = recorder.childrenOf(handle!)
      assert.deepStrictEqual(
        attempts.map((span) => [span.name, span.attributes.get("chronicle.attempt")]),
        [
          ["CommandHandler.attempt", 1],
          ["CommandHandler.attempt", 2]
        ]
      )
      for (const attempt of attempts) {
        assert.deepStrictEqual(
          recorder.childrenOf(attempt).map((span) => span.name),
          ["AggregateLoader.load", "CommandHandler.decide", "EventStore.append"]
        )
      }
      const [first, second] = attempts.map((attempt) => recorder.childrenOf(attempt).at(-1)!)
      assert.isTrue(first!.status._tag === "Ended" && Exit.isFailure(first!.status.exit), "the first append failed")
      assert.isTrue(second!.status._tag === "Ended" && Exit.isSuccess(second!.status.exit))
      assert.strictEqual(handle!.attributes.get("chronicle.stream"), "counter-1")
      const retries = Metric.withAttributes(Metrics.commandRetries, { category: "counter" })
      assert.strictEqual((yield* Metric.value(retries)).count, 1)
    }).pipe(Effect.provide(contended), freshMetrics)
  )

  it.effect("stores the attempt's traceparent in the events, with correlation and causation ids from it", () =>
    Effect.gen(function* () {
      const recorder = SpanRecorder.make()
      yield* CommandHandler.handle(Counter, "1", { _tag: "Count", by: 2 }, { metadata: { tenant: "acme" } }).pipe(
        Effect.withTracer(recorder.tracer)
      )
      const [attempt] = recorder.named("CommandHandler.attempt")
      const [recorded] = yield* Stream.runCollect((yield* EventStore.EventStore).readStream("counter-1"))
      assert.deepStrictEqual(recorded!.metadata, {
        tenant: "acme",
        traceparent: TraceContext.format(attempt!),
        correlationId: attempt!.traceId,
        causationId: attempt!.spanId
      })
      assert.strictEqual(Option.getOrThrow(TraceContext.fromMetadata(recorded!.metadata)).spanId, attempt!.spanId)
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.effect("writes no trace context when tracing is off", () =>
    Effect.gen(function* () {
      yield* CommandHandler.handle(Counter, "1", { _tag: "Count", by: 2 }, { metadata: { tenant: "acme" } }).pipe(
        Effect.withTracerEnabled(false)
      )
      const [recorded] = yield* Stream.runCollect((yield* EventStore.EventStore).readStream("counter-1"))
      assert.deepStrictEqual(recorded!.metadata, { tenant: "acme" })
    }).pipe(Effect.provide(EventStore.layerMemory))
  )
})

describe("Instrumentation of followers", () => {
  it.effect(
    "a batch is a span linked to the commands' traces; its events count towards the follower's throughput",
    () =>
      Effect.gen(function* () {
        const recorder = SpanRecorder.make()
        yield* CommandHandler.handle(Counter, "1", { _tag: "Count", by: 1 }).pipe(Effect.withTracer(recorder.tracer))
        yield* CommandHandler.handle(Counter, "2", { _tag: "Count", by: 1 }).pipe(Effect.withTracer(recorder.tracer))
        yield* LogFollower.catchUp({
          name: "totals",
          batchSize: 10,
          decode: Projection.recorded,
          handle: () => Effect.void,
          onFailure: LogFollower.stopAfter(0)
        }).pipe(Effect.withTracer(recorder.tracer))
        const [batch] = recorder.named("LogFollower.batch")
        assert.isDefined(batch)
        assert.strictEqual(batch!.attributes.get("chronicle.follower"), "totals")
        assert.strictEqual(batch!.attributes.get("chronicle.event_count"), 2)
        assert.sameMembers(
          batch!.links.map((link) => link.span.spanId),
          recorder.named("CommandHandler.attempt").map((attempt) => attempt.spanId)
        )
        const handled = Metric.withAttributes(Metrics.followerEvents, { follower: "totals" })
        assert.strictEqual((yield* Metric.value(handled)).count, 2)
      }).pipe(Effect.provide(Layer.mergeAll(EventStore.layerMemory, CheckpointStore.layerMemory)), freshMetrics)
  )
})
