/**
 * The Opera Game, Paris 1858: Paul Morphy (white) against the Duke of Brunswick and Count Isouard, played in a box at
 * the opera and won by mate in 17 moves. A famous short game to replay.
 */

/** Who played white. */
export const white = "Paul Morphy"
/** Who played black, in consultation. */
export const black = "Duke of Brunswick and Count Isouard"
/** The moves in SAN, one entry per ply (white's, then black's). */
export const moves: ReadonlyArray<string> = [
  ...["e4", "e5", "Nf3", "d6", "d4", "Bg4", "dxe5", "Bxf3", "Qxf3", "dxe5", "Bc4", "Nf6", "Qb3", "Qe7"],
  ...["Nc3", "c6", "Bg5", "b5", "Nxb5", "cxb5", "Bxb5+", "Nbd7", "O-O-O", "Rd8", "Rxd7", "Rxd7", "Rd1", "Qe6"],
  ...["Bxd7+", "Nxd7", "Qb8+", "Nxb8", "Rd8#"]
]
