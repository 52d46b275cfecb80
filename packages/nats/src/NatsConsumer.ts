/**
 * The consumer side of NATS JetStream: a durable pull consumer (explicit acknowledgements) that hands over decoded
 * Chronicle events. `make` gives one delivery at a time, with its acknowledgement left to the caller; `run` handles
 * every delivery through the `Inbox` under the consumer's name, so an event redelivered after a crash between the
 * handler's commit and the acknowledgement is recognised and skipped: with a Postgres inbox, the handler's writes and
 * the record of the event id commit together. A handler that fails is retried by redelivery.
 *
 * ```ts
 * NatsConsumer.run({ servers, stream: "chronicle", consumer: "billing" }, (event) => chargeFor(event))
 *   .pipe(Effect.forkScoped) // needs Inbox (PgInbox.layer) and a Scope
 * ```
 */
import { Backoff, type Envelope, Inbox, TraceContext } from "@chronicle/core"
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, nanos } from "@nats-io/transport-node"
import { Duration, Effect, Schema, type Scope } from "effect"
import * as NatsMessage from "./NatsMessage.ts"

/** The consumer could not reach JetStream, or its stream or consumer could not be read or created. */
export class ConsumeError extends Schema.TaggedError<ConsumeError>()("ConsumeError", {
  stream: Schema.String,
  consumer: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `JetStream consumer ${this.consumer} on stream ${this.stream} failed: ${reason}`
  }
}

/** Where to consume from; `servers`, `stream` and `consumer` are required. */
export interface Options {
  /** The NATS server URLs. */
  readonly servers: string | ReadonlyArray<string>
  /** The JetStream stream to read, such as `"chronicle"`. */
  readonly stream: string
  /** The durable consumer's name, created when missing; also the name the inbox records handled events under. */
  readonly consumer: string
  /** Only messages on this subject (wildcards allowed); all of the stream's unless set. */
  readonly filterSubject?: string
  /** How long JetStream waits for an acknowledgement before redelivering; 30 seconds unless set. */
  readonly ackWait?: Duration.Input
  /** How many messages to fetch ahead of the handler; 256 unless set. */
  readonly prefetch?: number
}

/** One delivery of an event. */
export interface Delivery {
  /** The event, decoded from the message. */
  readonly event: Envelope.RecordedEvent
  /** 1 for the first delivery, more for a redelivery. */
  readonly deliveryCount: number
  /** The message's sequence number in the JetStream stream. */
  readonly sequence: number
  /** How many messages the consumer has not delivered yet. */
  readonly pending: number
  /** Acknowledges the message: JetStream will not deliver it again. */
  readonly ack: Effect.Effect<void>
  /** Refuses the message: JetStream delivers it again. */
  readonly nak: Effect.Effect<void>
}

/** A durable consumer, one delivery at a time. */
export interface Service {
  /** Waits for the next delivery; messages that are not Chronicle events are terminated and logged. */
  readonly next: Effect.Effect<Delivery, ConsumeError>
}

/** Connects and creates the durable consumer when missing; the connection is closed when the scope closes. */
export const make = (options: Options): Effect.Effect<Service, ConsumeError, Scope.Scope> =>
  Effect.gen(function* () {
    const failed = (cause: unknown) => new ConsumeError({ stream: options.stream, consumer: options.consumer, cause })
    const servers = typeof options.servers === "string" ? [options.servers] : [...options.servers]
    const nc = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, waitOnFirstConnect: true }),
        catch: failed
      }),
      (nc) => Effect.promise(() => nc.close())
    )
    const messages = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const jsm = await jetstreamManager(nc)
          await jsm.consumers.add(options.stream, {
            durable_name: options.consumer,
            ack_policy: AckPolicy.Explicit,
            ack_wait: nanos(Duration.toMillis(options.ackWait ?? "30 seconds")),
            ...(options.filterSubject === undefined ? {} : { filter_subject: options.filterSubject })
          })
          const consumer = await jetstream(nc).consumers.get(options.stream, options.consumer)
          return consumer.consume({ max_messages: options.prefetch ?? 256 })
        },
        catch: failed
      }),
      (messages) => Effect.sync(() => messages.stop())
    )
    const iterator = messages[Symbol.asyncIterator]()
    const next = Effect.gen(function* () {
      while (true) {
        const result = yield* Effect.tryPromise({ try: () => iterator.next(), catch: failed })
        if (result.done === true) return yield* failed(new Error("the consumer was closed"))
        const message = result.value
        const decoded = NatsMessage.decode(message)
        if (decoded._tag === "Failure") {
          message.term()
          yield* Effect.logWarning(`${options.consumer}: terminated message ${message.seq}: ${decoded.failure.message}`)
          continue
        }
        return {
          event: decoded.success,
          deliveryCount: message.info.deliveryCount,
          sequence: message.seq,
          pending: message.info.pending,
          ack: Effect.sync(() => message.ack()),
          nak: Effect.sync(() => message.nak())
        }
      }
    })
    return { next }
  })

/** The handler's own failure, kept apart from the inbox's. */
interface HandlerFailed<E> {
  readonly _tag: "HandlerFailed"
  readonly error: E
}

/** The span of one delivery: a consumer span in the trace of the command that appended the event. */
const spanOptions = (options: Options, delivery: Delivery) => ({
  kind: "consumer" as const,
  attributes: {
    "messaging.system": "nats",
    "messaging.operation.type": "process",
    "messaging.destination.name": options.stream,
    "messaging.consumer.group.name": options.consumer,
    "messaging.message.id": delivery.event.eventId,
    "messaging.nats.delivery_count": delivery.deliveryCount,
    "chronicle.stream": delivery.event.stream,
    "chronicle.version": delivery.event.version,
    "chronicle.type": delivery.event.type
  }
})

/**
 * Consumes forever: each delivered event runs `handler` through the `Inbox` under the consumer's name, then is
 * acknowledged; an event already handled is only acknowledged; a failed handler is logged and the message refused,
 * so JetStream delivers it again. While the inbox fails (its database is down or restarting) the same delivery is
 * handled again after the shared backoff, so an outage neither ends the consumer nor reorders its events. While
 * JetStream is unreachable, or its stream is missing, it backs off and connects again. Each delivery is a span,
 * `NatsConsumer.handle`, that continues the trace of the command whose events carry a `traceparent`.
 */
export const run = <E, R>(
  options: Options,
  handler: (event: Envelope.RecordedEvent) => Effect.Effect<void, E, R>
): Effect.Effect<never, never, R | Inbox.Inbox> =>
  Effect.gen(function* () {
    const inbox = yield* Inbox.Inbox
    const warn = (message: string) => Effect.logWarning(`${options.consumer}: ${message}`)
    const handle = (delivery: Delivery) =>
      inbox
        .handle(
          options.consumer,
          delivery.event.eventId,
          Effect.mapError(handler(delivery.event), (error): HandlerFailed<E> => ({ _tag: "HandlerFailed", error }))
        )
        .pipe(
          Effect.tapError((failure) => (failure._tag === "InboxError" ? warn(failure.message) : Effect.void)),
          Effect.retry({ schedule: Backoff.schedule(), while: (failure) => failure._tag === "InboxError" }),
          Effect.matchEffect({
            onSuccess: () => delivery.ack,
            onFailure: (failure) =>
              Effect.andThen(
                warn(failure._tag === "HandlerFailed" ? String(failure.error) : failure.message),
                delivery.nak
              )
          }),
          TraceContext.continueFrom(delivery.event.metadata, "NatsConsumer.handle", spanOptions(options, delivery))
        )
    // Each attempt connects in a scope of its own, so a failed one closes its connection before the next opens one.
    const consume = Effect.gen(function* () {
      const consumer = yield* make(options)
      return yield* Effect.forever(Effect.flatMap(consumer.next, handle))
    }).pipe(Effect.scoped)
    return yield* consume.pipe(
      Effect.tapError((error) => warn(error.message)),
      Effect.retry(Backoff.schedule())
    )
  }).pipe(Effect.orDie) // the backoff schedule never ends, so only a bug could get here
