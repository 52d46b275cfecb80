import { Inbox } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Ref } from "effect"

describe("Inbox.layerMemory", () => {
  it.effect("runs a handler once per consumer and event id; a failed handler is not recorded", () =>
    Effect.gen(function* () {
      const inbox = yield* Inbox.Inbox
      const runs = yield* Ref.make(0)
      const handler = Ref.updateAndGet(runs, (n) => n + 1)
      const id = "0b9f3c8e-4a51-4a5e-9e55-2f1f8b1c2d3e"
      assert.deepStrictEqual(yield* inbox.handle("billing", id, handler), Option.some(1))
      assert.deepStrictEqual(yield* inbox.handle("billing", id.toUpperCase(), handler), Option.none())
      assert.deepStrictEqual(yield* inbox.handle("shipping", id, handler), Option.some(2))
      const other = "5d6c1b2a-3e4f-4a5b-8c7d-9e0f1a2b3c4d"
      assert.strictEqual(yield* Effect.flip(inbox.handle("billing", other, Effect.fail("boom"))), "boom")
      assert.deepStrictEqual(yield* inbox.handle("billing", other, handler), Option.some(3))
    }).pipe(Effect.provide(Inbox.layerMemory))
  )
})
