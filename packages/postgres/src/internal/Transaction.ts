/**
 * Transactions whose own failures stay typed. `SqlClient.withTransaction` (effect/sql 4.1) fails with `SqlError` when
 * BEGIN or COMMIT fails, but runs ROLLBACK under `Effect.orDie`: when the connection is cut inside the transaction (a
 * Postgres restart, a network cut), the effect fails, the ROLLBACK fails on the dead connection too, and the whole
 * transaction dies with the ROLLBACK's `SqlError` as a defect, in place of the effect's own failure. A database
 * going away is no bug, and nothing was committed (the server rolls back a transaction whose session ends), so
 * `withTransaction` here turns that defect back into a failure at the transaction boundary.
 *
 * effect/sql could fix it upstream: fail with the ROLLBACK's `SqlError` (already in `withTransaction`'s error type)
 * instead of dying, keeping the effect's own failure in the cause, or skip the ROLLBACK on a connection known to be
 * closed, since the server has rolled back already.
 */
import { Effect } from "effect"
import { type SqlClient, SqlError } from "effect/sql"

/** The effect's own failure, kept apart from the transaction's. */
interface Own<E> {
  readonly _tag: "Own"
  readonly error: E
}

/**
 * Runs `effect` in a transaction of `sql`. The effect's own failures come out as they are; a failure of the
 * transaction itself (BEGIN, COMMIT, or a ROLLBACK on a cut connection) comes out as `boundary(error)`.
 */
export const withTransaction = <A, E, R, X>(
  sql: SqlClient.SqlClient,
  effect: Effect.Effect<A, E, R>,
  boundary: (error: SqlError.SqlError) => X
): Effect.Effect<A, E | X, R> =>
  sql.withTransaction(Effect.mapError(effect, (error): Own<E> => ({ _tag: "Own", error }))).pipe(
    Effect.catchDefect((defect) => (SqlError.isSqlError(defect) ? Effect.fail(defect) : Effect.die(defect))),
    Effect.mapError((failure) => (failure._tag === "Own" ? failure.error : boundary(failure)))
  )
