import { NatsMessage } from "@chronicle/nats"
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"

const event = {
  eventId: "0b9f3c8e-4a51-4a5e-9e55-2f1f8b1c2d3e",
  type: "ItemAdded",
  schemaVersion: 2,
  data: { sku: "apple", quantity: 3 },
  metadata: { correlationId: "order-7", causationId: "command-9", tenant: "acme" },
  stream: "cart.eu-42",
  version: 5,
  position: 9_007_199_254_740_993n,
  recordedAt: new Date("2026-01-02T03:04:05.678Z")
}

/** What a subscriber receives: the publisher's headers, plus the message id the `msgID` option sets. */
const received = () => {
  const headers = NatsMessage.headers(event)
  headers.set(NatsMessage.Header.eventId, event.eventId)
  return { subject: NatsMessage.subject(event), data: new TextEncoder().encode(NatsMessage.body(event)), headers }
}

describe("NatsMessage", () => {
  it("subject per category and type, with characters NATS reserves replaced", () => {
    assert.strictEqual(NatsMessage.subject(event), "chronicle.cart_eu.ItemAdded")
    assert.strictEqual(NatsMessage.subject({ ...event, stream: "cart-1" }, "shop"), "shop.cart.ItemAdded")
  })

  it("headers carry correlation, causation and schema version; decoding gives the event back", () => {
    const message = received()
    assert.strictEqual(message.headers.get("Chronicle-Correlation-Id"), "order-7")
    assert.strictEqual(message.headers.get("Chronicle-Causation-Id"), "command-9")
    assert.strictEqual(message.headers.get("Chronicle-Schema-Version"), "2")
    assert.deepStrictEqual(NatsMessage.decode(message), Result.succeed(event))
  })

  it("the append's W3C traceparent travels as the standard header, and only when the event has one", () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    const traced = NatsMessage.headers({ ...event, metadata: { ...event.metadata, traceparent } })
    assert.strictEqual(traced.get("traceparent"), traceparent)
    assert.isFalse(received().headers.has("traceparent"))
  })

  it("a message without Chronicle's headers fails to decode with the header it lacks", () => {
    const message = received()
    message.headers.delete(NatsMessage.Header.stream)
    const decoded = NatsMessage.decode(message)
    assert.isTrue(Result.isFailure(decoded) && decoded.failure.reason.includes("Chronicle-Stream"))
  })
})
