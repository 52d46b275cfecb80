import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as StreamName from "../src/StreamName.ts"

const reasonOf = (stream: string) => {
  const validated = StreamName.validate(stream)
  return Result.isFailure(validated) ? validated.failure.reason : undefined
}

describe("StreamName", () => {
  it("make joins category and id; category and id split at the first dash", () => {
    const stream = StreamName.make("cart", "42-b")
    assert.strictEqual(stream, "cart-42-b")
    assert.strictEqual(StreamName.category(stream), "cart")
    assert.strictEqual(StreamName.id(stream), "42-b")
    assert.strictEqual(StreamName.category("nodash"), "nodash")
  })

  it("validate accepts <category>-<id> up to maxLength characters", () => {
    for (const stream of ["cart-1", "cart-a b", "c-x", `cart-${"x".repeat(StreamName.maxLength - 5)}`]) {
      assert.deepStrictEqual(StreamName.validate(stream), Result.succeed(stream))
    }
  })

  it("validate refuses, with the reason, names that are empty, too long, or not <category>-<id>", () => {
    assert.deepStrictEqual(
      ["", "nodash", "-42", "cart-", "ca rt-1", "cart-1\u0000", `cart-${"x".repeat(StreamName.maxLength - 4)}`].map(
        reasonOf
      ),
      [
        "expected <category>-<id> with a non-empty category",
        "expected <category>-<id> with a non-empty category",
        "expected <category>-<id> with a non-empty category",
        "expected <category>-<id> with a non-empty id",
        "the category contains white space",
        "contains a NUL character",
        `longer than ${StreamName.maxLength} characters`
      ]
    )
  })

  it("InvalidStreamName names the stream in its message", () => {
    const validated = StreamName.validate("nodash")
    assert.isTrue(Result.isFailure(validated))
    if (Result.isFailure(validated)) assert.include(validated.failure.message, `"nodash"`)
  })
})
