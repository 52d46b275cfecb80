/**
 * Expected versions: what a writer believes about a stream when it appends. A wrong belief fails the append with a
 * `ConcurrencyError` and writes nothing; this is optimistic concurrency.
 */

/** Append whatever the stream's version. */
export interface Any {
  readonly _tag: "Any"
}
/** Append only if the stream has no events yet. */
export interface NoStream {
  readonly _tag: "NoStream"
}
/** Append only if the stream has at least one event. */
export interface StreamExists {
  readonly _tag: "StreamExists"
}
/** Append only if the stream is exactly at `version` (its number of events; 0 for a new stream). */
export interface Exact {
  readonly _tag: "Exact"
  readonly version: number
}
/** What a writer expects of a stream's version when it appends. */
export type ExpectedVersion = Any | NoStream | StreamExists | Exact

/** Append whatever the stream's version. */
export const any: ExpectedVersion = { _tag: "Any" }
/** Append only to a stream with no events. */
export const noStream: ExpectedVersion = { _tag: "NoStream" }
/** Append only to a stream with at least one event. */
export const streamExists: ExpectedVersion = { _tag: "StreamExists" }
/** Append only if the stream is at exactly `version`; `exact(0)` behaves as `noStream`. */
export const exact = (version: number): ExpectedVersion => ({ _tag: "Exact", version })

/** Whether a stream currently at `actual` satisfies the expectation. */
export const isSatisfiedBy = (expected: ExpectedVersion, actual: number): boolean => {
  switch (expected._tag) {
    case "Any":
      return true
    case "NoStream":
      return actual === 0
    case "StreamExists":
      return actual > 0
    case "Exact":
      return actual === expected.version
  }
}

/** A short description for errors and logs: `"any"`, `"no stream"`, `"stream exists"` or the number. */
export const describe = (expected: ExpectedVersion): string =>
  expected._tag === "Exact"
    ? String(expected.version)
    : expected._tag === "Any"
      ? "any"
      : expected._tag === "NoStream"
        ? "no stream"
        : "stream exists"
