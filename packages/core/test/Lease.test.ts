import { Lease } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"

describe("Lease.layerMemory", () => {
  it.effect("one holder at a time: the second waits until the first lets go", () =>
    Effect.gen(function* () {
      const active = yield* Ref.make(0)
      const maxActive = yield* Ref.make(0)
      const firstIn = yield* Deferred.make<void>()
      const letGo = yield* Deferred.make<void>()
      const work = (gate: Effect.Effect<void>) =>
        Lease.withLease(
          "runner",
          Effect.gen(function* () {
            const now = yield* Ref.updateAndGet(active, (n) => n + 1)
            yield* Ref.update(maxActive, (n) => Math.max(n, now))
            yield* gate
            yield* Ref.update(active, (n) => n - 1)
          })
        )
      const first = yield* Effect.forkChild(
        work(Effect.andThen(Deferred.succeed(firstIn, undefined), Deferred.await(letGo)))
      )
      yield* Deferred.await(firstIn)
      const second = yield* Effect.forkChild(work(Effect.void))
      yield* Effect.yieldNow.pipe(Effect.repeat({ times: 20 }))
      assert.isUndefined(second.pollUnsafe())
      yield* Deferred.succeed(letGo, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      assert.strictEqual(yield* Ref.get(maxActive), 1)
    }).pipe(Effect.provide(Lease.layerMemory))
  )

  it.effect("a fiber waiting for a held lease can be interrupted", () =>
    Effect.gen(function* () {
      const held = yield* Deferred.make<void>()
      const holder = yield* Effect.forkChild(
        Lease.withLease("runner", Effect.andThen(Deferred.succeed(held, undefined), Effect.never))
      )
      yield* Deferred.await(held)
      const waiter = yield* Effect.forkChild(Lease.withLease("runner", Effect.void))
      yield* Effect.yieldNow.pipe(Effect.repeat({ times: 20 }))
      // With the holder still in, the interruption must not wait for the lease (it would wait forever).
      const interrupting = yield* Effect.forkChild(Fiber.interrupt(waiter))
      yield* Effect.yieldNow.pipe(Effect.repeat({ times: 20 }))
      assert.isDefined(interrupting.pollUnsafe())
      yield* Fiber.interrupt(holder)
    }).pipe(Effect.provide(Lease.layerMemory))
  )
})
