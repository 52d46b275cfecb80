/**
 * Given/when/then specifications of deciders, after Emmett's `DeciderSpecification`: given the events a stream already
 * holds, when a command arrives, then the decider decides these events, refuses with this error, or reaches this
 * state. Specs are pure (no Effect runtime, no store) and run from plain vitest; a mismatch throws Node's
 * `AssertionError`, whose actual/expected diff vitest prints.
 *
 * A history that ends in a terminal state (the decider's `isTerminal`) is closed, as the command handler sees it: the
 * command handler refuses every command there with `StreamClosed` before `decide` runs. Assert that with `thenClosed`;
 * `then`, `thenFails` and `thenState` fail on a closed stream.
 *
 * **Gotchas**: the object `when` returns has a `then` method, so it is a thenable: finish it with `then`,
 * `thenFails`, `thenState` or `thenClosed`, never `await` or return it from an async test.
 */
import { AssertionError, deepStrictEqual } from "node:assert/strict"
import { Decider } from "@chronicle/core"
import { Formatter, Result } from "effect"

/** The assertions that end a spec, about the command given to `when`. */
export interface Then<Event, State, Error> {
  /** Asserts that the command is accepted and decides exactly `events`, in order (`[]`: it changes nothing). */
  readonly then: (events: ReadonlyArray<Event>) => void
  /**
   * Asserts that the command is refused: with an error equal to `expected`, with one `expected` accepts when it is a
   * predicate, or with any error when it is omitted.
   */
  readonly thenFails: (expected?: Error | ((error: Error) => boolean)) => void
  /** Asserts that the command is accepted and that folding its events into the given state gives `state`. */
  readonly thenState: (state: State) => void
  /** Asserts that the stream is closed: the history ends in a terminal state, so the handler refuses any command. */
  readonly thenClosed: () => void
}

/** A spec whose history is set: the command comes next. */
export interface Given<Command, Event, State, Error> {
  /** Decides `command` in the state the history leads to. */
  readonly when: (command: Command) => Then<Event, State, Error>
}

/** The spec of one decider: set a history with `given`, or start from the initial state with `when`. */
export interface Spec<Command, Event, State, Error> extends Given<Command, Event, State, Error> {
  /** Starts from the state `events` lead to, folded from the decider's initial state. */
  readonly given: (events: ReadonlyArray<Event>) => Given<Command, Event, State, Error>
}

const show = (value: unknown): string => Formatter.format(value)

const whenIn =
  <Command, Event, State, Error>(decider: Decider.Decider<Command, Event, State, Error>, state: State) =>
  (command: Command): Then<Event, State, Error> => {
    const closed = Decider.isTerminal(decider, state)
    const decided = closed ? Result.succeed([]) : decider.decide(command, state)
    const open = () => {
      if (!closed) return
      throw new AssertionError({
        message: `expected ${show(command)} to be decided, but the stream is closed (the decider's isTerminal)`,
        actual: state,
        expected: "an open stream"
      })
    }
    const accepted = (expected: unknown): ReadonlyArray<Event> => {
      open()
      if (Result.isSuccess(decided)) return decided.success
      throw new AssertionError({
        message: `expected ${show(command)} to be accepted, but it was refused with ${show(decided.failure)}`,
        actual: decided.failure,
        expected
      })
    }
    return {
      // biome-ignore lint/suspicious/noThenProperty: `then(events)` is the given/when/then vocabulary of specs
      then: (events) => deepStrictEqual(accepted(events), events),
      thenFails: (expected) => {
        open()
        if (Result.isSuccess(decided)) {
          throw new AssertionError({
            message: `expected ${show(command)} to be refused, but it decided ${show(decided.success)}`,
            actual: decided.success,
            expected
          })
        }
        if (typeof expected === "function") {
          const predicate = expected as (error: Error) => boolean
          if (!predicate(decided.failure)) {
            throw new AssertionError({
              message: `${show(command)} was refused with ${show(decided.failure)}, which the predicate rejects`,
              actual: decided.failure,
              expected
            })
          }
        } else if (expected !== undefined) {
          deepStrictEqual(decided.failure, expected)
        }
      },
      thenClosed: () => {
        if (closed) return
        throw new AssertionError({
          message: `expected the stream to be closed before ${show(command)}, but its state is not terminal`,
          actual: state,
          expected: "a terminal state"
        })
      },
      thenState: (expected) => deepStrictEqual(Decider.fold(decider, accepted(expected), state), expected)
    }
  }

/** Starts the spec of `decider`: `DeciderSpec.for(decider).given(events).when(command).then(expectedEvents)`. */
const specOf = <Command, Event, State, Error>(
  decider: Decider.Decider<Command, Event, State, Error>
): Spec<Command, Event, State, Error> => ({
  given: (events) => ({ when: whenIn(decider, Decider.fold(decider, events)) }),
  when: whenIn(decider, decider.initialState)
})

export { specOf as for }
