/**
 * Random legal games for the property laws. Commands drawn from the Game's command schema would almost never name a
 * legal move, so the laws would only ever see refusals. `RandomPlayer` is the Game aggregate driven by choices: each
 * command is a number that becomes a Game command in the position it meets — mostly one of the legal moves of the side
 * to move, sometimes a draw offer, an acceptance, a resignation, a move out of turn, an illegal move or a second
 * start. The law engine generates and shrinks the numbers, and its laws run on the Game's own decide and evolve.
 */
import { Aggregate, Decider } from "@chronicle/core"
import { Chess } from "chess.js"
import { Schema } from "effect"
import { type Color, type Command, Game, State, toMove } from "../src/Game.ts"

const side = (choice: number): Color => (choice % 2 === 0 ? "white" : "black")

/** The Game command that `choice` stands for in `state`. */
export const commandFor = (choice: number, state: State): Command => {
  if (state.players === null) return { _tag: "StartGame", white: "Anna", black: "Boris" }
  const permille = choice % 1_000
  const pick = Math.floor(choice / 1_000)
  if (permille < 900) {
    const moves = state.ended === null ? new Chess(state.fen).moves() : ["e4"]
    return { _tag: "PlayMove", by: toMove(state.fen), move: moves[pick % moves.length] ?? "e4" }
  }
  if (permille < 940) return { _tag: "OfferDraw", by: side(pick) }
  if (permille < 970) return { _tag: "AcceptDraw", by: side(pick) }
  if (permille < 975) return { _tag: "Resign", by: side(pick) }
  if (permille < 985) return { _tag: "PlayMove", by: toMove(state.fen) === "white" ? "black" : "white", move: "e4" }
  if (permille < 995) return { _tag: "PlayMove", by: toMove(state.fen), move: pick % 2 === 0 ? "Ke9" : "a1a8" }
  return { _tag: "StartGame", white: "Anna", black: "Boris" }
}

/** The Game aggregate, taking choices instead of commands. */
export const RandomPlayer = Aggregate.make({
  category: Game.category,
  commands: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 999_999 })),
  events: Game.events.schema,
  state: State,
  decider: Decider.make({
    initialState: Game.decider.initialState,
    decide: (choice: number, state: State) => Game.decider.decide(commandFor(choice, state), state),
    evolve: Game.decider.evolve,
    isTerminal: (state: State) => state.ended !== null
  })
})
