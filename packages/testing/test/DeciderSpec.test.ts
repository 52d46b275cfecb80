import { AssertionError } from "node:assert"
import { Decider } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Data, Result } from "effect"
import * as DeciderSpec from "../src/DeciderSpec.ts"

// A counter that counts up to a limit and can be stopped for good.
type Command = { readonly _tag: "Add"; readonly by: number } | { readonly _tag: "Stop" }
type Event = { readonly _tag: "Added"; readonly by: number } | { readonly _tag: "Stopped" }
interface State {
  readonly count: number
  readonly stopped: boolean
}
class OverLimit extends Data.TaggedError("OverLimit")<{ readonly count: number }> {}

const counter = Decider.make({
  initialState: { count: 0, stopped: false } as State,
  decide: (command: Command, state: State): Result.Result<ReadonlyArray<Event>, OverLimit> => {
    switch (command._tag) {
      case "Add":
        if (state.count + command.by > 10) return Result.fail(new OverLimit({ count: state.count }))
        return Result.succeed(command.by === 0 ? [] : [{ _tag: "Added", by: command.by }])
      case "Stop":
        return Result.succeed([{ _tag: "Stopped" }])
    }
  },
  evolve: (state: State, event: Event): State =>
    event._tag === "Added" ? { ...state, count: state.count + event.by } : { ...state, stopped: true },
  isTerminal: (state: State) => state.stopped
})

const spec = DeciderSpec.for(counter)

// The AssertionError `f` throws, so a test can look at its message and diff.
const thrown = (f: () => void): AssertionError => {
  try {
    f()
  } catch (error) {
    if (error instanceof AssertionError) return error
    throw error
  }
  return assert.fail("expected an AssertionError")
}

describe("DeciderSpec", () => {
  it("then: the events decided from the initial state, or from the given history", () => {
    spec.when({ _tag: "Add", by: 2 }).then([{ _tag: "Added", by: 2 }])
    spec
      .given([
        { _tag: "Added", by: 4 },
        { _tag: "Added", by: 5 }
      ])
      .when({ _tag: "Add", by: 1 })
      .then([{ _tag: "Added", by: 1 }])
  })

  it("then([]): the command changes nothing", () => {
    spec.when({ _tag: "Add", by: 0 }).then([])
  })

  it("then fails with a diff when other events are decided", () => {
    const error = thrown(() => spec.when({ _tag: "Add", by: 2 }).then([{ _tag: "Added", by: 3 }]))
    assert.deepStrictEqual([error.actual, error.expected], [[{ _tag: "Added", by: 2 }], [{ _tag: "Added", by: 3 }]])
    assert.include(error.message, "by: 3")
  })

  it("then fails, naming the refusal, when the command is refused", () => {
    const error = thrown(() =>
      spec
        .given([{ _tag: "Added", by: 10 }])
        .when({ _tag: "Add", by: 1 })
        .then([])
    )
    assert.include(error.message, "was refused with")
    assert.include(error.message, "OverLimit")
  })

  it("thenFails: with an equal error, a predicate, or any error", () => {
    const full = spec.given([{ _tag: "Added", by: 10 }]).when({ _tag: "Add", by: 1 })
    full.thenFails(new OverLimit({ count: 10 }))
    full.thenFails((error) => error.count === 10)
    full.thenFails()
  })

  it("thenFails fails when the command is accepted, the error differs or the predicate rejects it", () => {
    assert.throws(() => spec.when({ _tag: "Add", by: 1 }).thenFails(), AssertionError, /to be refused/)
    const full = spec.given([{ _tag: "Added", by: 10 }]).when({ _tag: "Add", by: 1 })
    assert.throws(() => full.thenFails(new OverLimit({ count: 9 })), AssertionError)
    assert.throws(() => full.thenFails((error) => error.count === 9), AssertionError, /predicate rejects/)
  })

  it("thenState: the given state with the decided events folded in", () => {
    spec
      .given([{ _tag: "Added", by: 3 }])
      .when({ _tag: "Add", by: 4 })
      .thenState({ count: 7, stopped: false })
    assert.throws(() => spec.when({ _tag: "Add", by: 4 }).thenState({ count: 5, stopped: false }), AssertionError)
    assert.throws(
      () =>
        spec
          .given([{ _tag: "Added", by: 10 }])
          .when({ _tag: "Add", by: 1 })
          .thenState({ count: 10, stopped: false }),
      AssertionError,
      /was refused/
    )
  })

  it("a terminal state is a closed stream, as the command handler sees it: thenClosed holds, nothing else does", () => {
    const stopped = spec.given([{ _tag: "Stopped" }]).when({ _tag: "Add", by: 1 })
    stopped.thenClosed()
    assert.throws(() => stopped.then([{ _tag: "Added", by: 1 }]), AssertionError, /stream is closed/)
    assert.throws(() => stopped.thenFails(), AssertionError, /stream is closed/)
    assert.throws(() => spec.when({ _tag: "Add", by: 1 }).thenClosed(), AssertionError, /not terminal/)
  })
})
