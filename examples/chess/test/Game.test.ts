import { CommandHandler, Decider, EventStore } from "@chronicle/core"
import { AggregateLaws, DeciderSpec } from "@chronicle/testing"
import { assert, describe, it } from "@effect/vitest"
import { validateFen } from "chess.js"
import { Effect, Result, Stream } from "effect"
import {
  type Color,
  type Command,
  DrawAccepted,
  DrawOffered,
  decider,
  type Event,
  Game,
  GameAlreadyStarted,
  GameEnded,
  GameNotStarted,
  GameStarted,
  IllegalMove,
  MovePlayed,
  NoDrawOffered,
  NotYourTurn,
  Resigned,
  type State,
  toMove
} from "../src/Game.ts"
import * as OperaGame from "../src/OperaGame.ts"
import { commandFor, RandomPlayer } from "./RandomPlayer.ts"

const spec = DeciderSpec.for(decider)
const start: Command = { _tag: "StartGame", white: "Anna", black: "Boris" }
const started = GameStarted.make({ white: "Anna", black: "Boris" })
const move = (by: Color, san: string): Command => ({ _tag: "PlayMove", by, move: san })
const offer = (by: Color): Command => ({ _tag: "OfferDraw", by })
const accept = (by: Color): Command => ({ _tag: "AcceptDraw", by })
const resign = (by: Color): Command => ({ _tag: "Resign", by })

/** The events of a game started by Anna and Boris in which the sides played `sans` in turn. */
const played = (...sans: ReadonlyArray<string>): ReadonlyArray<Event> => {
  const run = Decider.run(decider, [start, ...sans.map((san, ply) => move(ply % 2 === 0 ? "white" : "black", san))])
  assert.deepStrictEqual(run.refused, [])
  return run.events
}
/** A started game in the position `fen` (for endings no short game reaches). */
const at = (fen: string): State => ({ ...Decider.fold(decider, [started]), fen })

describe("Game rules", () => {
  it("a game starts once, and accepts nothing else before it starts", () => {
    spec.when(start).then([started])
    spec.given([started]).when(start).thenFails(new GameAlreadyStarted())
    for (const command of [move("white", "e4"), offer("white"), accept("black"), resign("white")]) {
      spec.when(command).thenFails(new GameNotStarted())
    }
  })

  it("white moves first, then the sides take turns", () => {
    spec
      .given([started])
      .when(move("white", "e4"))
      .then([MovePlayed.make({ by: "white", from: "e2", to: "e4", san: "e4" })])
    spec
      .given([started])
      .when(move("black", "e5"))
      .thenFails(new NotYourTurn({ by: "black", toMove: "white" }))
    spec
      .given(played("e4"))
      .when(move("white", "d4"))
      .thenFails(new NotYourTurn({ by: "white", toMove: "black" }))
    spec
      .given(played("e4"))
      .when(move("black", "e7e5"))
      .then([MovePlayed.make({ by: "black", from: "e7", to: "e5", san: "e5" })])
  })

  it("an illegal or unreadable move is refused with the position it was tried in", () => {
    const fen = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"
    spec
      .given([started])
      .when(move("white", "e5"))
      .thenFails(new IllegalMove({ move: "e5", fen }))
    spec
      .given([started])
      .when(move("white", "e2e5"))
      .thenFails(new IllegalMove({ move: "e2e5", fen }))
    spec
      .given([started])
      .when(move("white", "castle!"))
      .thenFails(new IllegalMove({ move: "castle!", fen }))
  })

  it("a promotion records the piece the pawn became", () => {
    const state = at("8/4P3/8/8/8/8/k7/4K3 w - - 0 1")
    assert.deepStrictEqual(Result.getOrThrow(Game.decider.decide(move("white", "e7e8q"), state)), [
      MovePlayed.make({ by: "white", from: "e7", to: "e8", promotion: "q", san: "e8=Q" })
    ])
  })

  it("checkmate ends the game, won by the side that gave it", () => {
    spec
      .given(played("f3", "e5", "g4"))
      .when(move("black", "Qh4#"))
      .then([
        MovePlayed.make({ by: "black", from: "d8", to: "h4", san: "Qh4#" }),
        GameEnded.make({ score: "0-1", reason: "checkmate" })
      ])
  })

  it("stalemate, insufficient material, a third repetition and the fifty-move rule end the game drawn", () => {
    const loyd = ["e3", "a5", "Qh5", "Ra6", "Qxa5", "h5", "h4", "Rah6", "Qxc7", "f6", "Qxd7+", "Kf7", "Qxb7", "Qd3"]
    spec
      .given(played(...loyd, "Qxb8", "Qh7", "Qxc8", "Kg6"))
      .when(move("white", "Qe6"))
      .then([
        MovePlayed.make({ by: "white", from: "c8", to: "e6", san: "Qe6" }),
        GameEnded.make({ score: "1/2-1/2", reason: "stalemate" })
      ])
    const drawnBy = (state: State, san: string) => {
      const decided = Game.decider.decide(move("white", san), state)
      assert.isTrue(Result.isSuccess(decided))
      return Result.getOrThrow(decided).at(-1)
    }
    assert.deepStrictEqual(
      drawnBy(at("4k3/8/8/8/8/8/4p3/4K3 w - - 0 1"), "Kxe2"),
      GameEnded.make({ score: "1/2-1/2", reason: "insufficient material" })
    )
    assert.deepStrictEqual(
      drawnBy(at("4k3/8/8/8/8/8/8/R3K3 w - - 99 80"), "Ra2"),
      GameEnded.make({ score: "1/2-1/2", reason: "fifty-move rule" })
    )
    // The starting position, seen at the start and after four plies, comes back a third time after eight.
    const twice = played("Nf3", "Nf6", "Ng1", "Ng8", "Nf3", "Nf6", "Ng1")
    spec
      .given(twice)
      .when(move("black", "Ng8"))
      .then([
        MovePlayed.make({ by: "black", from: "f6", to: "g8", san: "Ng8" }),
        GameEnded.make({ score: "1/2-1/2", reason: "threefold repetition" })
      ])
    spec
      .given(played("Nf3", "Nf6", "Ng1"))
      .when(move("black", "Ng8"))
      .then([MovePlayed.make({ by: "black", from: "f6", to: "g8", san: "Ng8" })])
  })

  it("a draw offered by one side and accepted by the other ends the game drawn", () => {
    const drawAgreed = (by: Color) => [
      DrawAccepted.make({ by }),
      GameEnded.make({ score: "1/2-1/2", reason: "draw agreed" })
    ]
    spec
      .given([started])
      .when(offer("white"))
      .then([DrawOffered.make({ by: "white" })])
    spec
      .given([started, DrawOffered.make({ by: "white" })])
      .when(accept("black"))
      .then(drawAgreed("black"))
    // An offer back while the other side's offer stands agrees to it.
    spec
      .given([started, DrawOffered.make({ by: "white" })])
      .when(offer("black"))
      .then(drawAgreed("black"))
  })

  it("only the side a draw was offered to can accept it, and only while it stands", () => {
    spec
      .given([started])
      .when(accept("black"))
      .thenFails(new NoDrawOffered({ by: "black" }))
    spec
      .given([started, DrawOffered.make({ by: "white" })])
      .when(accept("white"))
      .thenFails(new NoDrawOffered({ by: "white" }))
    // Offering again while one's own offer stands writes nothing.
    spec
      .given([started, DrawOffered.make({ by: "white" })])
      .when(offer("white"))
      .then([])
    // The offer survives the offering side's move, and lapses when the other side moves instead of accepting.
    const offeredThenMoved = [...played(), DrawOffered.make({ by: "white" }), ...played("e4").slice(1)]
    spec
      .given(offeredThenMoved)
      .when(accept("black"))
      .then([DrawAccepted.make({ by: "black" }), GameEnded.make({ score: "1/2-1/2", reason: "draw agreed" })])
    const answered = [...played("e4"), DrawOffered.make({ by: "white" }), ...played("e4", "e5").slice(2)]
    spec
      .given(answered)
      .when(accept("black"))
      .thenFails(new NoDrawOffered({ by: "black" }))
  })

  it("either side may resign at any time, and the other side wins", () => {
    spec
      .given([started])
      .when(resign("black"))
      .then([Resigned.make({ by: "black" }), GameEnded.make({ score: "1-0", reason: "resignation" })])
    spec
      .given(played("e4"))
      .when(resign("white"))
      .then([Resigned.make({ by: "white" }), GameEnded.make({ score: "0-1", reason: "resignation" })])
  })

  it("an ended game is closed: the command handler refuses everything", () => {
    const over = spec.given([...played("f3", "e5", "g4", "Qh4#")])
    for (const command of [start, move("white", "a3"), offer("white"), accept("black"), resign("white")]) {
      over.when(command).thenClosed()
    }
  })
})

describe("a known game", () => {
  const commands = [
    { _tag: "StartGame" as const, white: OperaGame.white, black: OperaGame.black },
    ...OperaGame.moves.map((san, ply): Command => move(ply % 2 === 0 ? "white" : "black", san))
  ]
  // The final position of the Opera Game (Morphy, Paris 1858) as published.
  const finalFen = "1n1Rkb1r/p4ppp/4q3/4p1B1/4P3/8/PPP2PPP/2K5 b k - 1 17"

  it("replaying the Opera Game's moves gives its final position, white winning by mate", () => {
    const run = Decider.run(decider, commands)
    assert.deepStrictEqual(run.refused, [])
    assert.strictEqual(run.state.fen, finalFen)
    assert.deepStrictEqual(run.state.ended, { score: "1-0", reason: "checkmate" })
    assert.strictEqual(run.state.plies, 33)
  })

  it.effect("through the command handler and a store, the stream folds to the same position", () =>
    Effect.gen(function* () {
      for (const command of commands) yield* CommandHandler.handle(Game, "opera", command)
      const store = yield* EventStore.EventStore
      const events = yield* store.readStream("game-opera").pipe(
        Stream.mapEffect((recorded) => Effect.fromResult(Game.events.decode(recorded))),
        Stream.runCollect
      )
      assert.strictEqual(Decider.fold(decider, events).fen, finalFen)
      assert.strictEqual(events.length, 1 + 33 + 1)
      const afterMate = yield* Effect.flip(CommandHandler.handle(Game, "opera", move("black", "Ke7")))
      assert.strictEqual(afterMate._tag, "StreamClosed")
    }).pipe(Effect.provide(EventStore.layerMemory))
  )
})

describe("Game laws, over random legal games", () => {
  const options = {
    // chess.js takes about a millisecond per command, so fewer and shorter games than the defaults.
    runs: 25,
    maxCommands: 60,
    invariants: {
      "the position is one chess.js accepts": (state: State) => validateFen(state.fen).ok,
      "the side to move alternates with the plies": (state: State) =>
        state.players === null || toMove(state.fen) === (state.plies % 2 === 0 ? "white" : "black"),
      "no move before the start": (state: State) => state.players !== null || state.plies === 0,
      "no draw offer stands after the end": (state: State) => state.ended === null || state.drawOfferedBy === null
    },
    idempotent: (choice: number, state: State) => commandFor(choice, state)._tag === "OfferDraw"
  }

  it.effect("every law holds", () => AggregateLaws.checkAll(RandomPlayer, options))
})
