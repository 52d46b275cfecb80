import { CommandHandler } from "@chronicle/core"
import { PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { type Command, Game } from "../src/Game.ts"
import * as GamesInProgress from "../src/GamesInProgress.ts"

const Live = Layer.mergeAll(PgEventStore.layer({ pollInterval: "100 millis" }), PgProjection.layerServices()).pipe(
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer))
)

const send = (id: string, ...commands: ReadonlyArray<Command>) =>
  Effect.forEach(commands, (command) => CommandHandler.handle(Game, id, command), { discard: true })
const start: Command = { _tag: "StartGame", white: "Anna", black: "Boris" }
const white = (move: string): Command => ({ _tag: "PlayMove", by: "white", move })
const black = (move: string): Command => ({ _tag: "PlayMove", by: "black", move })

layer(Live, { excludeTestServices: true })("games in progress", (it) => {
  it.effect("lists the games being played, with the side to move and a standing draw offer, and drops ended ones", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* send("mated", start, white("f3"), black("e5"), white("g4"), black("Qh4#"))
      yield* send("offered", start, white("e4"), { _tag: "OfferDraw", by: "white" })
      const runner = yield* PgProjection.start(GamesInProgress.model)
      yield* send("lapsed", start, white("d4"), { _tag: "OfferDraw", by: "white" }, black("d5"), white("c4"))
      yield* send("resigned", start, { _tag: "Resign", by: "white" })
      yield* send("fresh", start)
      yield* runner.awaitCaughtUp

      const rows = sql`
        SELECT game_id, plies, to_move, last_move, draw_offered_by FROM chess_games_in_progress ORDER BY game_id`
      const expected = [
        { game_id: "fresh", plies: 0, to_move: "white", last_move: null, draw_offered_by: null },
        { game_id: "lapsed", plies: 3, to_move: "black", last_move: "c4", draw_offered_by: null },
        { game_id: "offered", plies: 1, to_move: "black", last_move: "e4", draw_offered_by: "white" }
      ]
      assert.deepStrictEqual(yield* rows, expected)

      yield* PgProjection.rebuild(GamesInProgress.model)
      assert.deepStrictEqual(yield* rows, expected)
    }).pipe(Effect.scoped)
  )
})
