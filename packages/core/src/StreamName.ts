/**
 * Stream names: every stream is `<category>-<id>`, as in EventStoreDB and Emmett. The category is the part before the
 * first `-`; it names the aggregate type and is what projections and the outbox filter on.
 */
import { Result, Schema } from "effect"
import { textProblem } from "./Storable.ts"

/** The longest stream name a store accepts. */
export const maxLength = 200

/** A stream name was empty, too long, or not of the form `<category>-<id>`. */
export class InvalidStreamName extends Schema.TaggedError<InvalidStreamName>()("InvalidStreamName", {
  stream: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid stream name ${JSON.stringify(this.stream)}: ${this.reason}`
  }
}

/** Builds the stream name of aggregate `id` in `category`; `make("cart", "42")` is `"cart-42"`. */
export const make = (category: string, id: string): string => `${category}-${id}`

/** The category of a stream name: the part before the first `-` (the whole name when there is none). */
export const category = (stream: string): string => {
  const dash = stream.indexOf("-")
  return dash === -1 ? stream : stream.slice(0, dash)
}

/** The id part of a stream name: everything after the first `-`. */
export const id = (stream: string): string => stream.slice(stream.indexOf("-") + 1)

/**
 * Checks that `stream` is a usable stream name: a string `<category>-<id>`, both parts non-empty, at most `maxLength`
 * UTF-16 code units long, and text Postgres can store (no NUL, no lone surrogate, which would turn into U+FFFD and
 * make two names one stream). Never throws, whatever a JavaScript caller passes.
 */
export const validate = (stream: string): Result.Result<string, InvalidStreamName> => {
  if (typeof stream !== "string") {
    return Result.fail(new InvalidStreamName({ stream: `a ${typeof stream}`, reason: "a stream name is a string" }))
  }
  const fail = (reason: string) => Result.fail(new InvalidStreamName({ stream, reason }))
  if (stream.length > maxLength) return fail(`longer than ${maxLength} characters`)
  const dash = stream.indexOf("-")
  if (dash <= 0) return fail("expected <category>-<id> with a non-empty category")
  if (dash === stream.length - 1) return fail("expected <category>-<id> with a non-empty id")
  if (/\s/.test(stream.slice(0, dash))) return fail("the category contains white space")
  const problem = textProblem(stream)
  if (problem !== undefined) return fail(problem)
  return Result.succeed(stream)
}
