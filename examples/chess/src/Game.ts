/**
 * A chess game whose events are its moves: the board at any move is the fold of the moves before it. The rules of
 * chess (which moves are legal, what ends a game) come from chess.js, called from `decide` and `evolve` as pure
 * functions of a position; this module adds the rules of play around them: who may move, draw offers and their
 * acceptance, resignation, and that nothing happens after the end. chess.js was chosen over chessops, the other
 * well-kept rules library on npm: it is BSD-2-Clause with no dependencies (chessops is GPL-3.0, which would bind
 * whoever copies this example), and reads and writes SAN and FEN.
 *
 * **Gotchas**: the game ends by itself on checkmate, stalemate, insufficient material, the third repetition of a
 * position and the fifty-move rule (as chess.js's `isGameOver` does); over the board the last two are claimed.
 */
import { Aggregate, Decider } from "@chronicle/core"
import { Chess, DEFAULT_POSITION, SQUARES } from "chess.js"
import { Result, Schema } from "effect"

/** A side of the board. */
export const Color = Schema.Literals(["white", "black"])
/** A side of the board. */
export type Color = typeof Color.Type
/** A square, from `a1` to `h8`. */
export const Square = Schema.Literals(SQUARES)
/** The piece a pawn becomes on the last rank: queen, rook, bishop or knight. */
export const Promotion = Schema.Literals(["q", "r", "b", "n"])
/** How a game ended, as a score: white won, black won, or a draw. */
export const Score = Schema.Literals(["1-0", "0-1", "1/2-1/2"])
/** Why a game ended. */
export const Reason = Schema.Literals([
  "checkmate",
  "stalemate",
  "insufficient material",
  "threefold repetition",
  "fifty-move rule",
  "resignation",
  "draw agreed"
])

// ── Events ── stored forever: never rename a tag or field; add a new version instead.
/** The game began between two players; white moves first. */
export const GameStarted = Schema.TaggedStruct("GameStarted", {
  white: Schema.NonEmptyString,
  black: Schema.NonEmptyString
})
/** A side moved a piece from one square to another (`promotion` when a pawn was promoted), written `san`. */
export const MovePlayed = Schema.TaggedStruct("MovePlayed", {
  by: Color,
  from: Square,
  to: Square,
  promotion: Schema.optionalKey(Promotion),
  san: Schema.NonEmptyString
})
/** A side offered a draw; the offer stands until the other side accepts it or makes a move. */
export const DrawOffered = Schema.TaggedStruct("DrawOffered", { by: Color })
/** A side accepted the draw the other side offered. */
export const DrawAccepted = Schema.TaggedStruct("DrawAccepted", { by: Color })
/** A side resigned. */
export const Resigned = Schema.TaggedStruct("Resigned", { by: Color })
/** The game ended with a score, for a reason; it accepts nothing afterwards. */
export const GameEnded = Schema.TaggedStruct("GameEnded", { score: Score, reason: Reason })
/** Any event of a game. */
export const Event = Schema.Union([GameStarted, MovePlayed, DrawOffered, DrawAccepted, Resigned, GameEnded])
/** Any event of a game. */
export type Event = typeof Event.Type

// ── State ──
/**
 * What a game knows: its players (null before it starts), the position as FEN, the plies played, how often each
 * position occurred (for repetition), whose draw offer stands, and how it ended (null while it goes on).
 */
export const State = Schema.Struct({
  players: Schema.NullOr(Schema.Struct({ white: Schema.String, black: Schema.String })),
  fen: Schema.String,
  plies: Schema.Int,
  positions: Schema.ReadonlyMap(Schema.String, Schema.Int),
  drawOfferedBy: Schema.NullOr(Color),
  ended: Schema.NullOr(Schema.Struct({ score: Score, reason: Reason }))
})
/** What a game knows. */
export type State = typeof State.Type
/** The state of a game with no events: the starting position, no players yet. */
export const initialState: State = {
  players: null,
  fen: DEFAULT_POSITION,
  plies: 0,
  positions: new Map(),
  drawOfferedBy: null,
  ended: null
}

/** The side to move in `fen`. */
export const toMove = (fen: string): Color => (fen.split(" ")[1] === "b" ? "black" : "white")
const opponent = (color: Color): Color => (color === "white" ? "black" : "white")
// A position for repetition: the board, the side to move, castling rights and the en-passant square (chess.js writes
// the last one only when a capture there is possible, as the repetition rule wants); not the move counters.
const positionKey = (fen: string) => fen.split(" ").slice(0, 4).join(" ")
const seen = (positions: ReadonlyMap<string, number>, fen: string) => {
  const key = positionKey(fen)
  return new Map(positions).set(key, (positions.get(key) ?? 0) + 1)
}

// ── Fold ── records facts; makes no decisions and never fails.
/**
 * Applies one event to the state. A recorded move the position does not allow (a log written by other code) leaves
 * the board as it was: a fold never fails.
 */
export const evolve = (state: State, event: Event): State => {
  switch (event._tag) {
    case "GameStarted":
      return {
        ...state,
        players: { white: event.white, black: event.black },
        positions: seen(state.positions, state.fen)
      }
    case "MovePlayed": {
      const after = positionAfter(state.fen, event)
      if (after === undefined) return state
      return {
        ...state,
        fen: after,
        plies: state.plies + 1,
        positions: seen(state.positions, after),
        // The offer lapses when the side it was made to moves instead of accepting it.
        drawOfferedBy: state.drawOfferedBy === opponent(event.by) ? null : state.drawOfferedBy
      }
    }
    case "DrawOffered":
      return { ...state, drawOfferedBy: event.by }
    case "DrawAccepted":
      return { ...state, drawOfferedBy: null }
    case "Resigned":
      return state
    case "GameEnded":
      return { ...state, drawOfferedBy: null, ended: { score: event.score, reason: event.reason } }
  }
}

// ── Decide ── pure: the same command and state always give the same answer.
/** Any command a game accepts. A move is written in SAN (`Nf3`, `O-O`, `e8=Q`) or as squares (`g1f3`, `e7e8q`). */
export const Command = Schema.TaggedUnion({
  StartGame: { white: Schema.NonEmptyString, black: Schema.NonEmptyString },
  PlayMove: { by: Color, move: Schema.NonEmptyString },
  OfferDraw: { by: Color },
  AcceptDraw: { by: Color },
  Resign: { by: Color }
})
/** Any command a game accepts. */
export type Command = typeof Command.Type

/** The game has not started: only `StartGame` is accepted. */
export class GameNotStarted extends Schema.TaggedError<GameNotStarted>()("GameNotStarted", {}) {}
/** The game has already started. */
export class GameAlreadyStarted extends Schema.TaggedError<GameAlreadyStarted>()("GameAlreadyStarted", {}) {}
/** A side tried to move while it was the other side's turn. */
export class NotYourTurn extends Schema.TaggedError<NotYourTurn>()("NotYourTurn", { by: Color, toMove: Color }) {
  override get message() {
    return `${this.by} cannot move: it is ${this.toMove}'s turn`
  }
}
/** The move is not legal (or not readable) in the position. */
export class IllegalMove extends Schema.TaggedError<IllegalMove>()("IllegalMove", {
  move: Schema.String,
  fen: Schema.String
}) {
  override get message() {
    return `${this.move} is not a legal move in ${this.fen}`
  }
}
/** A side tried to accept a draw the other side has not offered. */
export class NoDrawOffered extends Schema.TaggedError<NoDrawOffered>()("NoDrawOffered", { by: Color }) {}
/** Why a game refuses a command. */
export type Refusal = GameNotStarted | GameAlreadyStarted | NotYourTurn | IllegalMove | NoDrawOffered

const coordinates = /^([a-h][1-8])([a-h][1-8])([qrbn])?$/

/** Plays `move` (SAN, squares, or a recorded move) in `fen` with chess.js: the move as recorded and the position after. */
const play = (
  fen: string,
  move: string | { readonly from: string; readonly to: string; readonly promotion?: string }
) =>
  Result.try({
    try: () => {
      const board = new Chess(fen)
      const squares = typeof move === "string" ? coordinates.exec(move) : null
      const played =
        squares === null
          ? board.move(move)
          : board.move({
              from: squares[1]!,
              to: squares[2]!,
              ...(squares[3] === undefined ? {} : { promotion: squares[3] })
            })
      return { played, board, after: board.fen() }
    },
    catch: () => new IllegalMove({ move: typeof move === "string" ? move : `${move.from}${move.to}`, fen })
  })

// Loading a stream folds every move through chess.js (a fraction of a millisecond each), again before each command
// when no snapshot is kept: remembering recent (position, move) pairs keeps folding a long game cheap.
const recentPositions = new Map<string, string | undefined>()

/** The position after a recorded move, or undefined if the position does not allow it. */
const positionAfter = (fen: string, move: typeof MovePlayed.Type): string | undefined => {
  const key = `${fen}|${move.from}${move.to}${move.promotion ?? ""}`
  if (recentPositions.has(key)) return recentPositions.get(key)
  const played = play(fen, move)
  const after = Result.isSuccess(played) ? played.success.after : undefined
  if (recentPositions.size >= 10_000) recentPositions.clear()
  recentPositions.set(key, after)
  return after
}

/** How the position after a move ends the game, if it does. */
const endOf = (board: Chess, mover: Color, positions: ReadonlyMap<string, number>) => {
  if (board.isCheckmate()) return GameEnded.make({ score: mover === "white" ? "1-0" : "0-1", reason: "checkmate" })
  const draw = (reason: typeof Reason.Type) => GameEnded.make({ score: "1/2-1/2", reason })
  if (board.isStalemate()) return draw("stalemate")
  if (board.isInsufficientMaterial()) return draw("insufficient material")
  if ((positions.get(positionKey(board.fen())) ?? 0) >= 2) return draw("threefold repetition")
  if (board.isDrawByFiftyMoves()) return draw("fifty-move rule")
  return undefined
}

/**
 * Decides the events a command produces, or why it is refused. Offering a draw again while one's own offer stands
 * writes nothing; offering one while the other side's offer stands accepts it. Either side may resign at any time.
 * An ended game is terminal: the command handler refuses it with `StreamClosed` before `decide` runs.
 */
export const decide = (command: Command, state: State): Result.Result<ReadonlyArray<Event>, Refusal> => {
  if (command._tag === "StartGame") {
    return state.players === null
      ? Result.succeed([GameStarted.make({ white: command.white, black: command.black })])
      : Result.fail(new GameAlreadyStarted())
  }
  if (state.players === null) return Result.fail(new GameNotStarted())
  const agreed = (by: Color) => [DrawAccepted.make({ by }), GameEnded.make({ score: "1/2-1/2", reason: "draw agreed" })]
  switch (command._tag) {
    case "PlayMove": {
      const side = toMove(state.fen)
      if (command.by !== side) return Result.fail(new NotYourTurn({ by: command.by, toMove: side }))
      return Result.map(play(state.fen, command.move), ({ played, board }) => {
        const move = MovePlayed.make({
          by: side,
          from: played.from,
          to: played.to,
          ...(played.promotion === undefined ? {} : { promotion: played.promotion as typeof Promotion.Type }),
          san: played.san
        })
        const end = endOf(board, side, state.positions)
        return end === undefined ? [move] : [move, end]
      })
    }
    case "OfferDraw":
      if (state.drawOfferedBy === command.by) return Result.succeed([])
      if (state.drawOfferedBy === opponent(command.by)) return Result.succeed(agreed(command.by))
      return Result.succeed([DrawOffered.make({ by: command.by })])
    case "AcceptDraw":
      return state.drawOfferedBy === opponent(command.by)
        ? Result.succeed(agreed(command.by))
        : Result.fail(new NoDrawOffered({ by: command.by }))
    case "Resign":
      return Result.succeed([
        Resigned.make({ by: command.by }),
        GameEnded.make({ score: command.by === "white" ? "0-1" : "1-0", reason: "resignation" })
      ])
  }
}

/** The game's domain logic; an ended game takes no more commands. */
export const decider = Decider.make({
  initialState,
  decide,
  evolve,
  isTerminal: (state: State) => state.ended !== null
})

/** The game aggregate: streams `game-<id>`. */
export const Game = Aggregate.make({ category: "game", commands: Command, events: Event, state: State, decider })
