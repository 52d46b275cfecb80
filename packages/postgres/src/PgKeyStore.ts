/**
 * The Postgres key store: one row per subject in `chronicle_keys`, holding its data key wrapped (AES-256-GCM) under
 * a master key from config, so a copy of the database alone decrypts nothing. `forget` deletes the wrapped key and
 * keeps the row as a tombstone, so no new key is ever made for that subject.
 *
 * **Gotcha:** Postgres keeps a deleted value in the table file until `VACUUM` reclaims it, and backups keep it for as
 * long as they are kept; both are protected by the master key, which never enters the database.
 */
import { KeyStore } from "@chronicle/core"
import { Config, Effect, Layer, Redacted, Result } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

/** How the store is configured. */
export interface Options {
  /** The master key that wraps every data key: 32 random bytes, base64-encoded (`openssl rand -base64 32`). */
  readonly masterKey: Redacted.Redacted<string>
}

interface KeyRow {
  readonly subject: string
  readonly wrapped_key: string | null
}

/** How many times `keysFor` re-reads when a concurrent writer created a subject's key between its two reads. */
const attempts = 3

/** How many unwrapped keys a store keeps in memory, so reads do not unwrap the same key page after page. */
const unwrappedCacheSize = 10_000

/** Builds the key store on the `SqlClient` in context. **Gotcha:** a master key that is not 32 bytes is a defect. */
export const make = Effect.fnUntraced(function* (options: Options) {
  const sql = yield* SqlClient.SqlClient
  const master = Buffer.from(Redacted.value(options.masterKey), "base64")
  if (master.length !== 32) {
    return yield* Effect.die(new Error(`PgKeyStore: the master key is ${master.length} bytes, not 32 (base64)`))
  }
  const context = (subject: string) => `chronicle_keys/${subject}`
  const wrap = (subject: string) =>
    KeyStore.seal(master, Buffer.from(KeyStore.generateKey()).toString("base64"), context(subject))
  // Unwrapped keys by (subject, wrapped key). The table stays the only authority on which keys exist: every lookup
  // still reads it, so a key forgotten by any process is never served; the cache only saves the unwrapping.
  const unwrapped = new Map<string, KeyStore.DataKey>()
  const unwrap = (row: KeyRow & { readonly wrapped_key: string }) => {
    const cacheKey = `${row.subject}\u0000${row.wrapped_key}`
    const cached = unwrapped.get(cacheKey)
    if (cached !== undefined) return Effect.succeed(cached)
    return Result.match(KeyStore.open(master, row.wrapped_key, context(row.subject)), {
      onSuccess: (text) => {
        const key = Buffer.from(text, "base64") as KeyStore.DataKey
        if (unwrapped.size >= unwrappedCacheSize) unwrapped.delete(unwrapped.keys().next().value!)
        unwrapped.set(cacheKey, key)
        return Effect.succeed(key)
      },
      onFailure: (reason) =>
        Effect.fail(new KeyStore.KeyStoreError({ operation: "unwrap", cause: new Error(`${row.subject}: ${reason}`) }))
    })
  }
  const keyError = (operation: string) => (cause: SqlError.SqlError) => new KeyStore.KeyStoreError({ operation, cause })
  const toMap = (rows: ReadonlyArray<KeyRow & { readonly wrapped_key: string }>) =>
    Effect.map(
      Effect.forEach(rows, (row) => Effect.map(unwrap(row), (key) => [row.subject, key] as const)),
      (entries) => new Map(entries)
    )

  const find = (subjects: ReadonlyArray<string>) =>
    sql
      .unsafe<KeyRow & { readonly wrapped_key: string }>(
        "SELECT subject, wrapped_key FROM chronicle_keys WHERE subject = ANY($1::text[]) AND wrapped_key IS NOT NULL",
        [subjects]
      )
      .pipe(Effect.mapError(keyError("find")), Effect.flatMap(toMap))

  const keysFor = (subjects: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const wanted = [...new Set(subjects)]
      for (let attempt = 1; attempt <= attempts; attempt++) {
        // One statement: create the missing keys, and read the ones that existed before it started.
        const rows = yield* sql
          .unsafe<KeyRow>(
            `WITH created AS (
               INSERT INTO chronicle_keys (subject, wrapped_key)
               SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (subject) DO NOTHING
               RETURNING subject, wrapped_key)
             SELECT subject, wrapped_key FROM created
             UNION ALL SELECT subject, wrapped_key FROM chronicle_keys WHERE subject = ANY($1::text[])`,
            [wanted, wanted.map(wrap)]
          )
          .pipe(Effect.mapError(keyError("keysFor")))
        const forgotten = rows.find((row) => row.wrapped_key === null)
        if (forgotten !== undefined) return yield* new KeyStore.SubjectForgotten({ subject: forgotten.subject })
        if (rows.length === wanted.length) return yield* toMap(rows as ReadonlyArray<KeyRow & { wrapped_key: string }>)
      }
      return yield* new KeyStore.KeyStoreError({
        operation: "keysFor",
        cause: new Error(`other writers kept creating these subjects' keys for ${attempts} attempts`)
      })
    })

  const forget = (subject: string) =>
    sql`
      INSERT INTO chronicle_keys (subject, wrapped_key, forgotten_at) VALUES (${subject}, NULL, now())
      ON CONFLICT (subject) DO UPDATE
      SET wrapped_key = NULL, forgotten_at = coalesce(chronicle_keys.forgotten_at, now())`.pipe(
      Effect.andThen(
        Effect.sync(() => {
          for (const cacheKey of unwrapped.keys())
            if (cacheKey.startsWith(`${subject}\u0000`)) unwrapped.delete(cacheKey)
        })
      ),
      Effect.mapError(keyError("forget"))
    )

  return KeyStore.KeyStore.of({ keysFor, find, forget })
})

/** Provides the Postgres `KeyStore` on the `SqlClient` in context (run `PgMigrations` first). */
export const layer = (options: Options): Layer.Layer<KeyStore.KeyStore, never, SqlClient.SqlClient> =>
  Layer.effect(KeyStore.KeyStore, make(options))

/** Provides the Postgres `KeyStore` with the master key read from `CHRONICLE_MASTER_KEY`. */
export const layerConfig: Layer.Layer<KeyStore.KeyStore, Config.ConfigError, SqlClient.SqlClient> = Layer.unwrap(
  Effect.gen(function* () {
    return layer({ masterKey: yield* Config.Redacted("CHRONICLE_MASTER_KEY") })
  })
)
