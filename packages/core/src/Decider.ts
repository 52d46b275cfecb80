/**
 * Deciders: an aggregate's behaviour as two pure functions. `decide` turns a command and the current state into
 * events (or a domain error), `evolve` folds one event into the state. No runtime, no I/O: a decider runs and is
 * tested as plain functions.
 */
import { Result } from "effect"

/** An aggregate's domain logic: its initial state, how it decides, and how events change its state. */
export interface Decider<Command, Event, State, Error = never> {
  /** The state of a stream with no events. */
  readonly initialState: State
  /** Pure: the events `command` produces in `state`, or why it is refused. An empty array changes nothing. */
  readonly decide: (command: Command, state: State) => Result.Result<ReadonlyArray<Event>, Error>
  /** Pure and total: the state after `event`. It records facts and never refuses. */
  readonly evolve: (state: State, event: Event) => State
  /** Whether a state is final: a stream in a terminal state accepts no further commands. */
  readonly isTerminal?: (state: State) => boolean
}

/** Builds a decider; it only fixes the type parameters, so TypeScript infers them from the functions. */
export const make = <Command, Event, State, Error = never>(
  decider: Decider<Command, Event, State, Error>
): Decider<Command, Event, State, Error> => decider

/** Folds `events` into `state` (the initial state unless given). */
export const fold = <Event, State>(
  decider: Pick<Decider<never, Event, State, unknown>, "initialState" | "evolve">,
  events: Iterable<Event>,
  state: State = decider.initialState
): State => {
  let current = state
  for (const event of events) current = decider.evolve(current, event)
  return current
}

/** Whether `state` is terminal for `decider` (never, when the decider declares no check). */
export const isTerminal = <State>(decider: Pick<Decider<never, never, State, unknown>, "isTerminal">, state: State) =>
  decider.isTerminal?.(state) ?? false

/** The outcome of running commands one after another: the events decided, the state reached, the refusals. */
export interface Run<Command, Event, State, Error> {
  readonly events: ReadonlyArray<Event>
  readonly state: State
  readonly refused: ReadonlyArray<{ readonly command: Command; readonly error: Error }>
}

/**
 * Runs commands in order from `state`: each accepted command's events are folded in, each refused one is recorded and
 * skipped. Commands after a terminal state are refused by nobody and skipped, as the command handler would.
 */
export const run = <Command, Event, State, Error>(
  decider: Decider<Command, Event, State, Error>,
  commands: Iterable<Command>,
  state: State = decider.initialState
): Run<Command, Event, State, Error> => {
  const events: Array<Event> = []
  const refused: Array<{ command: Command; error: Error }> = []
  let current = state
  for (const command of commands) {
    if (isTerminal(decider, current)) continue
    const decided = decider.decide(command, current)
    if (Result.isFailure(decided)) {
      refused.push({ command, error: decided.failure })
      continue
    }
    events.push(...decided.success)
    current = fold(decider, decided.success, current)
  }
  return { events, state: current, refused }
}
