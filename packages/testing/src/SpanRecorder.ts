/**
 * Records the spans an effect creates, to assert on their names, attributes and parent/child structure in tests.
 * `make` gives a tracer that keeps every span it starts (Effect's native spans, so ids and timing are real) and ways
 * to find them:
 *
 * ```ts
 * const recorder = SpanRecorder.make()
 * yield* program.pipe(Effect.withTracer(recorder.tracer))
 * const [handle] = recorder.named("CommandHandler.handle")
 * assert.deepStrictEqual(recorder.childrenOf(handle).map((span) => span.name), ["Aggregate.load", "EventStore.append"])
 * ```
 */
import { Option, Tracer } from "effect"

/** A tracer that keeps its spans, and queries over them. */
export interface SpanRecorder {
  /** Provide it with `Effect.withTracer(recorder.tracer)`. */
  readonly tracer: Tracer.Tracer
  /** Every span started so far, in start order. */
  readonly spans: ReadonlyArray<Tracer.NativeSpan>
  /** The spans called `name`, in start order. */
  readonly named: (name: string) => ReadonlyArray<Tracer.NativeSpan>
  /** The spans whose parent is `span`, in start order. */
  readonly childrenOf: (span: Tracer.AnySpan) => ReadonlyArray<Tracer.NativeSpan>
  /** The span's parent, if it is one of the recorded spans. */
  readonly parentOf: (span: Tracer.Span) => Tracer.NativeSpan | undefined
}

/** Makes a recorder with no spans yet. */
export const make = (): SpanRecorder => {
  const spans: Array<Tracer.NativeSpan> = []
  const parentId = (span: Tracer.Span) => Option.getOrUndefined(span.parent)?.spanId
  return {
    tracer: Tracer.make({
      span: (options) => {
        const span = new Tracer.NativeSpan(options)
        spans.push(span)
        return span
      }
    }),
    spans,
    named: (name) => spans.filter((span) => span.name === name),
    childrenOf: (parent) => spans.filter((span) => parentId(span) === parent.spanId),
    parentOf: (span) => spans.find((candidate) => candidate.spanId === parentId(span))
  }
}
