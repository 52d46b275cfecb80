/**
 * The board of a game's state, for people and for tools: as a structure (the pieces by square, rank 8 first) and as
 * text. These are the state renderers a stream browser can register for `game-*` streams, and what the demo prints.
 */
import { Chess } from "chess.js"
import type { Color, State } from "./Game.ts"
import { toMove } from "./Game.ts"

/** The kinds of chess pieces. */
export type Kind = "king" | "queen" | "rook" | "bishop" | "knight" | "pawn"

/** A piece on a square. */
export interface Piece {
  readonly square: string
  readonly color: Color
  readonly kind: Kind
}

/** A game's state laid out for display. */
export interface View {
  /** The position, as FEN. */
  readonly fen: string
  /** Eight ranks from 8 down to 1, each eight squares from a to h: a FEN letter (uppercase for white), or null. */
  readonly ranks: ReadonlyArray<ReadonlyArray<string | null>>
  /** Every piece on the board, rank 8 first. */
  readonly pieces: ReadonlyArray<Piece>
  /** One line: who is to move, or how the game ended. */
  readonly status: string
}

const kinds: Readonly<Record<string, Kind>> = { k: "king", q: "queen", r: "rook", b: "bishop", n: "knight", p: "pawn" }

/** The state as a structure. */
export const view = (state: State): View => {
  const rows = new Chess(state.fen).board()
  const ranks = rows.map((row) =>
    row.map((cell) => (cell === null ? null : cell.color === "w" ? cell.type.toUpperCase() : cell.type))
  )
  const pieces = rows.flatMap((row) =>
    row.flatMap((cell) =>
      cell === null
        ? []
        : [
            {
              square: cell.square,
              color: cell.color === "w" ? ("white" as const) : ("black" as const),
              kind: kinds[cell.type]!
            }
          ]
    )
  )
  const status =
    state.ended !== null
      ? `${state.ended.score} by ${state.ended.reason}`
      : state.players === null
        ? "not started"
        : `${toMove(state.fen)} to move${state.drawOfferedBy === null ? "" : ` (${state.drawOfferedBy} offers a draw)`}`
  return { fen: state.fen, ranks, pieces, status }
}

/** The state as text: the board from white's side (uppercase white, `·` an empty square), then the status line. */
export const text = (state: State): string => {
  const { ranks, status } = view(state)
  const lines = ranks.map((rank, index) => `${8 - index} ${rank.map((cell) => cell ?? "·").join(" ")}`)
  return [...lines, "  a b c d e f g h", status].join("\n")
}
