import { AggregateLoader, CommandHandler, EventStore } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Ref, Stream } from "effect"
import { Sharding, TestRunner } from "effect/cluster"
import { AggregateEntity } from "../src/index.ts"
import { Account, Accounts } from "./fixtures/Account.ts"

// The in-memory store, counting the streams read: a load reads its stream once.
const reads = Ref.makeUnsafe(0)
const CountingStore = Layer.effect(
  EventStore.EventStore,
  Effect.map(EventStore.makeMemory, (store) =>
    EventStore.EventStore.of({
      ...store,
      readStream: (stream, options) =>
        Stream.unwrap(
          Effect.as(
            Ref.update(reads, (n) => n + 1),
            store.readStream(stream, options)
          )
        )
    })
  )
)

const Live = AggregateEntity.layer(Accounts, { maxIdleTime: "1 second" }).pipe(
  Layer.provideMerge(TestRunner.layer),
  Layer.provideMerge(CountingStore)
)

const deposit = (amount: number) => ({ _tag: "Deposit" as const, amount })
// Waits until the idle entities have passivated (the cluster checks every 5 seconds).
const passivated = Effect.gen(function* () {
  const sharding = yield* Sharding.Sharding
  while ((yield* sharding.activeEntityCount) > 0) yield* Effect.sleep("100 millis")
}).pipe(Effect.timeout("30 seconds"))

// The fold of the stream as stored.
const stateOf = (id: string) => Effect.map(AggregateLoader.load(Account, id), (loaded) => loaded.state)

describe("AggregateEntity", () => {
  it.live("keeps the state between commands, passivates when idle, and loads again", () =>
    Effect.gen(function* () {
      yield* Ref.set(reads, 0)
      const send = yield* AggregateEntity.client(Accounts)
      for (let i = 1; i <= 3; i++) yield* send("a", deposit(i), { commandId: `a-${i}` })
      assert.strictEqual(yield* Ref.get(reads), 1, "one load for three commands")
      yield* passivated
      const reply = yield* send("a", deposit(10))
      assert.strictEqual(yield* Ref.get(reads), 2, "passivated, then loaded from the store")
      assert.deepStrictEqual(reply, { stream: "account-a", version: 4, written: 1, state: { balance: 16, events: 4 } })
      // A command id handled before the entity passivated is still recognised after the reload.
      assert.deepStrictEqual(yield* send("a", deposit(2), { commandId: "a-2" }), { ...reply, written: 0 })
    }).pipe(Effect.provide(Live))
  )

  it.live("a write behind the entity's back is a conflict: it reloads, decides again, and loses nothing", () =>
    Effect.gen(function* () {
      const send = yield* AggregateEntity.client(Accounts)
      yield* send("b", deposit(1))
      yield* CommandHandler.handle(Account, "b", deposit(100))
      const reply = yield* send("b", deposit(50))
      assert.deepStrictEqual(reply.state, { balance: 151, events: 3 })
      assert.strictEqual(reply.version, 3)
      assert.deepStrictEqual(yield* stateOf("b"), reply.state)
    }).pipe(Effect.provide(Live))
  )

  it.live("a re-sent command id writes nothing and replies with the current state", () =>
    Effect.gen(function* () {
      const send = yield* AggregateEntity.client(Accounts)
      const first = yield* send("c", deposit(5), { commandId: "pay-1" })
      const again = yield* send("c", deposit(5), { commandId: "pay-1" })
      assert.deepStrictEqual(first, { stream: "account-c", version: 1, written: 1, state: { balance: 5, events: 1 } })
      assert.deepStrictEqual(again, { ...first, written: 0 })
      assert.deepStrictEqual(yield* stateOf("c"), { balance: 5, events: 1 })
    }).pipe(Effect.provide(Live))
  )

  it.live("the domain's refusal and a bad command arrive as typed errors", () =>
    Effect.gen(function* () {
      const send = yield* AggregateEntity.client(Accounts)
      const refused = yield* Effect.flip(send("d", { _tag: "Withdraw", amount: 3 }))
      assert.strictEqual(refused._tag, "InsufficientFunds")
      assert.deepStrictEqual(refused._tag === "InsufficientFunds" && [refused.balance, refused.requested], [0, 3])
      const error = yield* Effect.flip(send("d", deposit(-1)))
      assert.strictEqual(error._tag, "InvalidCommand")
      assert.strictEqual(error._tag === "InvalidCommand" && error.path, "amount")
    }).pipe(Effect.provide(Live))
  )
})
