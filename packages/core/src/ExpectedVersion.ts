/**
 * Expected versions: what a writer believes about a stream when it appends. A wrong belief fails the append with a
 * `ConcurrencyError` and writes nothing; this is optimistic concurrency.
 */
import { Result } from "effect"

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
/** The highest version a stream can reach (Postgres stores versions as a 32-bit integer). */
export const maxVersion = 2 ** 31 - 1

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

/**
 * Checks at run time that `expected` is an expectation these constructors build: a plain number, `exact(NaN)` or an
 * exact version outside 0..`maxVersion` comes back as a sentence saying what is wrong. Every store runs it.
 */
export const validate = (expected: unknown): Result.Result<ExpectedVersion, string> => {
  if (typeof expected !== "object" || expected === null || !("_tag" in expected)) {
    return Result.fail(
      typeof expected === "number"
        ? `a plain number is not an expected version: pass ExpectedVersion.exact(${expected})`
        : "not an expected version: use ExpectedVersion.any, noStream, streamExists or exact(n)"
    )
  }
  switch (expected._tag) {
    case "Any":
    case "NoStream":
    case "StreamExists":
      return Result.succeed(expected as ExpectedVersion)
    case "Exact": {
      const version: unknown = "version" in expected ? expected.version : undefined
      return typeof version === "number" && Number.isInteger(version) && version >= 0 && version <= maxVersion
        ? Result.succeed(expected as ExpectedVersion)
        : Result.fail(`an exact version must be an integer from 0 to ${maxVersion}`)
    }
    default:
      return Result.fail("not an expected version: use ExpectedVersion.any, noStream, streamExists or exact(n)")
  }
}

/** How a possibly invalid expectation reads in an error: `describe` for a valid one, else a safe rendering. */
export const describeUnknown = (expected: unknown): string => {
  const valid = validate(expected)
  if (Result.isSuccess(valid)) return describe(valid.success)
  const show = (value: unknown) =>
    value === null
      ? "null"
      : typeof value === "object" || typeof value === "function" || typeof value === "symbol"
        ? `a ${typeof value}`
        : String(value)
  return typeof expected === "object" && expected !== null && "version" in expected
    ? `exact(${show(expected.version)})`
    : show(expected)
}
