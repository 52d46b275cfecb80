import { assert, describe, it } from "@effect/vitest"
import * as ExpectedVersion from "../src/ExpectedVersion.ts"

describe("ExpectedVersion", () => {
  it("isSatisfiedBy: which stream versions each expectation accepts", () => {
    const accepted = (expected: ExpectedVersion.ExpectedVersion) =>
      [0, 1, 2, 5].filter((actual) => ExpectedVersion.isSatisfiedBy(expected, actual))
    assert.deepStrictEqual(accepted(ExpectedVersion.any), [0, 1, 2, 5])
    assert.deepStrictEqual(accepted(ExpectedVersion.noStream), [0])
    assert.deepStrictEqual(accepted(ExpectedVersion.streamExists), [1, 2, 5])
    assert.deepStrictEqual(accepted(ExpectedVersion.exact(2)), [2])
  })

  it("exact(0) accepts what noStream accepts", () => {
    for (const actual of [0, 1, 7]) {
      assert.strictEqual(
        ExpectedVersion.isSatisfiedBy(ExpectedVersion.exact(0), actual),
        ExpectedVersion.isSatisfiedBy(ExpectedVersion.noStream, actual)
      )
    }
  })

  it("describe: the words errors and logs use", () => {
    assert.deepStrictEqual(
      [ExpectedVersion.any, ExpectedVersion.noStream, ExpectedVersion.streamExists, ExpectedVersion.exact(3)].map(
        ExpectedVersion.describe
      ),
      ["any", "no stream", "stream exists", "3"]
    )
  })
})
