/**
 * The chess app's config module for the `chronicle` command: its aggregate, so `chronicle streams show game-<id>`
 * prints the state after each move, and the board as text, so `chronicle ui` draws the board as of any move. Use it
 * with `--config examples/chess/src/chronicle.config.ts`.
 */
import * as Board from "./Board.ts"
import { Game } from "./Game.ts"

/** The game aggregate: streams `game-<id>`. */
export const aggregates = [Game]

/** The board of a game, drawn by the stream browser above its state. */
export const renderers = { game: Board.text }
