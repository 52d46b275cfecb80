/**
 * A fresh Postgres database per test file. `PgTest.layer` creates a database with a random name on the server the
 * vitest global setup started (or on `DATABASE_URL`). It provides a `PgClient` on it and drops the database when the
 * layer's scope closes, so test files run in parallel without seeing each other's data. `PgTest.layerMigrated`
 * also applies Chronicle's tables: the layer most Postgres tests start from.
 */

import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { PgClient } from "@effect/sql-pg"
import { inject } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import type { SqlClient } from "effect/sql"

/** The URL of a new, empty database, dropped (with any connections left) when the scope closes. */
export const database = Effect.suspend(() =>
  EmbeddedPostgres.freshDatabase(inject("databaseUrl"), `t_${crypto.randomUUID().replaceAll("-", "")}`)
).pipe(Effect.orDie)

/** The URL of the database `layer` made, for child processes that connect to it themselves. */
export class DatabaseUrl extends Context.Service<DatabaseUrl, string>()("@chronicle/testing/PgTest/DatabaseUrl") {}

/** Provides a `PgClient` (and `SqlClient`) on a fresh database of its own, and its `DatabaseUrl`. */
export const layer = (options: { readonly maxConnections?: number } = {}) =>
  Layer.unwrap(
    Effect.map(database, (url) =>
      Layer.merge(
        Layer.succeed(DatabaseUrl, url),
        PgClient.layer({ url: Redacted.make(url), maxConnections: options.maxConnections ?? 20 })
      )
    )
  ).pipe(Layer.orDie)

/**
 * A fresh database with `migrations` applied (pass `PgMigrations.layer` from `@chronicle/postgres`, which this package
 * does not depend on), providing the `PgClient` and `SqlClient`.
 */
export const layerMigrated = <E>(
  migrations: Layer.Layer<never, E, SqlClient.SqlClient>,
  options: { readonly maxConnections?: number } = {}
) => migrations.pipe(Layer.provideMerge(layer(options)), Layer.orDie)
