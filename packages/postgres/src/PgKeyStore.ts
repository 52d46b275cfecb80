/**
 * The Postgres key store: one row per subject in `chronicle_keys`, holding its data key wrapped (AES-256-GCM) under
 * a master key from config, so a copy of the database alone decrypts nothing. `forget` deletes the wrapped key and
 * keeps the row as a tombstone, so no new key is ever made for that subject. Each row names the master key that
 * wraps it (a hash of the key, not the key), so `rotate` re-wraps every data key under a new master key in batches,
 * and can resume where it stopped.
 *
 * Unwrapped keys are cached in the process. The table stays the authority: every `forget` bumps a counter in
 * `chronicle_key_epoch` in its transaction, every `find` reads the counter in the same statement as the keys it
 * lacks, and a changed counter empties the cache, so a key forgotten by any process is never served after its
 * `forget` committed.
 *
 * **Gotcha:** Postgres keeps a deleted value in the table file until `VACUUM` reclaims it, and backups keep it for as
 * long as they are kept; both are protected by the master key, which never enters the database.
 */
import { createHash } from "node:crypto"
import { KeyStore } from "@chronicle/core"
import { Config, Effect, Layer, Option, Redacted, Result, Schema } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

/** How the store is configured. */
export interface Options {
  /** The master key that wraps every new data key: 32 random bytes, base64-encoded (`openssl rand -base64 32`). */
  readonly masterKey: Redacted.Redacted<string>
  /** Master keys of before a rotation, still needed for the data keys `rotate` has not re-wrapped yet. */
  readonly previousMasterKeys?: ReadonlyArray<Redacted.Redacted<string>>
}

/** A master key is not 32 bytes of base64. */
export class InvalidMasterKey extends Schema.TaggedError<InvalidMasterKey>()("InvalidMasterKey", {
  bytes: Schema.Int
}) {
  override get message() {
    return `PgKeyStore: a master key is ${this.bytes} bytes, not 32 (base64)`
  }
}

/**
 * The options from config: `CHRONICLE_MASTER_KEY`, and during a rotation `CHRONICLE_PREVIOUS_MASTER_KEYS` (the old
 * keys, comma-separated). Both are read as `Redacted`, so they never show in logs.
 */
export const config: Config.Config<Options> = Config.all({
  masterKey: Config.Redacted("CHRONICLE_MASTER_KEY"),
  previous: Config.option(Config.Redacted("CHRONICLE_PREVIOUS_MASTER_KEYS"))
}).pipe(
  Config.map(({ masterKey, previous }) => ({
    masterKey,
    previousMasterKeys: Option.match(previous, {
      onNone: () => [],
      onSome: (keys) =>
        Redacted.value(keys)
          .split(",")
          .map((key) => key.trim())
          .filter((key) => key !== "")
          .map((key) => Redacted.make(key))
    })
  }))
)

interface Master {
  readonly id: string
  readonly key: Buffer
}

const masterOf = (masterKey: Redacted.Redacted<string>): Result.Result<Master, InvalidMasterKey> => {
  const key = Buffer.from(Redacted.value(masterKey), "base64")
  if (key.length !== 32) return Result.fail(new InvalidMasterKey({ bytes: key.length }))
  const id = createHash("sha256").update("chronicle master key id\u0000").update(key).digest("base64url").slice(0, 16)
  return Result.succeed({ id, key })
}

/** The current master key first, then the previous ones. */
const mastersOf = (options: Options) =>
  Effect.forEach([options.masterKey, ...(options.previousMasterKeys ?? [])], (key) => Effect.fromResult(masterOf(key)))

interface KeyRow {
  readonly subject: string
  readonly wrapped_key: string | null
  readonly master_key_id: string | null
}

type WrappedRow = KeyRow & { readonly wrapped_key: string }

const context = (subject: string) => `chronicle_keys/${subject}`

const wrapUnder = (master: Master, key: KeyStore.DataKey, subject: string) =>
  KeyStore.seal(master.key, Buffer.from(key).toString("base64"), context(subject))

/** Unwraps a row's data key with the master key it names (any of them for rows written before rotation existed). */
const unwrapWith = (masters: ReadonlyArray<Master>, row: WrappedRow): Result.Result<KeyStore.DataKey, string> => {
  const candidates = row.master_key_id === null ? masters : masters.filter((master) => master.id === row.master_key_id)
  if (candidates.length === 0)
    return Result.fail(`wrapped under master key ${row.master_key_id}, which this store was not given`)
  for (const master of candidates) {
    const opened = KeyStore.open(master.key, row.wrapped_key, context(row.subject))
    if (Result.isSuccess(opened)) return Result.succeed(Buffer.from(opened.success, "base64"))
  }
  return Result.fail("no master key given to this store unwraps it")
}

/** How many times `keysFor` re-reads when a concurrent writer created a subject's key between its two reads. */
const attempts = 3

/** How many unwrapped keys a store keeps in memory. */
const cacheSize = 10_000

const keyError = (operation: string) => (cause: SqlError.SqlError | Error) =>
  new KeyStore.KeyStoreError({ operation, cause })

/** Builds the key store on the `SqlClient` in context. */
export const make = Effect.fnUntraced(function* (options: Options) {
  const sql = yield* SqlClient.SqlClient
  const masters = yield* mastersOf(options)
  const current = masters[0]!
  // Unwrapped keys by subject, with the wrapped key they came from; valid while the epoch is `epoch`.
  const cache = new Map<string, { readonly wrapped: string; readonly key: KeyStore.DataKey }>()
  let epoch: string | undefined
  const remember = (subject: string, wrapped: string, key: KeyStore.DataKey) => {
    if (cache.size >= cacheSize && !cache.has(subject)) cache.delete(cache.keys().next().value!)
    cache.set(subject, { wrapped, key })
  }
  const unwrap = (row: WrappedRow) => {
    const cached = cache.get(row.subject)
    if (cached !== undefined && cached.wrapped === row.wrapped_key) return Effect.succeed(cached.key)
    return Result.match(unwrapWith(masters, row), {
      onSuccess: (key) => {
        remember(row.subject, row.wrapped_key, key)
        return Effect.succeed(key)
      },
      onFailure: (reason) => Effect.fail(keyError("unwrap")(new Error(`${row.subject}: ${reason}`)))
    })
  }
  const unwrapAll = (rows: ReadonlyArray<WrappedRow>) =>
    Effect.map(
      Effect.forEach(rows, (row) => Effect.map(unwrap(row), (key) => [row.subject, key] as const)),
      (entries) => new Map(entries)
    )

  const fetch = (subjects: ReadonlyArray<string>) =>
    sql
      .unsafe<KeyRow & { readonly epoch: string }>(
        `SELECT e.epoch::text AS epoch, k.subject, k.wrapped_key, k.master_key_id
         FROM chronicle_key_epoch e
         LEFT JOIN chronicle_keys k ON k.subject = ANY($1::text[]) AND k.wrapped_key IS NOT NULL`,
        [subjects]
      )
      .pipe(Effect.mapError(keyError("find")))

  const find = (subjects: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const wanted = [...new Set(subjects)]
      let rows = yield* fetch(wanted.filter((subject) => epoch === undefined || !cache.has(subject)))
      const seen = rows[0]?.epoch
      if (seen !== epoch) {
        // A subject was forgotten since the cache was filled (or it never was): start again from the table.
        cache.clear()
        epoch = seen
        rows = yield* fetch(wanted)
      }
      yield* unwrapAll(rows.filter((row): row is typeof row & WrappedRow => row.wrapped_key !== null))
      const found = new Map<string, KeyStore.DataKey>()
      for (const subject of wanted) {
        const cached = cache.get(subject)
        if (cached !== undefined) found.set(subject, cached.key)
      }
      return found as ReadonlyMap<string, KeyStore.DataKey>
    })

  const keysFor = (subjects: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const wanted = [...new Set(subjects)]
      for (let attempt = 1; attempt <= attempts; attempt++) {
        // One statement: create the missing keys, and read the ones that existed before it started.
        const rows = yield* sql
          .unsafe<KeyRow>(
            `WITH created AS (
               INSERT INTO chronicle_keys (subject, wrapped_key, master_key_id)
               SELECT s, w, $3 FROM unnest($1::text[], $2::text[]) AS x(s, w) ON CONFLICT (subject) DO NOTHING
               RETURNING subject, wrapped_key, master_key_id)
             SELECT subject, wrapped_key, master_key_id FROM created
             UNION ALL SELECT subject, wrapped_key, master_key_id FROM chronicle_keys WHERE subject = ANY($1::text[])`,
            [wanted, wanted.map((subject) => wrapUnder(current, KeyStore.generateKey(), subject)), current.id]
          )
          .pipe(Effect.mapError(keyError("keysFor")))
        const forgotten = rows.find((row) => row.wrapped_key === null)
        if (forgotten !== undefined) return yield* new KeyStore.SubjectForgotten({ subject: forgotten.subject })
        if (rows.length === wanted.length) return yield* unwrapAll(rows as ReadonlyArray<WrappedRow>)
      }
      return yield* keyError("keysFor")(
        new Error(`other writers kept creating these subjects' keys for ${attempts} attempts`)
      )
    })

  const forget = (subject: string) =>
    Effect.gen(function* () {
      yield* sql`
        INSERT INTO chronicle_keys (subject, wrapped_key, forgotten_at) VALUES (${subject}, NULL, now())
        ON CONFLICT (subject) DO UPDATE
        SET wrapped_key = NULL, master_key_id = NULL, forgotten_at = coalesce(chronicle_keys.forgotten_at, now())`
      yield* sql`UPDATE chronicle_key_epoch SET epoch = epoch + 1`
    }).pipe(
      sql.withTransaction,
      Effect.ensuring(Effect.sync(() => cache.delete(subject))),
      Effect.mapError(keyError("forget"))
    )

  const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    sql.withTransaction(effect).pipe(
      Effect.catchIf(
        (error): error is SqlError.SqlError => (error as { _tag?: unknown })._tag === "SqlError",
        (error) => Effect.fail(keyError("transaction")(error))
      )
    ) as Effect.Effect<A, E | KeyStore.KeyStoreError, R>

  return KeyStore.KeyStore.of({
    keysFor: (subjects) => Effect.andThen(KeyStore.validateSubjects(subjects), keysFor(subjects)),
    find: (subjects) => Effect.andThen(KeyStore.validateSubjects(subjects), find(subjects)),
    forget: (subject) => Effect.andThen(KeyStore.validateSubjects([subject]), forget(subject)),
    transaction
  })
})

/** Provides the Postgres `KeyStore` on the `SqlClient` in context (run `PgMigrations` first). */
export const layer = (options: Options): Layer.Layer<KeyStore.KeyStore, InvalidMasterKey, SqlClient.SqlClient> =>
  Layer.effect(KeyStore.KeyStore, make(options))

/** Provides the Postgres `KeyStore` with its master keys read from `config`. */
export const layerConfig: Layer.Layer<KeyStore.KeyStore, Config.ConfigError | InvalidMasterKey, SqlClient.SqlClient> =
  Layer.unwrap(
    Effect.gen(function* () {
      return layer(yield* config)
    })
  )

/** How far a rotation is: data keys re-wrapped so far, out of those it found to re-wrap when it started. */
export interface Progress {
  readonly done: number
  readonly total: number
}

/** How a rotation runs, besides the master keys (`previousMasterKeys` must hold every key still in use). */
export interface RotateOptions extends Options {
  /** How many data keys one transaction re-wraps; 500 unless set. */
  readonly batchSize?: number
  /** Called after each committed batch; logs `key rotation: done/total keys` unless set. */
  readonly onProgress?: (progress: Progress) => Effect.Effect<void>
}

/**
 * Re-wraps every data key not yet under `masterKey`, unwrapping it with the previous master keys, in batches of one
 * transaction each; returns the tally. Resumable: a run that stops keeps its batches, and the next run re-wraps only
 * the keys still under another master key. Stores given the new key (and the old ones, until the rotation is done)
 * keep working while it runs; once it is done, the old master keys can be dropped from config.
 */
export const rotate = (
  options: RotateOptions
): Effect.Effect<Progress, KeyStore.KeyStoreError | InvalidMasterKey, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const masters = yield* mastersOf(options)
    const current = masters[0]!
    const batchSize = options.batchSize ?? 500
    const onProgress = options.onProgress ?? ((p: Progress) => Effect.log(`key rotation: ${p.done}/${p.total} keys`))
    const pending = `FROM chronicle_keys WHERE wrapped_key IS NOT NULL AND master_key_id IS DISTINCT FROM $1`
    const [count] = yield* sql
      .unsafe<{ n: number }>(`SELECT count(*)::int4 AS n ${pending}`, [current.id])
      .pipe(Effect.mapError(keyError("rotate")))
    const total = count?.n ?? 0
    let done = 0
    while (true) {
      const batch = yield* Effect.gen(function* () {
        const rows = yield* sql.unsafe<WrappedRow>(
          `SELECT subject, wrapped_key, master_key_id ${pending} ORDER BY subject LIMIT $2 FOR UPDATE`,
          [current.id, batchSize]
        )
        const rewrapped: Array<string> = []
        for (const row of rows) {
          const key = unwrapWith(masters, row)
          if (Result.isFailure(key)) return yield* keyError("rotate")(new Error(`${row.subject}: ${key.failure}`))
          rewrapped.push(wrapUnder(current, key.success, row.subject))
        }
        yield* sql.unsafe(
          `UPDATE chronicle_keys k SET wrapped_key = x.w, master_key_id = $3
           FROM unnest($1::text[], $2::text[]) AS x(s, w) WHERE k.subject = x.s`,
          [rows.map((row) => row.subject), rewrapped, current.id]
        )
        return rows.length
      }).pipe(
        sql.withTransaction,
        Effect.catchTag("SqlError", (error) => Effect.fail(keyError("rotate")(error)))
      )
      if (batch === 0) return { done, total }
      done += batch
      yield* onProgress({ done, total: Math.max(total, done) })
    }
  })
