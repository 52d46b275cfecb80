import { Aggregate, Decider } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Result, Schema } from "effect"
import * as AggregateLaws from "../src/AggregateLaws.ts"

// A stock of items: goods are received and shipped, and the stock is closed for good.
const Received = Schema.TaggedStruct("Received", {
  sku: Schema.NonEmptyString,
  quantity: Schema.Int.check(Schema.isGreaterThan(0))
})
const Shipped = Schema.TaggedStruct("Shipped", {
  sku: Schema.NonEmptyString,
  quantity: Schema.Int.check(Schema.isGreaterThan(0))
})
const Closed = Schema.TaggedStruct("Closed", {})
const Event = Schema.Union([Received, Shipped, Closed])
type Event = typeof Event.Type
const quantity = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 9 }))
const Receive = Schema.TaggedStruct("Receive", { sku: Schema.NonEmptyString, quantity })
const Ship = Schema.TaggedStruct("Ship", { sku: Schema.NonEmptyString, quantity })
const Command = Schema.Union([Receive, Ship, Schema.TaggedStruct("Close", {})])
type Command = typeof Command.Type
const State = Schema.Struct({ items: Schema.ReadonlyMap(Schema.String, Schema.Int), closed: Schema.Boolean })
type State = typeof State.Type
class OutOfStock extends Schema.TaggedError<OutOfStock>()("OutOfStock", { sku: Schema.String }) {}

const decide = (command: Command, state: State): Result.Result<ReadonlyArray<Event>, OutOfStock> => {
  if (state.closed) return Result.succeed([])
  switch (command._tag) {
    case "Receive":
      return Result.succeed([Received.make({ sku: command.sku, quantity: command.quantity })])
    case "Ship":
      return (state.items.get(command.sku) ?? 0) < command.quantity
        ? Result.fail(new OutOfStock({ sku: command.sku }))
        : Result.succeed([Shipped.make({ sku: command.sku, quantity: command.quantity })])
    case "Close":
      return Result.succeed([Closed.make({})])
  }
}
const evolve = (state: State, event: Event): State => {
  switch (event._tag) {
    case "Received":
      return {
        ...state,
        items: new Map(state.items).set(event.sku, (state.items.get(event.sku) ?? 0) + event.quantity)
      }
    case "Shipped":
      return {
        ...state,
        items: new Map(state.items).set(event.sku, (state.items.get(event.sku) ?? 0) - event.quantity)
      }
    case "Closed":
      return { ...state, closed: true }
  }
}
const decider = Decider.make({
  initialState: { items: new Map(), closed: false } as State,
  decide,
  evolve,
  isTerminal: (state: State) => state.closed
})
const stockWith = (changes: Partial<Decider.Decider<Command, Event, State, OutOfStock>>, state = State) =>
  Aggregate.make({ category: "stock", commands: Command, events: Event, state, decider: { ...decider, ...changes } })
const Stock = stockWith({})

// Broken stocks, one bug each: shipping more than is held, and shipping nothing.
const shipping = (quantity: (command: { readonly quantity: number }) => number) =>
  stockWith({
    decide: (command, state) =>
      command._tag === "Ship" && !state.closed
        ? Result.succeed([{ _tag: "Shipped", sku: command.sku, quantity: quantity(command) }])
        : decide(command, state)
  })
const overselling = shipping((command) => command.quantity)
const emptyShipments = shipping(() => 0)

const invariants = { "stock is never negative": (state: State) => [...state.items.values()].every((n) => n >= 0) }
const small = { runs: 200 }

// The law's failure, checked to carry the report a user needs.
const failure = (law: Effect.Effect<void, AggregateLaws.LawFailed>) =>
  Effect.map(Effect.flip(law), (error) => {
    assert.match(error.message, /Shrunk input:/)
    assert.match(error.message, /Replay: /)
    return error
  })

describe("AggregateLaws", () => {
  it.effect("every law holds for a correct aggregate, over 1,000 command sequences each", () =>
    AggregateLaws.checkAll(Stock, { invariants, idempotent: (command) => command._tag === "Close" })
  )

  it.effect("checks 1,000 command sequences unless told otherwise", () =>
    Effect.gen(function* () {
      // Every Receive makes a new state, so the initial state is met once per sequence.
      let sequences = 0
      yield* AggregateLaws.invariants(Stock, {
        commands: Arbitrary.schema(Receive),
        invariants: { "counts sequences": (state) => (state === decider.initialState ? ++sequences > 0 : true) }
      })
      assert.strictEqual(sequences, 1_000)
    })
  )

  it.effect("generated commands meet on the same keys, so goods received are shipped", () =>
    Effect.gen(function* () {
      const shipments = (options: AggregateLaws.Options<Command, State>) => {
        let shipped = 0
        const counting = stockWith({
          evolve: (state, event) => {
            if (event._tag === "Shipped") shipped++
            return evolve(state, event)
          }
        })
        return Effect.map(AggregateLaws.invariants(counting, { ...options, seed: 1 }), () => shipped)
      }
      const shared = yield* shipments({})
      const unshared = yield* shipments({ commands: Arbitrary.schema(Command) })
      // Drawn straight from the schema, a Ship almost never names a sku received before it.
      assert.isAbove(shared, 20)
      assert.isAbove(shared, 10 * unshared)
    })
  )

  it.effect("invariants: fails with the shrunk command sequence when a state breaks one", () =>
    Effect.gen(function* () {
      const error = yield* failure(AggregateLaws.invariants(overselling, { ...small, invariants }))
      assert.strictEqual(error.law, "invariants hold in every reachable state")
      assert.include(error.message, `invariant "stock is never negative" is false after`)
      assert.include(error.message, `"_tag": "Ship"`)
    })
  )

  it.effect("a failure replays from its token", () =>
    Effect.gen(function* () {
      const first = yield* failure(AggregateLaws.invariants(overselling, { ...small, invariants }))
      const replay = /Replay: (.*)/.exec(first.report)![1]!
      const again = yield* failure(AggregateLaws.invariants(overselling, { invariants, replay }))
      assert.strictEqual(again.report.split("\n").slice(1).join("\n"), first.report.split("\n").slice(1).join("\n"))
    })
  )

  it.effect("a decider that throws breaks a law, with its shrunk input", () =>
    Effect.gen(function* () {
      const throwing = stockWith({
        decide: (command, state) => {
          if (command._tag === "Close") throw new Error("close is not implemented")
          return decide(command, state)
        }
      })
      const error = yield* failure(AggregateLaws.invariants(throwing, small))
      assert.include(error.message, "threw")
      assert.include(error.message, "close is not implemented")
    })
  )

  it.effect("stateIsNeverMutated: fails when evolve mutates the state it is given", () =>
    Effect.gen(function* () {
      // Its own initial state: the mutation would otherwise spoil the one the other tests share.
      const mutating = stockWith({
        initialState: { items: new Map(), closed: false },
        evolve: (state, event) => {
          if (event._tag !== "Received") return evolve(state, event)
          ;(state.items as Map<string, number>).set(event.sku, (state.items.get(event.sku) ?? 0) + event.quantity)
          return { ...state }
        }
      })
      const error = yield* failure(AggregateLaws.stateIsNeverMutated(mutating, small))
      assert.include(error.message, "must not mutate")
    })
  )

  it.effect("snapshotPlusTail: fails when a state does not survive the state schema", () =>
    Effect.gen(function* () {
      // A schema without `closed`: a snapshot forgets that the stock was closed.
      const lossy = Schema.Struct({ items: State.fields.items })
      const forgetful = stockWith({}, lossy as unknown as typeof State)
      const error = yield* failure(AggregateLaws.snapshotPlusTail(forgetful, small))
      assert.include(error.message, "comes back from the state schema")
    })
  )

  it.effect("eventsRoundTrip: fails when a decided event does not satisfy the event schema", () =>
    Effect.gen(function* () {
      const error = yield* failure(AggregateLaws.eventsRoundTrip(emptyShipments, small))
      assert.include(error.message, "cannot be encoded")
    })
  )

  it.effect("idempotentCommands: fails when a command said to be idempotent decides again", () =>
    Effect.gen(function* () {
      const error = yield* failure(
        AggregateLaws.idempotentCommands(Stock, { ...small, idempotent: (command) => command._tag === "Receive" })
      )
      assert.include(error.message, "yet deciding it again decided")
    })
  )

  it.effect("resentCommandsWriteNothing: fails when the handler cannot store what the decider decides", () =>
    Effect.gen(function* () {
      const error = yield* failure(AggregateLaws.resentCommandsWriteNothing(emptyShipments, small))
      assert.include(error.message, "EventEncodeError")
    })
  )

  it.effect("checkAll fails with the first law that does not hold", () =>
    Effect.gen(function* () {
      const error = yield* failure(AggregateLaws.checkAll(emptyShipments, small))
      assert.strictEqual(error.law, "every event round-trips through the event codec")
    })
  )
})
