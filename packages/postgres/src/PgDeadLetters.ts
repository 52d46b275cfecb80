/**
 * Dead letters in Postgres: the table `chronicle_dead_letters`, one row per parked event of a projection. Parking is
 * one statement on the `SqlClient` in context, so inside the runner's transaction it commits with the checkpoint
 * that moves past the parked event.
 */
import { DeadLetters } from "@chronicle/core"
import { Effect, Layer } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

/** Builds the store on the `SqlClient` in context (run `PgMigrations` first). */
export const make: Effect.Effect<DeadLetters.Service, never, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const failed = (projection: string) => (cause: SqlError.SqlError) =>
    new DeadLetters.DeadLetterError({ projection, cause })

  const park = (letter: DeadLetters.DeadLetter) =>
    sql`
      INSERT INTO chronicle_dead_letters (projection, global_position, event_id, stream_id, version, type, error)
      VALUES (${letter.projection}, ${letter.position}, ${letter.eventId}::uuid, ${letter.stream}, ${letter.version},
              ${letter.type}, ${letter.error})
      ON CONFLICT (projection, global_position) DO NOTHING`.pipe(
      Effect.asVoid,
      Effect.mapError(failed(letter.projection))
    )

  const list = (projection: string) =>
    sql<{
      global_position: bigint
      event_id: string
      stream_id: string
      version: number
      type: string
      error: string
    }>`
      SELECT global_position, event_id::text, stream_id, version, type, error FROM chronicle_dead_letters
      WHERE projection = ${projection} ORDER BY global_position`.pipe(
      Effect.map((rows) =>
        rows.map(
          (row): DeadLetters.DeadLetter => ({
            projection,
            position: BigInt(row.global_position),
            eventId: row.event_id,
            stream: row.stream_id,
            version: row.version,
            type: row.type,
            error: row.error
          })
        )
      ),
      Effect.mapError(failed(projection))
    )

  const discard = (projection: string, position: bigint) =>
    sql<{ projection: string }>`
      DELETE FROM chronicle_dead_letters WHERE projection = ${projection} AND global_position = ${position}
      RETURNING projection`.pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(failed(projection))
    )

  return { park, list, discard }
})

/** Provides the Postgres `DeadLetters` on the `SqlClient` in context. */
export const layer: Layer.Layer<DeadLetters.DeadLetters, never, SqlClient.SqlClient> = Layer.effect(
  DeadLetters.DeadLetters,
  make
)
