/**
 * Event upgrades on Postgres: rewrite stored events of old schema versions as their current version, so reads stop
 * paying for upcasting. Not to be confused with `PgMigrations`, which creates tables.
 *
 * You run it yourself. It works in batches, one transaction each. A batch copies the original rows into
 * `chronicle_events_archive`, then rewrites them in place (same stream, version, position and event id). It is
 * resumable: a run that stops keeps the batches it committed, and the next run selects only the events still below
 * their current version. With a `KeyStore` in context, personal fields are opened before upcasting and sealed again
 * after. Those of forgotten subjects are written redacted.
 */

import type { Envelope } from "@chronicle/core"
import { CryptoShredding, EventCodec, type EventStore, type EventVersions, KeyStore } from "@chronicle/core"
import { Array as Arr, Effect, Option, Result, Schema } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { type EventRow, selectColumns, toRecorded } from "./internal/EventRow.ts"

/** How far a migration is: events rewritten so far out of the events it found to rewrite when it started. */
export interface Progress {
  readonly done: number
  readonly total: number
}

/** How a migration runs; every field has a default. */
export interface Options {
  /** How many events one transaction rewrites; 500 unless set. */
  readonly batchSize?: number
  /** Called after each committed batch; logs `event upgrade: done/total events` unless set. */
  readonly onProgress?: (progress: Progress) => Effect.Effect<void>
}

/** The migration could not read or write the database, or was not given what it needs. */
export class EventUpgradeError extends Schema.TaggedError<EventUpgradeError>()("EventUpgradeError", {
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message() {
    return `event upgrade failed: ${this.reason}`
  }
}

/** Every way a migration can fail; batches committed before the failure stay committed. */
export type UpgradeError =
  | EventUpgradeError
  | EventCodec.EventDecodeError
  | EventStore.EventStoreError
  | EventStore.InvalidAppend
  | CryptoShredding.UnsupportedMark

const pending = `FROM chronicle_events e
  JOIN unnest($1::text[], $2::int4[]) AS cur(type, version) ON e.type = cur.type AND e.schema_version < cur.version`

/** Rewrites every stored event of an old version of `registry`'s types as its current version; returns the tally. */
export const run = (
  registry: EventVersions.Registry,
  options: Options = {}
): Effect.Effect<Progress, UpgradeError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const batchSize = options.batchSize ?? 500
    const onProgress = options.onProgress ?? ((p: Progress) => Effect.log(`event upgrade: ${p.done}/${p.total} events`))
    const keys = yield* Effect.serviceOption(KeyStore.KeyStore)
    const cipher = Option.isSome(keys)
      ? yield* Effect.provideService(CryptoShredding.makeCipher(registry), KeyStore.KeyStore, keys.value)
      : undefined
    const evolved = [...registry.values()].filter((entry) => entry.version > 1)
    const params = [evolved.map((entry) => entry.type), evolved.map((entry) => entry.version)]
    const sqlError = (reason: string) => (cause: SqlError.SqlError) => new EventUpgradeError({ reason, cause })

    const [count] = yield* sql
      .unsafe<{ n: number }>(`SELECT count(*)::int4 AS n ${pending}`, params)
      .pipe(Effect.mapError(sqlError("counting the events to migrate")))
    const total = count?.n ?? 0

    const rewrite = (rows: Arr.NonEmptyReadonlyArray<EventRow>) =>
      Effect.gen(function* () {
        const stored = Arr.map(rows, toRecorded)
        const opened = cipher === undefined ? stored : yield* cipher.decrypt(stored)
        const upcast: Array<Envelope.RecordedEvent> = []
        for (const event of opened) {
          const entry = registry.get(event.type)!
          const data = entry.upcast(event.schemaVersion, event.data)
          if (Result.isFailure(data)) {
            const { stream, version, position, type, schemaVersion } = event
            return yield* new EventCodec.EventDecodeError({
              stream,
              version,
              position,
              type,
              schemaVersion,
              reason: data.failure
            })
          }
          upcast.push({ ...event, schemaVersion: entry.version, data: data.success })
        }
        if (cipher === undefined) return upcast
        const byStream = new Map<string, Array<number>>()
        for (const [index, event] of upcast.entries()) {
          const indices = byStream.get(event.stream)
          if (indices === undefined) byStream.set(event.stream, [index])
          else indices.push(index)
        }
        for (const [stream, indices] of byStream) {
          const sealed = yield* cipher.encrypt(
            stream,
            indices.map((index) => upcast[index]!),
            "redact"
          )
          sealed.forEach((event, k) => {
            upcast[indices[k]!] = { ...upcast[indices[k]!]!, data: event.data }
          })
        }
        return upcast
      })

    let done = 0
    let after = "0"
    while (true) {
      const batch = yield* Effect.gen(function* () {
        const rows = yield* sql.unsafe<EventRow>(
          `SELECT ${selectColumns("e")}
           ${pending} WHERE e.global_position > $3::bigint ORDER BY e.global_position LIMIT $4 FOR UPDATE OF e`,
          [...params, after, batchSize]
        )
        if (!Arr.isReadonlyArrayNonEmpty(rows)) return rows
        const events = yield* rewrite(rows)
        const positions = events.map((event) => String(event.position))
        yield* sql.unsafe(
          `INSERT INTO chronicle_events_archive (global_position, stream_id, version, event_id, type, schema_version,
             data, metadata, recorded_at, migrated_to)
           SELECT e.global_position, e.stream_id, e.version, e.event_id, e.type, e.schema_version, e.data, e.metadata,
             e.recorded_at, x.v
           FROM chronicle_events e JOIN unnest($1::text[]::bigint[], $2::int4[]) AS x(pos, v) ON e.global_position = x.pos
           ON CONFLICT DO NOTHING`,
          [positions, events.map((event) => event.schemaVersion)]
        )
        yield* sql.unsafe(
          `UPDATE chronicle_events e SET schema_version = x.v, data = x.data
           FROM unnest($1::text[]::bigint[], $2::int4[], $3::text[]::jsonb[]) AS x(pos, v, data)
           WHERE e.global_position = x.pos`,
          [positions, events.map((event) => event.schemaVersion), events.map((event) => JSON.stringify(event.data))]
        )
        return rows
      }).pipe(
        sql.withTransaction,
        Effect.catchTag("SqlError", (error) => Effect.fail(sqlError("rewriting a batch")(error)))
      )
      const last = batch.at(-1)
      if (last === undefined) return { done, total }
      done += batch.length
      after = String(last.global_position)
      yield* onProgress({ done, total: Math.max(total, done) })
    }
  })
