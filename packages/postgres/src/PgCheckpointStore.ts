/**
 * Checkpoints in Postgres: one row per projection in `chronicle_checkpoints`. Every operation runs on the `SqlClient`
 * in context (one statement, except an `advance` that is refused or is the first), so inside `sql.withTransaction` a
 * checkpoint commits or rolls back with the read model's own writes: that is what makes a Postgres read model
 * exactly-once. A fenced advance also compares the row's `owner_epoch`, which `claim` bumps; the claim waits for the
 * row lock of a batch in flight, so that batch commits before the claim or is refused after it.
 */
import { CheckpointStore } from "@chronicle/core"
import { Effect, Layer } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

/** Builds the store on the `SqlClient` in context (run `PgMigrations` first). */
export const make: Effect.Effect<CheckpointStore.Service, never, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const failed = (projection: string) => (cause: SqlError.SqlError) =>
    new CheckpointStore.CheckpointError({ projection, cause })

  const load = (projection: string) =>
    sql<{ position: bigint }>`SELECT position FROM chronicle_checkpoints WHERE projection = ${projection}`.pipe(
      Effect.map(([row]) => (row === undefined ? 0n : BigInt(row.position))),
      Effect.mapError(failed(projection))
    )

  const save = (projection: string, position: bigint) =>
    sql`
      INSERT INTO chronicle_checkpoints (projection, position) VALUES (${projection}, ${position})
      ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = now()`.pipe(
      Effect.asVoid,
      Effect.mapError(failed(projection))
    )

  // The hot path is one UPDATE; only a refusal (or a first save) looks further. Under a concurrent writer the UPDATE
  // waits for its row lock and re-checks `position = from` on the committed row, so two writers cannot both advance.
  const advance = (projection: string, from: bigint, to: bigint, epoch?: bigint) =>
    Effect.gen(function* () {
      const updated = yield* sql`
        UPDATE chronicle_checkpoints SET position = ${to}, updated_at = now()
        WHERE projection = ${projection} AND position = ${from}
          AND ${epoch === undefined ? sql`true` : sql`owner_epoch = ${epoch}`} RETURNING 1 AS ok`
      if (updated.length > 0) return
      if (epoch !== undefined) {
        const [row] = yield* sql<{ owner_epoch: bigint }>`
          SELECT owner_epoch FROM chronicle_checkpoints WHERE projection = ${projection}`
        const current = row === undefined ? 0n : BigInt(row.owner_epoch)
        if (current !== epoch) return yield* new CheckpointStore.CheckpointFenced({ projection, epoch, current })
      } else if (from === 0n) {
        const inserted = yield* sql`
          INSERT INTO chronicle_checkpoints (projection, position) VALUES (${projection}, ${to})
          ON CONFLICT (projection) DO NOTHING RETURNING 1 AS ok`
        if (inserted.length > 0) return
      }
      const actual = yield* load(projection)
      return yield* new CheckpointStore.CheckpointMoved({ projection, expected: from, actual })
    }).pipe(Effect.catchTag("SqlError", (cause) => Effect.fail(failed(projection)(cause))))

  const claim = (projection: string) =>
    sql<{ owner_epoch: bigint }>`
      INSERT INTO chronicle_checkpoints (projection, position, owner_epoch) VALUES (${projection}, 0, 1)
      ON CONFLICT (projection) DO UPDATE SET owner_epoch = chronicle_checkpoints.owner_epoch + 1, updated_at = now()
      RETURNING owner_epoch`.pipe(
      Effect.map(([row]) => BigInt(row!.owner_epoch)),
      Effect.mapError(failed(projection))
    )

  return { load, save, advance, claim }
})

/** Provides the Postgres `CheckpointStore` on the `SqlClient` in context. */
export const layer: Layer.Layer<CheckpointStore.CheckpointStore, never, SqlClient.SqlClient> = Layer.effect(
  CheckpointStore.CheckpointStore,
  make
)
