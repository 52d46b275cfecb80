/** The database a command works on, and the stores it builds there from the app's config module. */
import {
  type CheckpointStore,
  CryptoShredding,
  type DeadLetters,
  type EventStore,
  type EventVersions,
  type KeyStore,
  Upcasting
} from "@chronicle/core"
import { PgCheckpointStore, PgDeadLetters, PgEventStore, PgKeyStore } from "@chronicle/postgres"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import type { AppConfig } from "../AppConfig.ts"
import { ConfigMissing } from "../AppConfig.ts"
import { NotMigrated } from "../Failure.ts"

/** A pool of a few connections to `url`; connecting gives up after 5 seconds. */
export const client = (url: string) =>
  PgClient.layer({
    url: Redacted.make(url),
    maxConnections: 4,
    connectTimeout: "5 seconds",
    applicationName: "chronicle cli"
  })

/** The host and port of a database URL, for messages (never the password). */
export const hostOf = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`
  } catch {
    return "(unparseable DATABASE_URL)"
  }
}

/** Fails with `NotMigrated` when Chronicle's tables are missing. */
export const requireTables = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ present: boolean }>`SELECT to_regclass('chronicle_events') IS NOT NULL AS present`
  if (row?.present !== true) return yield* new NotMigrated()
})

/** The event types of the config's aggregates, with their version histories, and `SubjectForgotten`. */
export const registryOf = (config: AppConfig): EventVersions.Registry =>
  CryptoShredding.registryOf({ aggregates: config.aggregates ?? [] })

/**
 * The key store: the config module's, else the Postgres one when `CHRONICLE_MASTER_KEY` is set; `command` names who
 * needs it when there is none.
 */
export const keyStore = (config: AppConfig, command: string) =>
  Layer.unwrap(
    Effect.gen(function* () {
      if (config.keyStore !== undefined) return config.keyStore
      const master = yield* Config.option(Config.Redacted("CHRONICLE_MASTER_KEY"))
      if (Option.isSome(master)) return PgKeyStore.layer({ masterKey: master.value })
      return yield* new ConfigMissing({ command, needs: "a key store (`keyStore`, or CHRONICLE_MASTER_KEY)" })
    })
  )

/**
 * The app's view of the log: the Postgres store, decrypting personal fields when the config has a key store, and
 * upcasting old event versions when it has aggregates.
 */
export const appStore = (config: AppConfig): Layer.Layer<EventStore.EventStore, unknown, PgClient.PgClient> => {
  const registry = registryOf(config)
  const raw = PgEventStore.layer()
  const opened =
    config.keyStore === undefined
      ? raw
      : CryptoShredding.layer({ aggregates: config.aggregates ?? [] }).pipe(
          Layer.provide(raw),
          Layer.provide(config.keyStore as Layer.Layer<KeyStore.KeyStore, unknown, PgClient.PgClient>)
        )
  return registry.size === 0 ? opened : Upcasting.layer(registry).pipe(Layer.provide(opened))
}

/** The checkpoints and dead letters of projections in Postgres. */
export const projectionServices: Layer.Layer<
  CheckpointStore.CheckpointStore | DeadLetters.DeadLetters,
  never,
  SqlClient.SqlClient
> = Layer.mergeAll(PgCheckpointStore.layer, PgDeadLetters.layer)
