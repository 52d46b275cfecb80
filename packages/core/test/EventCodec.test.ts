import { assert, describe, it } from "@effect/vitest"
import { Effect, Result, Schema } from "effect"
import type { RecordedEvent } from "../src/Envelope.ts"
import * as EventCodec from "../src/EventCodec.ts"
import * as EventId from "../src/EventId.ts"

const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.BigInt, note: Schema.String })
const Frozen = Schema.TaggedStruct("Frozen", {})
const Event = Schema.Union([Deposited, Frozen])
const codec = EventCodec.make(Event)

const recorded = (fields: Partial<RecordedEvent>): RecordedEvent => ({
  eventId: EventId.random(),
  type: "Deposited",
  schemaVersion: 1,
  data: { amount: "5", note: "" },
  metadata: {},
  stream: "account-1",
  version: 3,
  position: 17n,
  recordedAt: new Date(0),
  ...fields
})
const decodeFailure = (event: RecordedEvent) => {
  const decoded = codec.decode(event)
  assert.isTrue(Result.isFailure(decoded), "expected the event not to decode")
  return (decoded as Result.Failure<never, EventCodec.EventDecodeError>).failure
}

describe("EventCodec", () => {
  it("types lists the tags of the union", () => {
    assert.sameMembers([...codec.types], ["Deposited", "Frozen"])
  })

  it("encode stores the tag as the type and the JSON encoding of the other fields as data, at schema version 1", () => {
    const eventId = EventId.random()
    const encoded = codec.encode(Deposited.make({ amount: 5n, note: "salary" }), eventId, { correlationId: "c-1" })
    assert.deepStrictEqual(
      encoded,
      Result.succeed({
        eventId,
        type: "Deposited",
        schemaVersion: 1,
        data: { amount: "5", note: "salary" },
        metadata: { correlationId: "c-1" }
      })
    )
  })

  it("decode gives back the event encode stored, after a trip through JSON", () => {
    for (const event of [Deposited.make({ amount: 12345678901234567890n, note: "ünï ✓" }), Frozen.make({})]) {
      const encoded = Result.getOrThrow(codec.encode(event, EventId.random(), {}))
      const stored = JSON.parse(JSON.stringify(encoded))
      assert.deepStrictEqual(codec.decode(recorded(stored)), Result.succeed(event))
    }
  })

  it("encode refuses an event that breaks its own schema, naming its type", () => {
    const encoded = codec.encode({ _tag: "Deposited", amount: "5" } as never, EventId.random(), {})
    assert.isTrue(Result.isFailure(encoded))
    if (Result.isFailure(encoded)) {
      assert.strictEqual(encoded.failure._tag, "EventEncodeError")
      assert.strictEqual(encoded.failure.type, "Deposited")
    }
  })

  it("decode fails with the stored event's facts for an unknown type", () => {
    const failure = decodeFailure(recorded({ type: "Withdrawn" }))
    assert.deepStrictEqual(
      {
        stream: failure.stream,
        version: failure.version,
        position: failure.position,
        type: failure.type,
        schemaVersion: failure.schemaVersion,
        reason: failure.reason
      },
      {
        stream: "account-1",
        version: 3,
        position: 17n,
        type: "Withdrawn",
        schemaVersion: 1,
        reason: "unknown event type"
      }
    )
    assert.include(failure.message, "account-1@3")
  })

  it("decode fails for a schema version the type does not have", () => {
    const failure = decodeFailure(recorded({ schemaVersion: 2 }))
    assert.strictEqual(failure.schemaVersion, 2)
    assert.include(failure.reason, "unknown schema version")
  })

  it("decode fails, naming the field, for data that does not match the schema", () => {
    const failure = decodeFailure(recorded({ data: { amount: "five", note: "" } }))
    assert.include(failure.reason, "amount")
  })

  it.effect("encodeAll gives random ids, or ids derived from the command id and each event's index", () =>
    Effect.gen(function* () {
      const events = [Deposited.make({ amount: 1n, note: "" }), Frozen.make({})]
      const random = yield* EventCodec.encodeAll(codec, events, { stream: "account-1", metadata: {} })
      assert.notStrictEqual(random[0]!.eventId, random[1]!.eventId)
      const derived = yield* EventCodec.encodeAll(codec, events, {
        stream: "account-1",
        commandId: "command-1",
        metadata: { causationId: "command-1" }
      })
      assert.deepStrictEqual(
        derived.map((event) => [event.eventId, event.type, event.metadata]),
        [
          [EventId.fromCommand("account-1", "command-1", 0), "Deposited", { causationId: "command-1" }],
          [EventId.fromCommand("account-1", "command-1", 1), "Frozen", { causationId: "command-1" }]
        ]
      )
    })
  )
})
