/**
 * `pnpm demo:chess [MOVE]`: the chess example of the original notes on a real Postgres. Starts an embedded Postgres 18
 * (or uses `DATABASE_URL`), replays the Opera Game (Morphy, Paris 1858) move by move through the command handler,
 * and keeps beside it what a state-based app would keep: a table of where each piece stands now, overwritten by every
 * move. Then it prints the board after the chosen move (12 unless given) by folding the log up to it, and asks both
 * where the bishops were after that move: the table cannot say, the log can. Last, the games-in-progress read model.
 */
import { CommandHandler, Decider, EventStore, StreamName } from "@chronicle/core"
import { PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Array as Arr, Console, Effect, Layer, Redacted, Stream } from "effect"
import { SqlClient } from "effect/sql"
import * as Board from "./Board.ts"
import { type Command, Game, type State } from "./Game.ts"
import * as GamesInProgress from "./GamesInProgress.ts"
import * as OperaGame from "./OperaGame.ts"

const chosenMove = Number(process.argv[2] ?? 12)
if (!Number.isInteger(chosenMove) || chosenMove < 1 || chosenMove > 17) {
  console.error(`usage: pnpm demo:chess [MOVE], MOVE from 1 to 17 (the Opera Game's length); got ${process.argv[2]}`)
  process.exit(2)
}

/** What a state-based app stores: the square of each piece now, rewritten after every move. */
const saveBoard = (game: string, state: State) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`DELETE FROM chess_board WHERE game_id = ${game}`
        const rows = Board.view(state).pieces.map(({ square, color, kind }) => ({ game_id: game, square, color, kind }))
        if (Arr.isArrayNonEmpty(rows)) yield* sql`INSERT INTO chess_board ${sql.insert(rows)}`
      })
    )
  })

const send = (game: string, command: Command) =>
  Effect.flatMap(CommandHandler.handle(Game, game, command), (handled) => saveBoard(game, handled.state))

/** The state of `game` after its first `plies` moves: the fold of its events up to the last of them. */
const stateAfter = (game: string, plies: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    let moves = 0
    const events = yield* store.readStream(StreamName.make(Game.category, game)).pipe(
      Stream.mapEffect((recorded) => Effect.fromResult(Game.events.decode(recorded))),
      Stream.takeUntil((event) => event._tag === "MovePlayed" && ++moves === plies),
      Stream.runCollect
    )
    return { events, state: Decider.fold(Game.decider, events) }
  })

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS chess_board (
    game_id text NOT NULL, square text NOT NULL, color text NOT NULL, kind text NOT NULL,
    PRIMARY KEY (game_id, square))`
  const inProgress = yield* PgProjection.start(GamesInProgress.model)
  const opera = `opera-${crypto.randomUUID().slice(0, 8)}`

  yield* Console.log(`\n${OperaGame.white} – ${OperaGame.black}, Paris 1858, as game-${opera}:`)
  yield* send(opera, { _tag: "StartGame", white: OperaGame.white, black: OperaGame.black })
  for (const [ply, san] of OperaGame.moves.entries()) {
    yield* send(opera, { _tag: "PlayMove", by: ply % 2 === 0 ? "white" : "black", move: san })
  }
  const numbered = OperaGame.moves.map((san, ply) => (ply % 2 === 0 ? `${ply / 2 + 1}. ${san}` : san))
  yield* Console.log(`  ${numbered.join(" ")}`)
  const { state: final } = yield* stateAfter(opera, Number.POSITIVE_INFINITY)
  yield* Console.log(`\nThe final position (${final.fen}):\n${Board.text(final)}`)

  const plies = Math.min(2 * chosenMove, OperaGame.moves.length)
  const { events, state } = yield* stateAfter(opera, plies)
  yield* Console.log(`\nAfter move ${chosenMove}, folded from the first ${events.length} events of the log:`)
  yield* Console.log(Board.text(state))

  yield* Console.log(`\nWhere were the bishops after move ${chosenMove}?`)
  const table = yield* sql<{ square: string; color: string }>`
    SELECT square, color FROM chess_board WHERE game_id = ${opera} AND kind = 'bishop' ORDER BY color DESC, square`
  yield* Console.log(
    `  The state-based table (where each piece stands now): ${table.map((row) => `${row.color} ${row.square}`).join(", ") || "none"}.`
  )
  yield* Console.log(
    `  That is the end of the game, not move ${chosenMove}: the table is overwritten by every move and keeps no history.`
  )
  const bishops = Board.view(state)
    .pieces.filter((piece) => piece.kind === "bishop")
    .sort((a, b) => b.color.localeCompare(a.color))
  yield* Console.log(
    `  The log, folded up to move ${chosenMove}: ${bishops.map((piece) => `${piece.color} ${piece.square}`).join(", ")}.`
  )
  const bishopMoves = events.flatMap((event, index) =>
    event._tag === "MovePlayed" && event.san.startsWith("B")
      ? [`${Math.ceil(index / 2)}${event.by === "white" ? "." : "..."} ${event.san}`]
      : []
  )
  yield* Console.log(`  And how they got there, from the same log: ${bishopMoves.join(", ")}.`)

  const other = `casual-${crypto.randomUUID().slice(0, 8)}`
  yield* send(other, { _tag: "StartGame", white: "Anna", black: "Boris" })
  for (const [ply, san] of ["e4", "c5", "Nf3"].entries()) {
    yield* send(other, { _tag: "PlayMove", by: ply % 2 === 0 ? "white" : "black", move: san })
  }
  yield* send(other, { _tag: "OfferDraw", by: "white" })
  yield* inProgress.awaitCaughtUp
  const rows = yield* sql<{ game_id: string; white: string; black: string; plies: number; to_move: string }>`
    SELECT game_id, white, black, plies, to_move, last_move, draw_offered_by FROM chess_games_in_progress
    ORDER BY updated_at DESC LIMIT 5`
  yield* Console.log("\nGames in progress (the read model; the Opera Game ended, so it is not there):")
  for (const row of rows) yield* Console.log(`  ${JSON.stringify(row)}`)
}).pipe(Effect.scoped)

const Live = Layer.mergeAll(PgEventStore.layer(), PgProjection.layerServices()).pipe(
  Layer.provideMerge(PgMigrations.layer),
  Layer.provideMerge(
    Layer.unwrap(
      Effect.map(EmbeddedPostgres.databaseUrl, (url) => PgClient.layer({ url: Redacted.make(url), maxConnections: 4 }))
    )
  )
)

program.pipe(Effect.provide(Live), NodeRuntime.runMain)
