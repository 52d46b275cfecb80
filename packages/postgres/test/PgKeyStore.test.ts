import { randomBytes } from "node:crypto"
import { CryptoShredding, EventId, EventStore, ExpectedVersion, KeyStore } from "@chronicle/core"
import { PgEventStore, PgKeyStore, PgMigrations } from "@chronicle/postgres"
import { KeyStoreConformance, PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Redacted, Stream } from "effect"
import { SqlClient } from "effect/sql"

const newMasterKey = () => Redacted.make(randomBytes(32).toString("base64"))
const masterKey = newMasterKey()

KeyStoreConformance.suite(
  "PgKeyStore",
  PgKeyStore.layer({ masterKey }).pipe(Layer.provideMerge(PgMigrations.layer), Layer.provideMerge(PgTest.layer()))
)

const Db = PgEventStore.layer().pipe(Layer.provideMerge(PgMigrations.layer), Layer.provideMerge(PgTest.layer()))

layer(Db, { excludeTestServices: true })("PgKeyStore", (it) => {
  it.effect("a key forgotten by another process is never served from this one's cache", () =>
    Effect.gen(function* () {
      const here = yield* PgKeyStore.make({ masterKey })
      const elsewhere = yield* PgKeyStore.make({ masterKey })
      const [subject, other] = [`c-${crypto.randomUUID()}`, `c-${crypto.randomUUID()}`]
      yield* here.keysFor([subject, other])
      assert.strictEqual((yield* here.find([subject, other])).size, 2) // cached here now
      yield* elsewhere.forget(subject)
      assert.deepStrictEqual([...(yield* here.find([subject, other])).keys()], [other])
    })
  )

  it.effect("forget records the fact and deletes the key in one transaction: both commit, or neither", () =>
    Effect.gen(function* () {
      const keys: KeyStore.Service = yield* PgKeyStore.make({ masterKey })
      const store = yield* EventStore.EventStore
      const [kept, gone] = [`c-${crypto.randomUUID()}`, `c-${crypto.randomUUID()}`]
      yield* keys.keysFor([kept, gone])
      const halfDone = Effect.gen(function* () {
        yield* store.append(
          `forgetFacts-${kept}`,
          [
            {
              eventId: EventId.random(),
              type: "SubjectForgotten",
              schemaVersion: 1,
              data: { subject: kept },
              metadata: {}
            }
          ],
          ExpectedVersion.noStream
        )
        yield* keys.forget(kept)
        return yield* Effect.fail("the process died here")
      })
      const failed = yield* keys.transaction!(halfDone).pipe(Effect.flip)
      assert.strictEqual(failed, "the process died here")
      assert.strictEqual((yield* keys.find([kept])).size, 1)
      assert.strictEqual((yield* Stream.runCollect(store.readAll({ categories: ["forgetFacts"] }))).length, 0)
      const forgotten = yield* CryptoShredding.forget(gone).pipe(Effect.provideService(KeyStore.KeyStore, keys))
      assert.isTrue(forgotten.now)
      assert.strictEqual((yield* keys.find([gone])).size, 0)
    })
  )

  it.effect("keys are stored wrapped under the master key, named by its id, never in the clear", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const keys = yield* PgKeyStore.make({ masterKey })
      const subject = `c-${crypto.randomUUID()}`
      const key = (yield* keys.keysFor([subject])).get(subject)!
      const [row] = yield* sql<{ text: string; master_key_id: string }>`
        SELECT t::text AS text, master_key_id FROM chronicle_keys t WHERE subject = ${subject}`
      assert.notInclude(row!.text, Buffer.from(key).toString("base64"))
      assert.notInclude(row!.text, Buffer.from(key).toString("hex"))
      assert.notInclude(row!.master_key_id, Redacted.value(masterKey))
    })
  )

  it.effect("rotate re-wraps every key under the new master key, resumes after a stop, and reports progress", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`DELETE FROM chronicle_keys`
      const oldKey = newMasterKey()
      const newKey = newMasterKey()
      const before = yield* PgKeyStore.make({ masterKey: oldKey })
      const subjects = Array.from({ length: 5 }, (_, i) => `r-${i}`)
      const keys = yield* before.keysFor(subjects)
      yield* before.forget("r-4")
      const progress: Array<string> = []
      const options = {
        masterKey: newKey,
        previousMasterKeys: [oldKey],
        batchSize: 2,
        onProgress: ({ done, total }: PgKeyStore.Progress) => Effect.sync(() => void progress.push(`${done}/${total}`))
      }
      // The first run stops after its first batch (as a crash would); the second picks up the rest.
      const stopped = yield* PgKeyStore.rotate({ ...options, onProgress: () => Effect.interrupt }).pipe(Effect.exit)
      assert.isTrue(Exit.hasInterrupts(stopped))
      const resumed = yield* PgKeyStore.rotate(options)
      assert.deepStrictEqual(resumed, { done: 2, total: 2 })
      assert.deepStrictEqual(progress, ["2/2"])
      const after = yield* PgKeyStore.make({ masterKey: newKey })
      const found = yield* after.find(subjects)
      assert.deepStrictEqual([...found.keys()].sort(), subjects.slice(0, 4))
      for (const subject of subjects.slice(0, 4)) {
        assert.isTrue(Buffer.from(found.get(subject)!).equals(Buffer.from(keys.get(subject)!)))
      }
      assert.deepStrictEqual(yield* PgKeyStore.rotate(options), { done: 0, total: 0 })
      const stale = yield* PgKeyStore.make({ masterKey: oldKey })
      const refused = yield* stale.find(subjects).pipe(Effect.flip)
      assert.deepInclude(refused, { _tag: "KeyStoreError", operation: "unwrap" })
    })
  )

  it.effect("reads its master keys from config as Redacted, and refuses one that is not 32 bytes", () =>
    Effect.gen(function* () {
      const previous = newMasterKey()
      const options = yield* PgKeyStore.config.pipe(
        Effect.provide(
          ConfigProvider.layer(
            ConfigProvider.fromUnknown({
              CHRONICLE_MASTER_KEY: Redacted.value(masterKey),
              CHRONICLE_PREVIOUS_MASTER_KEYS: `${Redacted.value(previous)}, `
            })
          )
        )
      )
      assert.isTrue(Redacted.isRedacted(options.masterKey))
      assert.deepStrictEqual(options.previousMasterKeys?.map(Redacted.value), [Redacted.value(previous)])
      const invalid = yield* PgKeyStore.make({ masterKey: Redacted.make("c2hvcnQ=") }).pipe(Effect.flip)
      assert.deepInclude(invalid, { _tag: "InvalidMasterKey", bytes: 5 })
    })
  )
})
