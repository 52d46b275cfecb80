import { Decider } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import * as Board from "../src/Board.ts"
import { type Command, decider } from "../src/Game.ts"

const state = Decider.run(decider, [
  { _tag: "StartGame", white: "Anna", black: "Boris" },
  ...["e4", "e5", "Nf3"].map(
    (move, ply): Command => ({ _tag: "PlayMove", by: ply % 2 === 0 ? "white" : "black", move })
  ),
  { _tag: "OfferDraw", by: "white" }
]).state

describe("Board", () => {
  it("lays the position out rank 8 first, files a to h, with every piece on its square", () => {
    const view = Board.view(state)
    assert.deepStrictEqual(view.ranks[0], ["r", "n", "b", "q", "k", "b", "n", "r"])
    assert.deepStrictEqual(view.ranks[5], [null, null, null, null, null, "N", null, null])
    assert.strictEqual(view.pieces.length, 32)
    assert.deepInclude(view.pieces, { square: "e4", color: "white", kind: "pawn" })
    assert.deepInclude(view.pieces, { square: "f3", color: "white", kind: "knight" })
    assert.strictEqual(view.status, "black to move (white offers a draw)")
  })

  it("writes the board as text from white's side, then the status", () => {
    assert.strictEqual(
      Board.text(state),
      [
        "8 r n b q k b n r",
        "7 p p p p · p p p",
        "6 · · · · · · · ·",
        "5 · · · · p · · ·",
        "4 · · · · P · · ·",
        "3 · · · · · N · ·",
        "2 P P P P · P P P",
        "1 R N B Q K B · R",
        "  a b c d e f g h",
        "black to move (white offers a draw)"
      ].join("\n")
    )
    assert.strictEqual(Board.view(decider.initialState).status, "not started")
  })
})
