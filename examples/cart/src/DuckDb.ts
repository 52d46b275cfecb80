/**
 * An embedded DuckDB database (`@duckdb/node-api`) as a service, and projections into it: analytical read models
 * kept in a DuckDB file beside the app. Each batch's rows and the projection's checkpoint (in the same file) commit
 * in one DuckDB transaction, so a process killed at any point restarts from a checkpoint that matches its rows:
 * nothing lost, nothing counted twice. The lease and dead letters stay in the event store's database.
 *
 * **Gotchas**: DuckDB lets one process at a time open a file for writing; other processes cannot read it meanwhile.
 * Statements on the service's one connection run one at a time.
 */
import { CheckpointStore, type Lease, LogFollower, type Projection, ProjectionRunner } from "@chronicle/core"
import { DuckDBInstance, type DuckDBValue } from "@duckdb/node-api"
import { Context, Effect, Layer, Schema, type Scope, Semaphore } from "effect"

/** A DuckDB statement failed. */
export class DuckDbError extends Schema.TaggedError<DuckDbError>()("DuckDbError", {
  sql: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    return `DuckDB failed on ${this.sql.trim().split("\n")[0]}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** The DuckDB service's operations. */
export interface Service {
  /** Runs a statement with `?` parameters. */
  readonly run: (sql: string, values?: ReadonlyArray<DuckDBValue>) => Effect.Effect<void, DuckDbError>
  /** Appends rows to a table through DuckDB's appender (no SQL to parse); inside a transaction, they commit with it. */
  readonly append: (table: string, rows: ReadonlyArray<ReadonlyArray<DuckDBValue>>) => Effect.Effect<void, DuckDbError>
  /** Runs a query and returns its rows as JSON objects (cast BIGINT columns in SQL to get numbers). */
  readonly query: <Row>(
    sql: string,
    values?: ReadonlyArray<DuckDBValue>
  ) => Effect.Effect<ReadonlyArray<Row>, DuckDbError>
  /**
   * Runs `self` in a DuckDB transaction: committed if it succeeds, rolled back if it fails or is interrupted. A
   * transaction that cannot begin or commit fails with `TransactionError`, as the log follower expects.
   */
  readonly transaction: LogFollower.Transaction
}

/** An open DuckDB database. */
export class DuckDb extends Context.Service<DuckDb, Service>()("@chronicle/example-cart/DuckDb") {}

/** Opens the DuckDB database at `path` (`":memory:"` for one in memory) until the scope closes. */
export const make = (path: string): Effect.Effect<Service, DuckDbError, Scope.Scope> =>
  Effect.gen(function* () {
    // The instance holds the file's lock: closing only the connection would leave it held until garbage collection,
    // and another process opening the file in the meantime would fail.
    const instance = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => DuckDBInstance.create(path),
        catch: (cause) => new DuckDbError({ sql: `open ${path}`, cause })
      }),
      (instance) => Effect.sync(() => instance.closeSync())
    )
    const connection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => instance.connect(),
        catch: (cause) => new DuckDbError({ sql: `connect ${path}`, cause })
      }),
      (connection) => Effect.sync(() => connection.closeSync())
    )
    const one = yield* Semaphore.make(1)
    const reader = (sql: string, values: ReadonlyArray<DuckDBValue>) =>
      one.withPermits(1)(
        Effect.tryPromise({
          try: () => connection.runAndReadAll(sql, [...values]),
          catch: (cause) => new DuckDbError({ sql, cause })
        })
      )
    const run: Service["run"] = (sql, values = []) => Effect.asVoid(reader(sql, values))
    const query: Service["query"] = <Row>(sql: string, values: ReadonlyArray<DuckDBValue> = []) =>
      Effect.map(reader(sql, values), (result) => result.getRowObjectsJson() as unknown as ReadonlyArray<Row>)
    const append: Service["append"] = (table, rows) =>
      one.withPermits(1)(
        Effect.tryPromise({
          try: async () => {
            const appender = await connection.createAppender(table)
            for (const row of rows) {
              for (const value of row) appender.appendValue(value)
              appender.endRow()
            }
            appender.closeSync()
          },
          catch: (cause) => new DuckDbError({ sql: `append to ${table}`, cause })
        })
      )
    const transaction: Service["transaction"] = (self) =>
      Effect.acquireUseRelease(
        Effect.mapError(run("BEGIN TRANSACTION"), (cause) => new LogFollower.TransactionError({ cause })),
        () => self,
        (_, exit) =>
          exit._tag === "Success"
            ? Effect.mapError(run("COMMIT"), (cause) => new LogFollower.TransactionError({ cause }))
            : Effect.ignore(run("ROLLBACK"))
      )
    return { run, append, query, transaction }
  })

/** Provides the DuckDB database at `path`. */
export const layer = (path: string): Layer.Layer<DuckDb, DuckDbError> => Layer.effect(DuckDb, make(path))

/** Checkpoints kept in the DuckDB database itself, so they commit with the read model's rows. */
export const checkpoints = (duck: Service): CheckpointStore.Service => {
  const failed = (projection: string) => (error: DuckDbError) =>
    new CheckpointStore.CheckpointError({ projection, cause: error })
  const load = (projection: string) =>
    duck
      .query<{ position: string }>(
        "SELECT position::VARCHAR AS position FROM chronicle_checkpoints WHERE projection = ?",
        [projection]
      )
      .pipe(
        Effect.map(([row]) => (row === undefined ? 0n : BigInt(row.position))),
        Effect.mapError(failed(projection))
      )
  // One row per projection, kept by this code rather than a key: DuckDB rewrites indexed rows slowly.
  const save = (projection: string, position: bigint) =>
    duck
      .query("UPDATE chronicle_checkpoints SET position = ? WHERE projection = ? RETURNING projection", [
        position,
        projection
      ])
      .pipe(
        Effect.flatMap((updated) =>
          updated.length > 0
            ? Effect.void
            : duck.run("INSERT INTO chronicle_checkpoints VALUES (?, ?)", [projection, position])
        ),
        Effect.mapError(failed(projection))
      )
  // No owner epochs here (these checkpoints serve one process): nothing can be claimed, so no fenced advance passes.
  const advance = (projection: string, from: bigint, to: bigint, epoch?: bigint) =>
    Effect.gen(function* () {
      if (epoch !== undefined) return yield* new CheckpointStore.CheckpointFenced({ projection, epoch, current: 0n })
      const actual = yield* load(projection)
      if (actual !== from) return yield* new CheckpointStore.CheckpointMoved({ projection, expected: from, actual })
      yield* save(projection, to)
    })
  const claim = (projection: string) =>
    Effect.fail(new CheckpointStore.CheckpointError({ projection, cause: "DuckDB checkpoints have no owner epoch" }))
  return { load, save, advance, claim }
}

const checkpointTable = Effect.flatMap(DuckDb, (duck) =>
  duck.run("CREATE TABLE IF NOT EXISTS chronicle_checkpoints (projection VARCHAR NOT NULL, position BIGINT NOT NULL)")
)

/** Runs `effect` with the DuckDB checkpoints as the `CheckpointStore`, after creating their table if needed. */
const withCheckpoints = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const duck = yield* DuckDb
    yield* checkpointTable
    return yield* Effect.provideService(effect, CheckpointStore.CheckpointStore, checkpoints(duck))
  })

/** What a DuckDB projection needs from its context besides the DuckDB database. */
export type Requirements<R> = Exclude<ProjectionRunner.Requirements<R>, CheckpointStore.CheckpointStore> | DuckDb

/** Starts `projection` in the background, under its lease, with each batch and its checkpoint in one transaction. */
export const start = <A, Err, R>(
  projection: Projection.Projection<A, Err, R>
): Effect.Effect<
  LogFollower.Handle,
  DuckDbError | LogFollower.InvalidFollowerName,
  Requirements<R> | Lease.Lease | Scope.Scope
> =>
  withCheckpoints(
    Effect.flatMap(DuckDb, (duck) => ProjectionRunner.start(projection, { transaction: duck.transaction }))
  )

/** Handles every event after the projection's checkpoint up to the head of the log, then returns the checkpoint. */
export const catchUp = <A, Err, R>(
  projection: Projection.Projection<A, Err, R>
): Effect.Effect<bigint, LogFollower.CatchUpError | DuckDbError, Requirements<R>> =>
  withCheckpoints(
    Effect.flatMap(DuckDb, (duck) => ProjectionRunner.catchUp(projection, { transaction: duck.transaction }))
  )
