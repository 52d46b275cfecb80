import { assert, describe, it } from "@effect/vitest"
import { Result, Schema } from "effect"
import * as SnapshotCodec from "../src/SnapshotCodec.ts"

class Account extends Schema.Class<Account>("Account")({ owner: Schema.String, opened: Schema.Date }) {}
class AccountRenamed extends Schema.Class<AccountRenamed>("Account")({ holder: Schema.String, opened: Schema.Date }) {}

// Each entry builds its schema afresh on every call, so "built twice" really is two schema values.
const shapes: ReadonlyArray<readonly [string, () => Schema.Top]> = [
  ["cart", () => Schema.Struct({ items: Schema.ReadonlyMap(Schema.String, Schema.Int), checkedOut: Schema.Boolean })],
  [
    "a field renamed",
    () => Schema.Struct({ lines: Schema.ReadonlyMap(Schema.String, Schema.Int), checkedOut: Schema.Boolean })
  ],
  [
    "a field added",
    () =>
      Schema.Struct({
        items: Schema.ReadonlyMap(Schema.String, Schema.Int),
        checkedOut: Schema.Boolean,
        note: Schema.String
      })
  ],
  [
    "a field made optional",
    () =>
      Schema.Struct({
        items: Schema.ReadonlyMap(Schema.String, Schema.Int),
        checkedOut: Schema.optionalKey(Schema.Boolean)
      })
  ],
  [
    "Int became Number",
    () => Schema.Struct({ items: Schema.ReadonlyMap(Schema.String, Schema.Number), checkedOut: Schema.Boolean })
  ],
  [
    "a check added",
    () =>
      Schema.Struct({
        items: Schema.ReadonlyMap(Schema.String, Schema.Int.check(Schema.isGreaterThan(0))),
        checkedOut: Schema.Boolean
      })
  ],
  [
    "Map became Record",
    () => Schema.Struct({ items: Schema.Record(Schema.String, Schema.Int), checkedOut: Schema.Boolean })
  ],
  [
    "Boolean became a literal union",
    () =>
      Schema.Struct({
        items: Schema.ReadonlyMap(Schema.String, Schema.Int),
        checkedOut: Schema.Literals(["no", "yes"])
      })
  ],
  [
    "other literals",
    () =>
      Schema.Struct({
        items: Schema.ReadonlyMap(Schema.String, Schema.Int),
        checkedOut: Schema.Literals(["no", "done"])
      })
  ],
  ["an array", () => Schema.Array(Schema.String)],
  ["a set", () => Schema.ReadonlySet(Schema.String)],
  ["a pattern", () => Schema.String.check(Schema.isPattern(/^a+$/))],
  ["another pattern", () => Schema.String.check(Schema.isPattern(/^b+$/))],
  ["a class", () => Account],
  ["the class with a field renamed", () => AccountRenamed]
]

describe("SnapshotCodec", () => {
  it("the same schema built twice has the same fingerprint", () => {
    for (const [name, build] of shapes) {
      assert.strictEqual(SnapshotCodec.fingerprint(build()), SnapshotCodec.fingerprint(build()), name)
    }
  })

  it("different shapes have different fingerprints", () => {
    const seen = new Map<string, string>()
    for (const [name, build] of shapes) {
      const fingerprint = SnapshotCodec.fingerprint(build())
      assert.isUndefined(seen.get(fingerprint), `${name} has the fingerprint of ${seen.get(fingerprint)}`)
      seen.set(fingerprint, name)
    }
  })

  it("an explicit version overrides the derived fingerprint", () => {
    const [, cart] = shapes[0]!
    const [, renamed] = shapes[1]!
    const v2 = SnapshotCodec.fingerprint(SnapshotCodec.withVersion(cart(), "2"))
    assert.strictEqual(v2, SnapshotCodec.fingerprint(SnapshotCodec.withVersion(renamed(), "2")))
    assert.notStrictEqual(v2, SnapshotCodec.fingerprint(SnapshotCodec.withVersion(cart(), "3")))
    assert.notStrictEqual(v2, SnapshotCodec.fingerprint(cart()))
  })

  it("a state comes back equal from JSON text, and bad JSON fails with the facts", () => {
    const codec = SnapshotCodec.make(
      Schema.Struct({ items: Schema.ReadonlyMap(Schema.String, Schema.Int), opened: Schema.Date })
    )
    const state = { items: new Map([["apple", 3]]), opened: new Date("2024-01-02T03:04:05Z") }
    const encoded = Result.getOrThrow(codec.encode(state, "cart-1", 7))
    const decoded = Result.getOrThrow(codec.decode(JSON.parse(JSON.stringify(encoded)), "cart-1", 7))
    assert.deepStrictEqual(decoded, state)
    const bad = codec.decode({ items: "nope" }, "cart-1", 7)
    assert.isTrue(Result.isFailure(bad))
    if (Result.isFailure(bad)) {
      assert.include(bad.failure.message, "cart-1@7")
      assert.strictEqual(bad.failure.fingerprint, codec.fingerprint)
    }
  })
})
