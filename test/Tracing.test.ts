/**
 * One trace from a command to its last consumer, across a real nats-server: the command stores its `traceparent` in
 * its events, the outbox publishes them with it, and the consumer's span continues the command's trace.
 */
import {
  Aggregate,
  CheckpointStore,
  CommandHandler,
  Decider,
  EventStore,
  Inbox,
  Lease,
  Outbox,
  TraceContext
} from "@chronicle/core"
import { NatsConsumer, NatsPublisher } from "@chronicle/nats"
import { NatsServer, SpanRecorder } from "@chronicle/testing"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Option, Result, Schema, type Tracer } from "effect"

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

describe.skipIf(NatsServer.skip())("Tracing across NATS", () => {
  it.live("the consumer's span belongs to the command's trace, under the attempt that decided the event", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.scoped
      const recorder = SpanRecorder.make()
      const consumed = yield* Deferred.make<{ readonly span: Tracer.Span; readonly traceparent: unknown }>()

      const program = Effect.gen(function* () {
        const outbox = yield* Outbox.start({ categories: ["counter"] })
        yield* CommandHandler.handle(Counter, "1", { _tag: "Count", by: 2 }).pipe(Effect.withSpan("test.command"))
        yield* outbox.awaitCaughtUp // published, so the stream the consumer reads exists
        yield* NatsConsumer.run({ servers: server.url, stream: "traced", consumer: "audit" }, (event) =>
          Effect.flatMap(Effect.currentSpan, (span) =>
            Deferred.succeed(consumed, { span, traceparent: event.metadata[TraceContext.field] })
          )
        ).pipe(Effect.forkScoped)
        return yield* Deferred.await(consumed).pipe(Effect.timeout("30 seconds"))
      })
      const { span, traceparent } = yield* program.pipe(
        Effect.provide(
          Layer.mergeAll(
            EventStore.layerMemory,
            CheckpointStore.layerMemory,
            Lease.layerMemory,
            Inbox.layerMemory,
            NatsPublisher.layer({
              servers: server.url,
              stream: { name: "traced", subjects: ["traced.>"] },
              subject: (event) => `traced.${event.type}`
            })
          )
        ),
        Effect.withTracer(recorder.tracer)
      )

      const [command] = recorder.named("test.command")
      const [attempt] = recorder.named("CommandHandler.attempt")
      assert.isDefined(command)
      assert.isDefined(attempt)
      assert.strictEqual(span.traceId, command!.traceId, "the consumer's span is in the command's trace")
      assert.strictEqual(traceparent, TraceContext.format(attempt!), "the message carried the command's traceparent")
      // Up from the handler's span (the inbox's, in the consumer's): the consumer's parent is the command's attempt (met through the message), whose ancestors
      // reach the command.
      const ancestors: Array<string> = []
      let current: Tracer.AnySpan | undefined = span
      while (current !== undefined) {
        ancestors.push(current._tag === "Span" ? current.name : `external ${current.spanId}`)
        const parent: Tracer.AnySpan | undefined =
          current._tag === "Span" ? Option.getOrUndefined(current.parent) : undefined
        current =
          parent?._tag === "ExternalSpan" ? (recorder.spans.find((s) => s.spanId === parent.spanId) ?? parent) : parent
      }
      assert.deepStrictEqual(ancestors, [
        "Inbox.handle",
        "NatsConsumer.handle",
        "CommandHandler.attempt",
        "CommandHandler.handle",
        "test.command"
      ])
      const [publish] = recorder.named("NatsPublisher.publish")
      assert.isTrue(
        publish!.links.some((link) => link.span.spanId === attempt!.spanId),
        "the outbox's publication links to the command"
      )
    })
  )
})
