/**
 * Trace context in event metadata: `CommandHandler` stores the W3C `traceparent` of the span a command decided its
 * events in with each of them, so whoever handles an event later (a projection, the outbox, a consumer behind a
 * broker) can continue the trace of the command that produced it. When the caller gives none, the correlation id defaults to the trace id
 * and the causation id to the span id of that `traceparent`, so events of one trace correlate without extra code.
 *
 * **Gotchas**: a `traceparent` the caller put in the metadata is kept, not overwritten; a malformed one is ignored
 * when read back (`fromMetadata` gives `None`), never an error.
 */
import { Context, Effect, Option, Tracer } from "effect"
import { Headers, HttpTraceContext } from "effect/http"
import type { Metadata } from "./Envelope.ts"

/** The metadata field (and broker header) that holds the W3C trace context. */
export const field = "traceparent"

/** The W3C `traceparent` value of a span: `00-<trace id>-<span id>-<flags>`. */
export const format = (span: Tracer.AnySpan): string =>
  `00-${span.traceId.padStart(32, "0")}-${span.spanId}-${span.sampled ? "01" : "00"}`

/** Reads a W3C `traceparent` value; `None` when it is absent or malformed. */
export const parse = (traceparent: string | undefined): Option.Option<Tracer.ExternalSpan> =>
  traceparent === undefined ? Option.none() : HttpTraceContext.w3c(Headers.fromRecordUnsafe({ traceparent }))

/** The span an event's metadata says it was produced in, if it says so. */
export const fromMetadata = (metadata: Metadata): Option.Option<Tracer.ExternalSpan> => {
  const value = metadata[field]
  return typeof value === "string" ? parse(value) : Option.none()
}

/**
 * Adds `span`'s `traceparent` to `metadata` unless it has one, and defaults the correlation id to the trace id and
 * the causation id to the span id of the `traceparent` it ends up with.
 */
export const inject = (metadata: Metadata, span: Tracer.AnySpan): Metadata => {
  const existing = metadata[field]
  const context = typeof existing === "string" ? Option.getOrElse(parse(existing), () => span) : span
  return {
    ...metadata,
    [field]: typeof existing === "string" ? existing : format(span),
    correlationId: metadata.correlationId ?? context.traceId,
    causationId: metadata.causationId ?? context.spanId
  }
}

/**
 * Adds the current span's trace context to `metadata` (see `inject`); leaves it as it is outside a span or with
 * tracing off.
 */
export const injectCurrent = (metadata: Metadata): Effect.Effect<Metadata> =>
  Effect.map(Effect.option(Effect.currentSpan), (span) =>
    Option.isSome(span) && !Context.get(span.value.annotations, Tracer.DisablePropagation)
      ? inject(metadata, span.value)
      : metadata
  )

/**
 * Runs `effect` in a span that continues the trace an event's metadata carries (its parent is the span that produced
 * the event), or in a new trace when the metadata has none.
 */
export const continueFrom =
  (metadata: Metadata, name: string, options: Omit<Tracer.SpanOptions, "parent" | "root"> = {}) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    const parent = fromMetadata(metadata)
    return Effect.withSpan(effect, name, Option.isSome(parent) ? { ...options, parent: parent.value } : options)
  }

/**
 * The span links from a batch's events to the spans that produced them (one per distinct span, at most `max`), for a
 * span that handles many events from many traces at once, such as a projection batch.
 */
export const links = (
  events: ReadonlyArray<{ readonly metadata: Metadata }>,
  max = 32
): ReadonlyArray<Tracer.SpanLink> => {
  const seen = new Set<string>()
  const result: Array<Tracer.SpanLink> = []
  for (const event of events) {
    if (result.length >= max) break
    const value = event.metadata[field]
    if (typeof value !== "string" || seen.has(value)) continue
    seen.add(value)
    const span = parse(value)
    if (Option.isSome(span)) result.push({ span: span.value, attributes: {} })
  }
  return result
}
