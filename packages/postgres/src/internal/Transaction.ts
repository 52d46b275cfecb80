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
import { Cause, Effect, Predicate } from "effect"
import { type SqlClient, SqlError } from "effect/sql"

/** The effect's own failure, kept apart from the transaction's. */
interface Own<E> {
  readonly _tag: "Own"
  readonly error: E
}

/** The transaction itself failed. */
interface Boundary {
  readonly _tag: "Boundary"
  readonly cause: unknown
}

const isOwn = (u: unknown): u is Own<unknown> => Predicate.isTagged(u, "Own")

/**
 * What broke the transaction, if a defect in `cause` says it broke: a SQL error effect/sql raised as a defect (a
 * ROLLBACK on a cut connection), or else the effect's own failure it promoted to a defect while cleaning up.
 */
const brokenBy = (cause: Cause.Cause<unknown>): { readonly cause: unknown } | undefined => {
  const defects = cause.reasons.filter(Cause.isDieReason).map((reason) => reason.defect)
  const sql = defects.find(SqlError.isSqlError)
  if (sql !== undefined) return { cause: sql }
  const own = defects.find(isOwn)
  return own === undefined ? undefined : { cause: own.error }
}

/**
 * Runs `effect` in a transaction of `sql`. The effect's own failures come out as they are; a failure of the
 * transaction itself (BEGIN, COMMIT, or a ROLLBACK on a cut connection) comes out as `boundary(cause)`.
 */
export const withTransaction = <A, E, R, X>(
  sql: SqlClient.SqlClient,
  effect: Effect.Effect<A, E, R>,
  boundary: (cause: unknown) => X
): Effect.Effect<A, E | X, R> =>
  sql.withTransaction(Effect.mapError(effect, (error): Own<E> => ({ _tag: "Own", error }))).pipe(
    Effect.mapError((failure): Own<E> | Boundary => (isOwn(failure) ? failure : { _tag: "Boundary", cause: failure })),
    Effect.catchCause((cause): Effect.Effect<never, Own<E> | Boundary> => {
      const broken = brokenBy(cause)
      return broken === undefined ? Effect.failCause(cause) : Effect.fail({ _tag: "Boundary", cause: broken.cause })
    }),
    Effect.mapError((failure) => (failure._tag === "Own" ? failure.error : boundary(failure.cause)))
  )
