import { TraceContext } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Tracer } from "effect"

const span = Tracer.externalSpan({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" })
const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

describe("TraceContext", () => {
  it("formats a span as a W3C traceparent and reads it back", () => {
    assert.strictEqual(TraceContext.format(span), traceparent)
    const parsed = Option.getOrThrow(TraceContext.parse(traceparent))
    assert.strictEqual(parsed.traceId, span.traceId)
    assert.strictEqual(parsed.spanId, span.spanId)
    assert.isTrue(parsed.sampled)
  })

  it("reads nothing from absent or malformed values", () => {
    for (const value of [undefined, "", "00-xyz-00f067aa0ba902b7-01", `00-${"0".repeat(32)}-00f067aa0ba902b7-01`]) {
      assert.isTrue(Option.isNone(TraceContext.parse(value)), String(value))
    }
    assert.isTrue(Option.isNone(TraceContext.fromMetadata({ traceparent: 42 })))
  })

  it("injects the span's traceparent and defaults correlation and causation ids from it", () => {
    const metadata = TraceContext.inject({ tenant: "acme" }, span)
    assert.deepStrictEqual(metadata, {
      tenant: "acme",
      traceparent,
      correlationId: span.traceId,
      causationId: span.spanId
    })
  })

  it("keeps the caller's traceparent and ids", () => {
    const other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert.deepStrictEqual(TraceContext.inject({ traceparent: other, correlationId: "order-7" }, span), {
      traceparent: other,
      correlationId: "order-7",
      causationId: "b7ad6b7169203331"
    })
  })

  it.effect("continues the trace an event's metadata carries", () =>
    Effect.gen(function* () {
      const child = yield* Effect.currentSpan.pipe(TraceContext.continueFrom({ traceparent }, "Consumer.handle"))
      assert.strictEqual(child.traceId, span.traceId)
      assert.strictEqual(Option.getOrThrow(child.parent).spanId, span.spanId)
    })
  )

  it("links a batch's events to the distinct spans that appended them", () => {
    const other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    const links = TraceContext.links([
      { metadata: { traceparent } },
      { metadata: { traceparent } },
      { metadata: {} },
      { metadata: { traceparent: other } }
    ])
    assert.deepStrictEqual(
      links.map((link) => link.span.spanId),
      ["00f067aa0ba902b7", "b7ad6b7169203331"]
    )
  })
})
