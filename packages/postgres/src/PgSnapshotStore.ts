/**
 * The Postgres snapshot store over `@effect/sql-pg`: one row per stream in `chronicle_snapshots` (migration
 * `2_snapshots`), read by primary key and replaced by each save in one upsert. The state is kept as `jsonb`, written
 * through the state schema's JSON codec, so the loader decodes it with the same schema; a snapshot `jsonb` cannot
 * hold (a NUL in its text...) is refused first with `InvalidSnapshot` (`SnapshotStore.prepareSave`).
 */
import { Instrumentation, SnapshotStore } from "@chronicle/core"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option } from "effect"
import type { SqlError } from "effect/sql"

interface SnapshotRow {
  readonly version: number
  readonly event_id: string
  readonly fingerprint: string
  readonly state: never
}

/** Builds the store on the `PgClient` in context. */
export const make: Effect.Effect<SnapshotStore.Service, never, PgClient.PgClient> = Effect.gen(function* () {
  const sql = yield* PgClient.PgClient
  const storeError = (operation: string, stream: string) => (cause: SqlError.SqlError) =>
    new SnapshotStore.SnapshotStoreError({ operation, stream, cause })

  const load = (stream: string) =>
    SnapshotStore.withValidStream(
      stream,
      sql<SnapshotRow>`
      SELECT version, event_id::text, fingerprint, state FROM chronicle_snapshots WHERE stream_id = ${stream}`.pipe(
        Effect.map(([row]) =>
          row === undefined
            ? Option.none()
            : Option.some({
                stream,
                version: row.version,
                eventId: row.event_id,
                fingerprint: row.fingerprint,
                state: row.state
              })
        ),
        Effect.mapError(storeError("load", stream))
      )
    )

  const save = (snapshot: SnapshotStore.Snapshot) =>
    Effect.flatMap(Effect.fromResult(SnapshotStore.prepareSave(snapshot)), (state) =>
      sql`
      INSERT INTO chronicle_snapshots (stream_id, version, event_id, fingerprint, state)
      VALUES (${snapshot.stream}, ${snapshot.version}, ${snapshot.eventId}::uuid, ${snapshot.fingerprint},
              ${state}::jsonb)
      ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, event_id = excluded.event_id,
        fingerprint = excluded.fingerprint, state = excluded.state, saved_at = now()`.pipe(
        Effect.asVoid,
        Effect.mapError(storeError("save", snapshot.stream))
      )
    )

  const remove = (stream: string) =>
    SnapshotStore.withValidStream(
      stream,
      sql`DELETE FROM chronicle_snapshots WHERE stream_id = ${stream}`.pipe(
        Effect.asVoid,
        Effect.mapError(storeError("delete", stream))
      )
    )

  return { load, save, delete: remove } satisfies SnapshotStore.Service
})

/** Provides the Postgres `SnapshotStore` on the `PgClient` in context (run `PgMigrations` first). */
export const layer: Layer.Layer<never, never, PgClient.PgClient> = Layer.effect(
  SnapshotStore.SnapshotStore,
  Effect.map(make, (store) =>
    Instrumentation.snapshotStore(store, { system: "postgresql", collection: "chronicle_snapshots" })
  )
)
