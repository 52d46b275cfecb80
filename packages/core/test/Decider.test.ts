import { assert, describe, it } from "@effect/vitest"
import { Data, Result } from "effect"
import * as Decider from "../src/Decider.ts"

// A tally that refuses to go below zero and can be closed.
type Command = { readonly _tag: "Add"; readonly n: number } | { readonly _tag: "Close" }
type Event = { readonly _tag: "Added"; readonly n: number } | { readonly _tag: "Closed" }
interface State {
  readonly total: number
  readonly closed: boolean
}
class BelowZero extends Data.TaggedError("BelowZero")<{ readonly total: number }> {}

const tally = Decider.make({
  initialState: { total: 0, closed: false } as State,
  decide: (command: Command, state: State): Result.Result<ReadonlyArray<Event>, BelowZero> => {
    if (command._tag === "Close") return Result.succeed([{ _tag: "Closed" }])
    if (state.total + command.n < 0) return Result.fail(new BelowZero({ total: state.total }))
    return Result.succeed(command.n === 0 ? [] : [{ _tag: "Added", n: command.n }])
  },
  evolve: (state: State, event: Event): State =>
    event._tag === "Added" ? { ...state, total: state.total + event.n } : { ...state, closed: true },
  isTerminal: (state: State) => state.closed
})

const add = (n: number): Command => ({ _tag: "Add", n })

describe("Decider", () => {
  it("fold applies events in order, from the initial state or from a given one", () => {
    const events: Array<Event> = [
      { _tag: "Added", n: 2 },
      { _tag: "Added", n: 3 }
    ]
    assert.deepStrictEqual(Decider.fold(tally, events), { total: 5, closed: false })
    assert.deepStrictEqual(Decider.fold(tally, events, { total: 10, closed: false }), { total: 15, closed: false })
    assert.strictEqual(Decider.fold(tally, []), tally.initialState)
  })

  it("isTerminal asks the decider, and is false for a decider without the check", () => {
    assert.isTrue(Decider.isTerminal(tally, { total: 0, closed: true }))
    assert.isFalse(Decider.isTerminal(tally, tally.initialState))
    const { isTerminal: _, ...open } = tally
    assert.isFalse(Decider.isTerminal(Decider.make(open), { total: 0, closed: true }))
  })

  it("run folds each accepted command's events, records refusals and goes on", () => {
    const run = Decider.run(tally, [add(2), add(-5), add(0), add(3)])
    assert.deepStrictEqual(run.events, [
      { _tag: "Added", n: 2 },
      { _tag: "Added", n: 3 }
    ])
    assert.deepStrictEqual(run.state, { total: 5, closed: false })
    assert.deepStrictEqual(run.refused, [{ command: add(-5), error: new BelowZero({ total: 2 }) }])
  })

  it("run skips the commands that arrive in a terminal state, as the command handler refuses them", () => {
    const run = Decider.run(tally, [add(1), { _tag: "Close" }, add(1), { _tag: "Close" }])
    assert.deepStrictEqual(run.events, [{ _tag: "Added", n: 1 }, { _tag: "Closed" }])
    assert.deepStrictEqual(run.state, { total: 1, closed: true })
    assert.deepStrictEqual(run.refused, [])
  })

  it("run starts from a given state", () => {
    assert.deepStrictEqual(Decider.run(tally, [add(1)], { total: 4, closed: false }).state, { total: 5, closed: false })
  })
})
