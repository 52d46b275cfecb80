/**
 * The outbox publisher for NATS JetStream, over the official `@nats-io` clients. Each event becomes one message (see
 * NatsMessage) on its subject, `chronicle.<category>.<type>` unless configured, with the event id as `msgID`, so
 * JetStream drops a repeat inside the stream's duplicate window. A batch is sent pipelined on one connection, which
 * keeps its order, and succeeds once JetStream has acknowledged every message of it. Each batch is a span,
 * `NatsPublisher.publish`, linked to the spans that appended its events (the messages carry their `traceparent`).
 *
 * The connection is opened by the first publish, not when the layer is built, so an app starts while the broker is
 * down: the outbox backs off and retries until it is up, and from then on the client reconnects by itself. The first
 * connection also creates the JetStream stream when it does not exist yet.
 *
 * **Gotcha:** JetStream forgets message ids after the stream's duplicate window (2 minutes by default); an event
 * published again later, after a crash between publication and checkpoint that lasted longer, reaches consumers
 * twice. Consumers that must not see it twice use an inbox (`Inbox`, `PgInbox`).
 */

import type { Envelope } from "@chronicle/core"
import { Publisher, TraceContext } from "@chronicle/core"
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  jetstream,
  jetstreamManager
} from "@nats-io/jetstream"
import { connect, type NatsConnection, nanos } from "@nats-io/transport-node"
import { Duration, Effect, Layer, Option, Ref, Semaphore } from "effect"
import * as NatsMessage from "./NatsMessage.ts"

/** The JetStream stream the publisher creates when it is missing. */
export interface StreamOptions {
  /** The stream's name; `"chronicle"` unless set. */
  readonly name?: string
  /** The subjects it captures; `["chronicle.>"]` unless set. */
  readonly subjects?: ReadonlyArray<string>
  /** How long JetStream remembers message ids to drop repeats; 2 minutes unless set. */
  readonly duplicateWindow?: Duration.Input
}

/** How the publisher connects and where it publishes; only `servers` is required. */
export interface Options {
  /** The NATS server URLs, such as `"nats://127.0.0.1:4222"`. */
  readonly servers: string | ReadonlyArray<string>
  /** The subject of an event's message; `NatsMessage.subject` (`chronicle.<category>.<type>`) unless set. */
  readonly subject?: (event: Envelope.RecordedEvent) => string
  /** The stream to create when missing, or `false` when the operator manages streams. */
  readonly stream?: StreamOptions | false
  /** How long to wait for JetStream to acknowledge a message; 5 seconds unless set. */
  readonly ackTimeout?: Duration.Input
  /** How many messages may await their acknowledgement at once; 256 unless set. */
  readonly maxInFlight?: number
}

interface Connection {
  readonly nc: NatsConnection
  readonly js: JetStreamClient
}

/** Creates the stream unless it exists (another publisher may create it at the same moment: then it exists). */
const ensureStream = async (nc: NatsConnection, stream: StreamOptions) => {
  const jsm = await jetstreamManager(nc)
  const name = stream.name ?? "chronicle"
  const exists = await jsm.streams.info(name).then(
    () => true,
    (error: unknown) => {
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound) return false
      throw error
    }
  )
  if (exists) return
  await jsm.streams
    .add({
      name,
      subjects: [...(stream.subjects ?? ["chronicle.>"])],
      duplicate_window: nanos(Duration.toMillis(stream.duplicateWindow ?? "2 minutes"))
    })
    .catch(() => jsm.streams.info(name))
}

/** Builds the publisher; its connection is closed when the scope closes. */
export const make = Effect.fnUntraced(function* (options: Options) {
  const servers = typeof options.servers === "string" ? [options.servers] : [...options.servers]
  const subjectOf = options.subject ?? ((event: Envelope.RecordedEvent) => NatsMessage.subject(event))
  const ackTimeout = Duration.toMillis(options.ackTimeout ?? "5 seconds")
  const maxInFlight = Math.max(1, options.maxInFlight ?? 256)
  const current = yield* Ref.make(Option.none<Connection>())
  const connecting = yield* Semaphore.make(1)
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(Ref.get(current), (connection) =>
      Option.isSome(connection) ? Effect.promise(() => connection.value.nc.close()) : Effect.void
    )
  )

  const open = Effect.tryPromise({
    try: async (): Promise<Connection> => {
      const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, name: "chronicle-outbox" })
      if (options.stream !== false)
        await ensureStream(nc, options.stream ?? {}).catch(async (error) => {
          await nc.close()
          throw error
        })
      return { nc, js: jetstream(nc, { timeout: ackTimeout }) }
    },
    catch: (cause) => cause
  })
  const connection = connecting.withPermits(1)(
    Effect.flatMap(Ref.get(current), (existing) =>
      Option.isSome(existing)
        ? Effect.succeed(existing.value)
        : Effect.tap(open, (opened) => Ref.set(current, Option.some(opened)))
    )
  )

  const failure = (event: Envelope.RecordedEvent, destination: string) => (cause: unknown) =>
    new Publisher.PublishError({
      eventId: event.eventId,
      stream: event.stream,
      version: event.version,
      destination,
      cause
    })

  /** Sends a window of messages at once and reports the first that was not acknowledged, in order. */
  const sendWindow = (js: JetStreamClient, window: ReadonlyArray<Envelope.RecordedEvent>) =>
    Effect.flatMap(
      Effect.promise(() =>
        Promise.allSettled(
          window.map((event) =>
            js.publish(subjectOf(event), NatsMessage.body(event), {
              msgID: event.eventId,
              headers: NatsMessage.headers(event),
              timeout: ackTimeout
            })
          )
        )
      ),
      (outcomes) => {
        const index = outcomes.findIndex((outcome) => outcome.status === "rejected")
        const rejected = outcomes[index]
        if (rejected === undefined || rejected.status !== "rejected") return Effect.void
        const event = window[index]!
        return Effect.fail(failure(event, `JetStream subject ${subjectOf(event)}`)(rejected.reason))
      }
    )

  const publish = (events: ReadonlyArray<Envelope.RecordedEvent>) =>
    Effect.gen(function* () {
      const first = events[0]
      if (first === undefined) return
      const { js } = yield* Effect.mapError(connection, failure(first, `NATS at ${servers.join(", ")}`))
      for (let start = 0; start < events.length; start += maxInFlight) {
        yield* sendWindow(js, events.slice(start, start + maxInFlight))
      }
    }).pipe(
      Effect.withSpan("NatsPublisher.publish", {
        kind: "producer",
        links: TraceContext.links(events),
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "send",
          "messaging.operation.name": "publish",
          "messaging.batch.message_count": events.length,
          "server.address": servers.join(",")
        }
      })
    )

  return Publisher.Publisher.of({ publish })
})

/** Provides the JetStream `Publisher`; its connection lives as long as the layer. */
export const layer = (options: Options): Layer.Layer<Publisher.Publisher> =>
  Layer.effect(Publisher.Publisher, make(options))
