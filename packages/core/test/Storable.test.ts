import { Storable } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"

const problemOf = (value: unknown) => {
  const encoded = Storable.encodeJson(value, "data")
  return Result.isFailure(encoded) ? encoded.failure : undefined
}

describe("Storable", () => {
  it("encodes JSON as JSON.stringify does, leaving out undefined properties", () => {
    const value = { a: [1, "é", null, { b: true }], c: undefined, "key with space": -0 }
    assert.deepStrictEqual(Storable.encodeJson(value, "data"), Result.succeed(JSON.stringify(value)))
  })

  it("encodes every JSON value of Unicode text exactly as JSON.stringify does (property)", () =>
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: "grapheme" }), (value) => {
        assert.deepStrictEqual(Storable.encodeJson(value, "data"), Result.succeed(JSON.stringify(value)))
      })
    ))

  it("names the path and the problem of the first value that is not storable JSON", () => {
    const circular: Record<string, unknown> = {}
    circular["again"] = { circular }
    const cases: ReadonlyArray<readonly [unknown, Storable.JsonProblem]> = [
      [{ items: [1, 2n] }, { path: "data.items[1]", kind: "NotJson", detail: "a bigint is not JSON" }],
      [{ "a b": Number.NaN }, { path: 'data["a b"]', kind: "NotJson", detail: "NaN is not a JSON number" }],
      [[1, undefined], { path: "data[1]", kind: "NotJson", detail: "undefined (or a hole) is not JSON" }],
      [{ at: new Date(0) }, { path: "data.at", kind: "NotJson", detail: "a Date is not a plain object or array" }],
      [circular, { path: "data.again.circular", kind: "NotJson", detail: "circular: it contains itself" }],
      [
        { ok: [1, { fine: "yes" }], list: [{}, { "x-y": [true, Symbol.for("s")] }] },
        { path: 'data.list[1]["x-y"][1]', kind: "NotJson", detail: "a symbol is not JSON" }
      ],
      [{ s: "a\u0000b" }, { path: "data.s", kind: "UnrepresentableText", detail: "contains a NUL character" }],
      [
        { "\ud800": 1 },
        {
          path: 'data["\\ud800"]',
          kind: "UnrepresentableText",
          detail: "the key contains a lone UTF-16 surrogate (not Unicode text)"
        }
      ],
      [
        Object.defineProperty({}, "g", {
          enumerable: true,
          get: () => {
            throw new Error("boom")
          }
        }),
        { path: "data.g", kind: "NotJson", detail: "reading it threw: boom" }
      ]
    ]
    for (const [value, problem] of cases) assert.deepStrictEqual(problemOf(value), problem)
  })

  it("accepts maxJsonDepth levels of nesting and refuses one more", () => {
    const nest = (levels: number): unknown => (levels === 0 ? 0 : [nest(levels - 1)])
    assert.isUndefined(problemOf(nest(Storable.maxJsonDepth)))
    assert.strictEqual(problemOf(nest(Storable.maxJsonDepth + 1))?.detail, "nested deeper than 1000 levels")
  })

  it("text Postgres can store: anything Unicode but NUL and lone surrogates", () => {
    assert.isUndefined(Storable.textProblem("𝄞 é ́ שלום \u202e 😀"))
    assert.isDefined(Storable.textProblem("\u0000"))
    assert.isDefined(Storable.textProblem("a\udc00"))
    assert.isDefined(Storable.textProblem("\ud83d"))
  })
})
