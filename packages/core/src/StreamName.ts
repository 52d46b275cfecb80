/**
 * Stream names: every stream is `<category>-<id>`, as in EventStoreDB and Emmett. The category is the part before the
 * first `-`; it names the aggregate type and is what projections and the outbox filter on.
 */
import { Result, Schema } from "effect"

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

/** Checks that `stream` is a usable stream name: `<category>-<id>`, both parts non-empty, at most `maxLength` long. */
export const validate = (stream: string): Result.Result<string, InvalidStreamName> => {
  const fail = (reason: string) => Result.fail(new InvalidStreamName({ stream, reason }))
  if (stream.length > maxLength) return fail(`longer than ${maxLength} characters`)
  const dash = stream.indexOf("-")
  if (dash <= 0) return fail("expected <category>-<id> with a non-empty category")
  if (dash === stream.length - 1) return fail("expected <category>-<id> with a non-empty id")
  if (/\s/.test(stream.slice(0, dash))) return fail("the category contains white space")
  if (stream.includes("\u0000")) return fail("contains a NUL character")
  return Result.succeed(stream)
}
