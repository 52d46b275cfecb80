import { DeadLetters } from "@chronicle/core"
import { PgDeadLetters, PgMigrations } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"

const Live = PgDeadLetters.layer.pipe(Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer)))

const letter = (projection: string, position: bigint): DeadLetters.DeadLetter => ({
  projection,
  position,
  eventId: crypto.randomUUID(),
  stream: "cart-1",
  version: 1,
  type: "ItemAdded",
  error: "boom"
})

// The in-memory store keeps the same promises: both are checked here.
for (const [name, store] of [
  ["PgDeadLetters", Live],
  ["DeadLetters.layerMemory", DeadLetters.layerMemory]
] as const) {
  layer(store, { excludeTestServices: true })(name, (it) => {
    it.effect("discard removes one parked letter, and says whether there was one", () =>
      Effect.gen(function* () {
        const letters = yield* DeadLetters.DeadLetters
        yield* letters.park(letter("p", 7n))
        yield* letters.park(letter("p", 9n))
        yield* letters.park(letter("q", 7n))
        assert.isTrue(yield* letters.discard("p", 7n))
        assert.isFalse(yield* letters.discard("p", 7n))
        assert.deepStrictEqual(
          (yield* letters.list("p")).map((l) => l.position),
          [9n]
        )
        assert.deepStrictEqual(
          (yield* letters.list("q")).map((l) => l.position),
          [7n]
        )
      })
    )
  })
}
