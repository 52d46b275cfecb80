import { CheckpointStore } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

describe("CheckpointStore.layerMemory", () => {
  it.effect("loads 0 before the first save, then what was saved or advanced", () =>
    Effect.gen(function* () {
      const checkpoints = yield* CheckpointStore.CheckpointStore
      assert.strictEqual(yield* checkpoints.load("summary"), 0n)
      yield* checkpoints.advance("summary", 0n, 7n)
      assert.strictEqual(yield* checkpoints.load("summary"), 7n)
      yield* checkpoints.save("summary", 3n)
      assert.strictEqual(yield* checkpoints.load("summary"), 3n)
      assert.strictEqual(yield* checkpoints.load("other"), 0n)
    }).pipe(Effect.provide(CheckpointStore.layerMemory))
  )

  it.effect("refuses to advance from a position it no longer holds, naming both", () =>
    Effect.gen(function* () {
      const checkpoints = yield* CheckpointStore.CheckpointStore
      yield* checkpoints.advance("summary", 0n, 5n)
      const error = yield* checkpoints.advance("summary", 0n, 9n).pipe(Effect.flip)
      assert.deepInclude(error, { _tag: "CheckpointMoved", projection: "summary", expected: 0n, actual: 5n })
      assert.strictEqual(yield* checkpoints.load("summary"), 5n)
    }).pipe(Effect.provide(CheckpointStore.layerMemory))
  )

  it.effect("a claim fences the older owner: its advance is refused, the new owner's passes", () =>
    Effect.gen(function* () {
      const checkpoints = yield* CheckpointStore.CheckpointStore
      const old = yield* checkpoints.claim("p#0/2")
      yield* checkpoints.advance("p#0/2", 0n, 4n, old)
      const current = yield* checkpoints.claim("p#0/2")
      assert.strictEqual(current, old + 1n)
      const refused = yield* checkpoints.advance("p#0/2", 4n, 9n, old).pipe(Effect.flip)
      assert.deepInclude(refused, { _tag: "CheckpointFenced", projection: "p#0/2", epoch: old, current })
      assert.strictEqual(yield* checkpoints.load("p#0/2"), 4n)
      yield* checkpoints.advance("p#0/2", 4n, 9n, current)
      assert.strictEqual(yield* checkpoints.load("p#0/2"), 9n)
    }).pipe(Effect.provide(CheckpointStore.layerMemory))
  )
})
