/**
 * The games-in-progress read model: one row per game that has started and not ended, with its players, the plies
 * played, the side to move, the last move and any standing draw offer, in the Postgres table
 * `chess_games_in_progress`. A game's row goes when the game ends. Updated exactly once per event, in the batch's
 * transaction.
 */
import { Projection, StreamName } from "@chronicle/core"
import { PgProjection } from "@chronicle/postgres"
import { Effect, Stream } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { Game } from "./Game.ts"

const decode = Projection.decodeWith(Game.events)

/** The games being played, in table `chess_games_in_progress`. */
export const model = PgProjection.make({
  name: "chess-games-in-progress",
  table: "chess_games_in_progress",
  categories: [Game.category],
  decode,
  create: (table) =>
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql`
        CREATE TABLE ${sql(table)} (
          game_id text PRIMARY KEY, white text NOT NULL, black text NOT NULL, plies int NOT NULL,
          to_move text NOT NULL, last_move text, draw_offered_by text, updated_at timestamptz NOT NULL)`
    ),
  handle: (table) => (events) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Stream.runForEach(events, ({ stream, event, recordedAt }): Effect.Effect<unknown, SqlError.SqlError> => {
        const game = StreamName.id(stream)
        switch (event._tag) {
          case "GameStarted":
            return sql`
              INSERT INTO ${sql(table)} (game_id, white, black, plies, to_move, updated_at)
              VALUES (${game}, ${event.white}, ${event.black}, 0, 'white', ${recordedAt})
              ON CONFLICT (game_id) DO NOTHING`
          case "MovePlayed":
            // A draw offer lapses when the side it was made to moves instead of accepting it.
            return sql`
              UPDATE ${sql(table)} SET
                plies = plies + 1, to_move = ${event.by === "white" ? "black" : "white"}, last_move = ${event.san},
                draw_offered_by = CASE WHEN draw_offered_by = ${event.by} THEN draw_offered_by END,
                updated_at = ${recordedAt}
              WHERE game_id = ${game}`
          case "DrawOffered":
            return sql`
              UPDATE ${sql(table)} SET draw_offered_by = ${event.by}, updated_at = ${recordedAt} WHERE game_id = ${game}`
          case "GameEnded":
            return sql`DELETE FROM ${sql(table)} WHERE game_id = ${game}`
          case "DrawAccepted":
          case "Resigned":
            return Effect.void
        }
      })
    )
})
