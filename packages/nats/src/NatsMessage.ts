/**
 * How a recorded event travels as a NATS message. The body is the event's JSON data, so any NATS client can read it;
 * the headers carry the envelope: `Nats-Msg-Id` is the event id (JetStream drops a repeat inside its duplicate
 * window), `Chronicle-Type`, `Chronicle-Schema-Version`, `Chronicle-Stream`, `Chronicle-Version`,
 * `Chronicle-Position`, `Chronicle-Recorded-At`, `Chronicle-Correlation-Id`, `Chronicle-Causation-Id` and the W3C
 * `traceparent` of the append (when set), and `Chronicle-Metadata` (all the metadata, as JSON). `decode` turns a received message back into the event.
 */
import { Envelope, StreamName, TraceContext } from "@chronicle/core"
import { type MsgHdrs, headers as makeHeaders } from "@nats-io/transport-node"
import { Result, Schema } from "effect"

/** A received message is not a Chronicle event: a header is missing or malformed. */
export class InvalidMessage extends Schema.TaggedError<InvalidMessage>()("InvalidMessage", {
  subject: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `the message on ${this.subject} is not a Chronicle event: ${this.reason}`
  }
}

/** The names of the headers Chronicle sets. */
export const Header = {
  eventId: "Nats-Msg-Id",
  type: "Chronicle-Type",
  schemaVersion: "Chronicle-Schema-Version",
  stream: "Chronicle-Stream",
  version: "Chronicle-Version",
  position: "Chronicle-Position",
  recordedAt: "Chronicle-Recorded-At",
  correlationId: "Chronicle-Correlation-Id",
  causationId: "Chronicle-Causation-Id",
  traceparent: TraceContext.field,
  metadata: "Chronicle-Metadata"
} as const

/** Turns a category or type into one subject token: `.`, `*`, `>` and white space become `_`. */
export const token = (name: string): string => name.replace(/[.*>\s]/g, "_") || "_"

/** The default subject of an event: `<prefix>.<category>.<type>`, such as `chronicle.cart.ItemAdded`. */
export const subject = (event: Envelope.RecordedEvent, prefix = "chronicle"): string =>
  `${prefix}.${token(StreamName.category(event.stream))}.${token(event.type)}`

/** The headers of an event's message (`Nats-Msg-Id` is set by the publisher's `msgID` option). */
export const headers = (event: Envelope.RecordedEvent): MsgHdrs => {
  const result = makeHeaders()
  result.set(Header.type, event.type)
  result.set(Header.schemaVersion, String(event.schemaVersion))
  result.set(Header.stream, event.stream)
  result.set(Header.version, String(event.version))
  result.set(Header.position, String(event.position))
  result.set(Header.recordedAt, event.recordedAt.toISOString())
  if (event.metadata.correlationId !== undefined) result.set(Header.correlationId, event.metadata.correlationId)
  if (event.metadata.causationId !== undefined) result.set(Header.causationId, event.metadata.causationId)
  const traceparent = event.metadata[TraceContext.field]
  if (typeof traceparent === "string") result.set(Header.traceparent, traceparent)
  result.set(Header.metadata, JSON.stringify(event.metadata))
  return result
}

/** The body of an event's message: its data as JSON. */
export const body = (event: Envelope.RecordedEvent): string => JSON.stringify(event.data)

const decodeMetadata = Schema.decodeUnknownResult(Schema.fromJsonString(Envelope.Metadata))
const decodeData = Schema.decodeUnknownResult(Schema.fromJsonString(Schema.Json))

const required: ReadonlyArray<string> = Object.values(Header).filter(
  (name) => name !== Header.correlationId && name !== Header.causationId && name !== Header.traceparent
)

/** Reads the event back from a message that a Chronicle publisher sent (a core `Msg` or a JetStream `JsMsg`). */
export const decode = (message: {
  readonly subject: string
  readonly data: Uint8Array
  readonly headers?: MsgHdrs | undefined
}): Result.Result<Envelope.RecordedEvent, InvalidMessage> => {
  const fail = (reason: string) => Result.fail(new InvalidMessage({ subject: message.subject, reason }))
  const read = (name: string) => message.headers?.get(name) ?? ""
  const missing = required.filter((name) => read(name) === "")
  if (missing.length > 0) return fail(`missing header ${missing.join(", ")}`)
  const schemaVersion = Number(read(Header.schemaVersion))
  const version = Number(read(Header.version))
  const recordedAt = new Date(read(Header.recordedAt))
  if (!Number.isInteger(schemaVersion) || !Number.isInteger(version) || !/^\d+$/.test(read(Header.position))) {
    return fail(`malformed schema version, version or position header`)
  }
  if (Number.isNaN(recordedAt.getTime())) return fail(`malformed ${Header.recordedAt} header`)
  const metadata = decodeMetadata(read(Header.metadata))
  if (Result.isFailure(metadata)) return fail(`malformed ${Header.metadata} header: ${metadata.failure.message}`)
  const data = decodeData(new TextDecoder().decode(message.data))
  if (Result.isFailure(data)) return fail(`the body is not JSON: ${data.failure.message}`)
  return Result.succeed({
    eventId: read(Header.eventId),
    type: read(Header.type),
    schemaVersion,
    data: data.success,
    metadata: metadata.success,
    stream: read(Header.stream),
    version,
    position: BigInt(read(Header.position)),
    recordedAt
  })
}
