/**
 * Key stores: one data key per subject (a customer, a patient...) for crypto-shredding. Personal values of a
 * subject's events are sealed with its key; `forget` deletes the key, after which those values can never be read
 * again. A forgotten subject stays forgotten: no new key is made for it. The AES-256-GCM `seal` and `open` used for
 * personal values (and by key stores that wrap keys under a master key) live here too, with `openAll`, which opens a
 * page's worth of values at once, on the calling thread.
 *
 * **The contract** (what an adapter for a KMS or Vault must keep; `KeyStoreConformance` in @chronicle/testing checks
 * it): a data key is 32 random bytes, made at most once per subject. `keysFor` returns each subject's key, making the
 * missing ones, and fails with `SubjectForgotten` naming a forgotten subject; concurrent first calls for one subject,
 * from any process, must agree on one key. `find` returns the keys that exist, never makes one, and must never return
 * a key after a `forget` of it has returned, in any process (cache only what you can invalidate). `forget` removes the
 * key for good, keeps a tombstone so `keysFor` refuses the subject afterwards, and is idempotent, also for a subject
 * that never had a key. A subject id that is not storable text (a NUL, a lone UTF-16 surrogate) fails all three with
 * `InvalidSubject` before any I/O (`validateSubjects`), since no retry can store it; failures of the backend are
 * `KeyStoreError`s. How keys are protected at rest (wrapped under a master key, held in an HSM) is the adapter's
 * business; Chronicle only ever sees unwrapped data keys in memory.
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from "node:crypto"
import { Context, Effect, Layer, Result, Schema } from "effect"
import { describeCause } from "./internal/describeCause.ts"
import { textProblem } from "./Storable.ts"

/** A 256-bit AES key. */
export type DataKey = Uint8Array

/** The key store could not be reached or failed while working. */
export class KeyStoreError extends Schema.TaggedError<KeyStoreError>()("KeyStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    return `key store ${this.operation} failed: ${describeCause(this.cause)}`
  }
}

/** The subject was forgotten, so no personal data of it can be stored again. */
export class SubjectForgotten extends Schema.TaggedError<SubjectForgotten>()("SubjectForgotten", {
  subject: Schema.String
}) {
  override get message() {
    return `subject ${this.subject} was forgotten; its personal data cannot be stored`
  }
}

/** A subject id no store can hold (a NUL or a lone UTF-16 surrogate): bad input that no retry can fix. */
export class InvalidSubject extends Schema.TaggedError<InvalidSubject>()("InvalidSubject", {
  subject: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `subject ${JSON.stringify(this.subject)} ${this.reason}: no key store can hold it`
  }
}

/** Fails with `InvalidSubject` naming the first subject that is not storable text; every key store checks with it. */
export const validateSubjects = (subjects: ReadonlyArray<string>): Effect.Effect<void, InvalidSubject> => {
  for (const subject of subjects) {
    const reason = typeof subject === "string" ? textProblem(subject) : "is not a string"
    if (reason !== undefined) return Effect.fail(new InvalidSubject({ subject: String(subject), reason }))
  }
  return Effect.void
}

/** Where the data keys of subjects live. */
export interface Service {
  /** The key of each subject, creating keys for subjects that have none; fails if one of them was forgotten. */
  readonly keysFor: (
    subjects: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyMap<string, DataKey>, KeyStoreError | SubjectForgotten | InvalidSubject>
  /** The keys that exist for `subjects`; forgotten and unknown subjects are absent from the map. */
  readonly find: (
    subjects: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyMap<string, DataKey>, KeyStoreError | InvalidSubject>
  /** Deletes the subject's key for good and remembers that it was forgotten; forgetting twice is a no-op. */
  readonly forget: (subject: string) => Effect.Effect<void, KeyStoreError | InvalidSubject>
  /**
   * Runs `effect` in one transaction with the store's own writes, when the store shares one with the event store (as
   * `PgKeyStore` does on the same database), so `CryptoShredding.forget` deletes a key and records it atomically.
   * Optional: without it the fact is recorded first and the key deleted after, and a repeated `forget` completes one
   * that stopped in between.
   */
  readonly transaction?: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | KeyStoreError, R>
}

/** The key store service. */
export class KeyStore extends Context.Service<KeyStore, Service>()("@chronicle/core/KeyStore") {}

/** Makes a new random data key. */
export const generateKey = (): DataKey => randomBytes(32)

const ivBytes = 12
const tagBytes = 16

// Node imports a raw key on every cipher it makes (most of the cost of a small seal); a key object is imported once.
const imported = new WeakMap<DataKey, KeyObject>()
const keyObject = (key: DataKey): KeyObject => {
  const known = imported.get(key)
  if (known !== undefined) return known
  const made = createSecretKey(key)
  imported.set(key, made)
  return made
}

/** Encrypts `plaintext` with AES-256-GCM under `key`, bound to `context`; returns IV, ciphertext and tag, base64. */
export const seal = (key: DataKey, plaintext: string, context: string): string => {
  const iv = randomBytes(ivBytes)
  const cipher = createCipheriv("aes-256-gcm", keyObject(key), iv).setAAD(Buffer.from(context))
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64")
}

/** Decrypts what `seal` made with the same key and context; fails with a reason if it was altered or misdirected. */
export const open = (key: DataKey, sealed: string, context: string): Result.Result<string, string> => {
  const bytes = Buffer.from(sealed, "base64")
  if (bytes.length < ivBytes + tagBytes) return Result.fail("sealed value is too short")
  const decipher = createDecipheriv("aes-256-gcm", keyObject(key), bytes.subarray(0, ivBytes))
    .setAAD(Buffer.from(context))
    .setAuthTag(bytes.subarray(bytes.length - tagBytes))
  return Result.try({
    try: () => {
      const plaintext = decipher.update(bytes.subarray(ivBytes, bytes.length - tagBytes))
      decipher.final() // authenticates; GCM has no bytes left to give
      return plaintext.toString("utf8")
    },
    catch: () => "authentication failed: wrong key, or the sealed value was altered"
  })
}

/** One value for `openAll`: the key, what `seal` made with it, and the context it was sealed for. */
export interface ToOpen {
  readonly key: DataKey
  readonly sealed: string
  readonly context: string
}

/** Opens many sealed values, each as `open` does, on the calling thread (a page of events at once). */
export const openAll = (values: ReadonlyArray<ToOpen>): Effect.Effect<ReadonlyArray<Result.Result<string, string>>> =>
  Effect.sync(() => values.map(({ key, sealed, context }) => open(key, sealed, context)))

/**
 * Deletes a subject's key through the `KeyStore` in context, and nothing else: apps call `CryptoShredding.forget`,
 * which also records the fact in the log.
 */
export const forget = (subject: string): Effect.Effect<void, KeyStoreError | InvalidSubject, KeyStore> =>
  KeyStore.use((keys) => keys.forget(subject))

/** Builds a key store that keeps keys in memory (for tests and single-process apps). */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const keys = new Map<string, DataKey | "forgotten">()
  const found = (subjects: ReadonlyArray<string>) => {
    const result = new Map<string, DataKey>()
    for (const subject of subjects) {
      const key = keys.get(subject)
      if (key !== undefined && key !== "forgotten") result.set(subject, key)
    }
    return result
  }
  return KeyStore.of({
    keysFor: (subjects) =>
      Effect.andThen(
        validateSubjects(subjects),
        Effect.suspend(() => {
          const forgotten = subjects.find((subject) => keys.get(subject) === "forgotten")
          if (forgotten !== undefined) return Effect.fail(new SubjectForgotten({ subject: forgotten }))
          for (const subject of subjects) if (!keys.has(subject)) keys.set(subject, generateKey())
          return Effect.succeed(found(subjects))
        })
      ),
    find: (subjects) =>
      Effect.andThen(
        validateSubjects(subjects),
        Effect.sync(() => found(subjects))
      ),
    forget: (subject) =>
      Effect.andThen(
        validateSubjects([subject]),
        Effect.sync(() => void keys.set(subject, "forgotten"))
      )
  })
})

/** Provides an in-memory `KeyStore`, empty when built. */
export const layerMemory: Layer.Layer<KeyStore> = Layer.effect(KeyStore, makeMemory)
