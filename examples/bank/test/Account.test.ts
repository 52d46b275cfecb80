import { randomBytes } from "node:crypto"
import {
  AggregateLoader,
  CommandHandler,
  CryptoShredding,
  EventId,
  EventStore,
  ExpectedVersion,
  KeyStore,
  Upcasting
} from "@chronicle/core"
import { PgEventStore, PgEventUpgrade, PgKeyStore, PgMigrations } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Redacted, Schema, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Account, registry } from "../src/Account.ts"

const masterKey = Redacted.make(randomBytes(32).toString("base64"))

// The app's store: upcasting over crypto-shredding over Postgres, with keys in Postgres.
const Live = Upcasting.layer(registry).pipe(
  Layer.provide(CryptoShredding.layer({ aggregates: [Account] })),
  Layer.provide(PgEventStore.layer()),
  Layer.provideMerge(PgKeyStore.layer({ masterKey })),
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer))
)

/** Appends events as an older version of the app wrote them: sealed, but not upcast. */
const appendOld = (stream: string, events: ReadonlyArray<readonly [string, number, Schema.JsonObject]>) =>
  Effect.gen(function* () {
    const store = yield* PgEventStore.make()
    // Deposited holds no personal data, so versions newer than this registry knows (written by a newer app) pass.
    const old = yield* CryptoShredding.make(store, { aggregates: [Account], freeOfPersonalData: ["Deposited"] })
    const data = events.map(([type, schemaVersion, data]) => ({
      eventId: EventId.random(),
      type,
      schemaVersion,
      data,
      metadata: {}
    }))
    return yield* old.append(stream, data, ExpectedVersion.any)
  })

const rawVersions = (stream: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{
      schema_version: number
    }>`SELECT schema_version FROM chronicle_events WHERE stream_id = ${stream} ORDER BY version`.pipe(
      Effect.map((rows) => rows.map((row) => row.schema_version))
    )
  )

const tableText = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ text: string | null }>`SELECT string_agg(t::text, ' ') AS text FROM ${sql(table)} t`.pipe(
      Effect.map(([row]) => row?.text ?? "")
    )
  )

layer(Live, { excludeTestServices: true })("bank: event evolution", (it) => {
  it.effect("a stream holding v1, v2 and v3 of Deposited loads to the right state, and new events are v3", () =>
    Effect.gen(function* () {
      yield* appendOld("account-a1", [
        ["AccountOpened", 1, { customerId: "cust-a1", holder: "Ada King Lovelace" }],
        ["Deposited", 1, { amount: 12.5 }],
        ["Deposited", 2, { cents: 300 }],
        ["Deposited", 3, { cents: 200, currency: "USD" }]
      ])
      const loaded = yield* AggregateLoader.load(Account, "a1")
      assert.deepStrictEqual(loaded.state, {
        customerId: "cust-a1",
        holder: "Ada King Lovelace",
        balance: 1750,
        open: true
      })
      const handled = yield* CommandHandler.handle(Account, "a1", { _tag: "Withdraw", cents: 50 })
      assert.strictEqual(handled.state.balance, 1700)
      assert.deepStrictEqual(yield* rawVersions("account-a1"), [1, 1, 2, 3, 1])
      const store = yield* EventStore.EventStore
      const read = yield* Stream.runCollect(store.readStream("account-a1"))
      assert.deepStrictEqual(
        read.map((event) => [event.schemaVersion, event.data]),
        [
          [2, { customerId: "cust-a1", firstName: "Ada", lastName: "King Lovelace" }],
          [3, { cents: 1250, currency: "EUR" }],
          [3, { cents: 300, currency: "EUR" }],
          [3, { cents: 200, currency: "USD" }],
          [1, { cents: 50 }]
        ]
      )
    })
  )

  it.effect("the event upgrade rewrites old versions in batches, archives the originals and resumes", () =>
    Effect.gen(function* () {
      yield* appendOld("account-m1", [
        ["AccountOpened", 1, { customerId: "cust-m1", holder: "Grace Brewster Hopper" }],
        ["Deposited", 1, { amount: 1 }],
        ["Deposited", 1, { amount: 2 }],
        ["Deposited", 2, { cents: 300 }],
        ["Deposited", 2, { cents: 400 }]
      ])
      const before = yield* AggregateLoader.load(Account, "m1")
      const progress: Array<string> = []
      // The first run stops after its first batch of 2, as a crash would.
      const stopped = yield* PgEventUpgrade.run(registry, {
        batchSize: 2,
        onProgress: ({ done, total }) =>
          Effect.sync(() => progress.push(`${done}/${total}`)).pipe(Effect.andThen(Effect.die("stop")))
      }).pipe(Effect.exit)
      assert.isTrue(stopped._tag === "Failure")
      const resumed = yield* PgEventUpgrade.run(registry, {
        batchSize: 2,
        onProgress: ({ done, total }) => Effect.sync(() => progress.push(`${done}/${total}`))
      })
      // 5 old events of this stream plus the 3 the first test left (its v1 opening, v1 and v2 deposits).
      assert.deepStrictEqual(progress, ["2/8", "2/6", "4/6", "6/6"])
      assert.deepStrictEqual(resumed, { done: 6, total: 6 })
      assert.deepStrictEqual(yield* rawVersions("account-m1"), [2, 3, 3, 3, 3])
      assert.deepStrictEqual((yield* AggregateLoader.load(Account, "m1")).state, before.state)
      const sql = yield* SqlClient.SqlClient
      const archived = yield* sql<{ schema_version: number; migrated_to: number }>`
        SELECT schema_version, migrated_to FROM chronicle_events_archive WHERE stream_id = 'account-m1' ORDER BY version`
      assert.deepStrictEqual(
        archived.map((row) => [row.schema_version, row.migrated_to]),
        [
          [1, 2],
          [1, 3],
          [1, 3],
          [2, 3],
          [2, 3]
        ]
      )
      assert.notInclude(
        (yield* tableText("chronicle_events")) + (yield* tableText("chronicle_events_archive")),
        "Brewster"
      )
      assert.deepStrictEqual(yield* PgEventUpgrade.run(registry), { done: 0, total: 0 })
    })
  )
})

layer(Live, { excludeTestServices: true })("bank: undecodable events", (it) => {
  it.effect("an unknown version or a failing transformation is an EventDecodeError naming the facts", () =>
    Effect.gen(function* () {
      const appended = yield* appendOld("account-u1", [
        ["AccountOpened", 2, { customerId: "cust-u1", firstName: "Alan", lastName: "Turing" }],
        ["Deposited", 7, { cents: 1 }]
      ])
      const unknown = yield* AggregateLoader.load(Account, "u1").pipe(Effect.flip)
      assert.strictEqual(unknown._tag, "EventDecodeError")
      assert.deepInclude(unknown, {
        stream: "account-u1",
        version: 2,
        position: appended.position,
        type: "Deposited",
        schemaVersion: 7
      })
      yield* appendOld("account-u2", [["Deposited", 1, { amount: -5 }]])
      const failing = yield* AggregateLoader.load(Account, "u2").pipe(Effect.flip)
      assert.deepInclude(failing, { stream: "account-u2", version: 1, type: "Deposited", schemaVersion: 1 })
      assert.include(failing.message, "cents")
      const migration = yield* PgEventUpgrade.run(registry).pipe(Effect.flip)
      assert.deepInclude(migration, { _tag: "EventDecodeError", stream: "account-u2", schemaVersion: 1 })
    })
  )
})

const Name = Schema.String.check(Schema.isMinLength(8))

layer(Live, { excludeTestServices: true })("bank: a forgotten customer", (it) => {
  it.effect("keys are stored wrapped; a forgotten customer's account still loads, redacted, and stays forgotten", () =>
    Effect.gen(function* () {
      yield* CommandHandler.handle(Account, "f1", {
        _tag: "Open",
        customerId: "cust-f1",
        firstName: "Margaret",
        lastName: "Hamilton"
      })
      yield* CommandHandler.handle(Account, "f1", { _tag: "Deposit", cents: 900 })
      const [key] = (yield* (yield* KeyStore.KeyStore).find(["cust-f1"])).values()
      assert.notInclude(yield* tableText("chronicle_keys"), Buffer.from(key!).toString("base64"))
      assert.strictEqual((yield* AggregateLoader.load(Account, "f1")).state.holder, "Margaret Hamilton")
      yield* CryptoShredding.forget("cust-f1")
      assert.deepStrictEqual((yield* AggregateLoader.load(Account, "f1")).state, {
        customerId: "cust-f1",
        holder: "[forgotten] [forgotten]",
        balance: 900,
        open: true
      })
      const again = yield* CommandHandler.handle(Account, "f2", {
        _tag: "Open",
        customerId: "cust-f1",
        firstName: "Margaret",
        lastName: "Hamilton"
      }).pipe(Effect.flip)
      assert.strictEqual(again._tag, "InvalidAppend")
    })
  )

  it.effect.prop(
    "after forget, no plaintext of the customer is anywhere in the events table",
    { firstName: Name, lastName: Name },
    ({ firstName, lastName }) =>
      Effect.gen(function* () {
        const id = crypto.randomUUID()
        yield* CommandHandler.handle(Account, id, { _tag: "Open", customerId: `cust-${id}`, firstName, lastName })
        yield* appendOld(`account-old${id}`, [
          ["AccountOpened", 1, { customerId: `cust-${id}`, holder: `${firstName} ${lastName}` }]
        ])
        yield* CryptoShredding.forget(`cust-${id}`)
        const text = yield* tableText("chronicle_events")
        for (const plain of [firstName, lastName]) {
          assert.notInclude(text, plain)
          assert.notInclude(text, JSON.stringify(plain).slice(1, -1))
        }
        assert.strictEqual((yield* AggregateLoader.load(Account, id)).state.holder, "[forgotten] [forgotten]")
        // The v1 event (one full-name field) is redacted before it is upcast, and stays redacted in both new fields.
        assert.strictEqual((yield* AggregateLoader.load(Account, `old${id}`)).state.holder, "[forgotten] [forgotten]")
      }),
    { arbitrary: { runs: 15 } }
  )
})
