/**
 * Forgetting a subject in a full app: two customers of the bank, snapshots, a Postgres read model holding their
 * names (its `onForget` deletes a forgotten customer's rows), a projection that parks events in the dead letters, the
 * outbox publishing to a real nats-server from the app's own (decrypting) store, an event migration that archives the
 * old rows, and commands for the forgotten customer in flight while `forget` runs.
 * Afterwards neither Postgres nor JetStream holds the forgotten customer's name in any form, everything still loads
 * (redacted), and the other customer's data is intact.
 */
import { randomBytes } from "node:crypto"
import {
  AggregateLoader,
  CommandHandler,
  CryptoShredding,
  EventId,
  ExpectedVersion,
  Outbox,
  Projection,
  Publisher,
  SnapshotPolicy,
  StreamName,
  Upcasting
} from "@chronicle/core"
import { NatsConsumer, NatsMessage, NatsPublisher } from "@chronicle/nats"
import {
  PgCheckpointStore,
  PgEventStore,
  PgEventUpgrade,
  PgKeyStore,
  PgLease,
  PgMigrations,
  PgProjection,
  PgSnapshotStore
} from "@chronicle/postgres"
import { NatsServer, PgTest, PlaintextScan } from "@chronicle/testing"
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, Schedule, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Account, type Command } from "../examples/bank/src/Account.ts"

class Nats extends Context.Service<Nats, NatsServer.Server>()("test/Forget/Nats") {}

const shredding = { aggregates: [Account] }
const registry = CryptoShredding.registryOf(shredding)
const masterKey = Redacted.make(randomBytes(32).toString("base64"))
const stream = "BANK"

const Db = Layer.mergeAll(PgKeyStore.layer({ masterKey }), Layer.effect(Nats, NatsServer.scoped)).pipe(
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer))
)
// The app's stores: upcasting over crypto-shredding over Postgres; snapshots sealed too.
const App = Layer.mergeAll(
  Upcasting.layer(registry).pipe(Layer.provide(CryptoShredding.layer(shredding)), Layer.provide(PgEventStore.layer())),
  CryptoShredding.layerSnapshots(shredding).pipe(Layer.provide(PgSnapshotStore.layer)),
  PgProjection.layerServices({ retryInterval: "50 millis", heartbeatInterval: "200 millis" })
).pipe(Layer.provideMerge(Db))

// The outbox reads the app's store (upcasting over crypto-shredding) and still publishes what is stored: sealed values.
const OutboxLive = Layer.unwrap(
  Effect.map(Nats, (server: NatsServer.Server) =>
    Outbox.layer({ name: "bank", categories: [Account.category], minBackoff: "20 millis" }).pipe(
      Layer.provide(
        Layer.effect(
          Publisher.Publisher,
          NatsPublisher.make({
            servers: server.url,
            subject: (event) => NatsMessage.subject(event, stream),
            stream: { name: stream, subjects: [`${stream}.>`] }
          })
        )
      ),
      Layer.provide(PgCheckpointStore.layer),
      Layer.provide(PgLease.layer({ retryInterval: "50 millis", heartbeatInterval: "200 millis" }))
    )
  )
)

const decodeAccount = Projection.decodeWith(Account.events)

/** The read model: each account's customer and holder name; the customer's rows are deleted when forgotten. */
const holders = PgProjection.make({
  name: "account-holders",
  table: "account_holders",
  categories: [Account.category],
  decode: decodeAccount,
  onForget: { deleteWhere: "customer_id" },
  create: (table) =>
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) =>
        sql`CREATE TABLE ${sql(table)} (account_id text PRIMARY KEY, customer_id text NOT NULL, holder text NOT NULL)`
    ),
  handle: (table) => (events) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Stream.runForEach(events, ({ stream, event }) => {
        if (event._tag !== "AccountOpened") return Effect.void
        const holder = `${event.firstName} ${event.lastName}`
        return Effect.asVoid(sql`
          INSERT INTO ${sql(table)} VALUES (${StreamName.id(stream)}, ${event.customerId}, ${holder})
          ON CONFLICT (account_id) DO UPDATE SET holder = excluded.holder`)
      })
    )
})

/** A projection that cannot handle withdrawals: it parks them in the dead letters. */
const strict = PgProjection.make({
  name: "strict",
  table: "strict_deposits",
  categories: [Account.category],
  decode: decodeAccount,
  retries: 0,
  onFailure: "park",
  create: (table) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE ${sql(table)} (n int)`),
  handle: () => (events) =>
    Stream.runForEach(events, ({ event }) => (event._tag === "Withdrawn" ? Effect.fail("no withdrawals") : Effect.void))
})

const caughtUp = <A, Err, R>(model: PgProjection.ReadModel<A, Err, R>) =>
  Effect.gen(function* () {
    const runner = yield* PgProjection.start(model)
    yield* runner.status.pipe(Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (s) => s.lag === 0n }))
  }).pipe(Effect.scoped)

const ada = ["Ada King Lovelace", "Lovelace", "Ada King"]
const grace = ["Grace Hopper", "Hopper"]

describe.skipIf(NatsServer.skip())("forget reaches everything", () => {
  layer(App, { excludeTestServices: true })("a full app", (it) => {
    it.effect(
      "after forget no copy holds the subject's plaintext; all loads, redacted; the other subject is intact",
      () =>
        Effect.gen(function* () {
          const server = yield* Nats
          const send = (id: string, command: Command) => CommandHandler.handle(Account, id, command)
          const withSnapshots = SnapshotPolicy.layer(SnapshotPolicy.everyEvents(1))

          // Ada's account as an older app stored it (v1 events), Grace's through today's commands.
          const asStored = yield* CryptoShredding.make(yield* PgEventStore.make(), shredding)
          const old = (type: string, schemaVersion: number, data: object) => ({
            eventId: EventId.random(),
            type,
            schemaVersion,
            data: data as never,
            metadata: {}
          })
          yield* asStored.append(
            "account-a",
            [
              old("AccountOpened", 1, { customerId: "cust-a", holder: "Ada King Lovelace" }),
              old("Deposited", 1, { amount: 10 })
            ],
            ExpectedVersion.noStream
          )
          yield* Effect.gen(function* () {
            yield* send("b", { _tag: "Open", customerId: "cust-b", firstName: "Grace", lastName: "Hopper" })
            yield* send("b", { _tag: "Deposit", cents: 500 })
            yield* send("a", { _tag: "Deposit", cents: 500 })
            yield* send("a", { _tag: "Withdraw", cents: 100 })
          }).pipe(Effect.provide(withSnapshots))
          yield* PgEventUpgrade.run(registry, { onProgress: () => Effect.void }) // keeps the v1 rows in the archive

          yield* caughtUp(holders)
          yield* caughtUp(strict)
          const sql = yield* SqlClient.SqlClient
          assert.strictEqual((yield* sql`SELECT 1 FROM chronicle_dead_letters`).length, 1)
          assert.strictEqual((yield* sql`SELECT 1 FROM chronicle_events_archive`).length, 2)
          assert.strictEqual((yield* sql`SELECT 1 FROM chronicle_snapshots`).length, 2)
          assert.deepStrictEqual(
            [...new Set((yield* PlaintextScan.postgres(ada)).map((f) => f.where))],
            ["public.account_holders"] // before forget: only the read model holds names in the clear
          )

          // Commands for Ada in flight while she is forgotten; their snapshot saves may land after the forget.
          const forgotten = yield* Effect.gen(function* () {
            const [, result] = yield* Effect.all(
              [
                Effect.forEach([1, 2, 3, 4], (n) => send("a", { _tag: "Deposit", cents: n }), {
                  concurrency: "unbounded"
                }),
                CryptoShredding.forget("cust-a")
              ],
              { concurrency: "unbounded" }
            )
            return result
          }).pipe(Effect.provide(withSnapshots))
          assert.isTrue(forgotten.now)
          assert.isFalse((yield* CryptoShredding.forget("cust-a")).now)
          const refused = yield* send("a2", {
            _tag: "Open",
            customerId: "cust-a",
            firstName: "Ada",
            lastName: "Byron"
          }).pipe(Effect.flip)
          assert.strictEqual(refused._tag, "InvalidAppend")

          // Every copy catches up: the read model meets the fact, the outbox publishes everything.
          yield* caughtUp(holders)
          yield* caughtUp(strict)
          const last = yield* send("b", { _tag: "Deposit", cents: 1 })
          yield* Effect.gen(function* () {
            yield* Layer.build(OutboxLive)
            const lastId = [...(yield* AggregateLoader.load(Account, "b")).eventIds].at(-1)!
            yield* PlaintextScan.jetStream({ url: server.url, stream, values: [lastId] }).pipe(
              Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (found) => found.length > 0 }),
              Effect.catchTag("ScanError", () => Effect.succeed([])),
              Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (found) => found.length > 0 })
            )
          }).pipe(Effect.scoped)
          assert.isTrue(last.events.length === 1)

          // Nothing of Ada, in any form, anywhere; Grace only in the read model (events, snapshots, broker: sealed).
          assert.deepStrictEqual(yield* PlaintextScan.postgres(ada), [])
          assert.deepStrictEqual(yield* PlaintextScan.jetStream({ url: server.url, stream, values: ada }), [])
          assert.deepStrictEqual(
            [...new Set((yield* PlaintextScan.postgres(grace)).map((f) => f.where))],
            ["public.account_holders"]
          )
          assert.deepStrictEqual(yield* PlaintextScan.jetStream({ url: server.url, stream, values: grace }), [])
          assert.isAbove((yield* PlaintextScan.jetStream({ url: server.url, stream, values: ["$personal"] })).length, 0)

          // A Chronicle consumer opens what the broker carries through the key store: Ada redacted, Grace readable.
          const open = yield* CryptoShredding.opener(shredding)
          const opened = yield* Effect.gen(function* () {
            const consumer = yield* NatsConsumer.make({ servers: server.url, stream, consumer: "holders" })
            const names = new Map<string, string>()
            while (names.size < 2) {
              const delivery = yield* consumer.next
              const event = yield* open(delivery.event)
              if (event.type === "AccountOpened") {
                const data = event.data as {
                  customerId: string
                  holder?: string
                  firstName?: string
                  lastName?: string
                }
                names.set(
                  `${data.customerId} v${event.schemaVersion}`,
                  data.holder ?? `${data.firstName} ${data.lastName}`
                )
              }
              yield* delivery.ack
            }
            return Object.fromEntries(names)
          }).pipe(Effect.scoped)
          assert.deepStrictEqual(opened, { "cust-a v2": "[forgotten] [forgotten]", "cust-b v2": "Grace Hopper" })

          // Everything loads: Ada redacted with her whole balance, Grace intact.
          const a = yield* AggregateLoader.load(Account, "a")
          assert.deepStrictEqual(a.state, {
            customerId: "cust-a",
            holder: "[forgotten] [forgotten]",
            balance: 1000 + 500 - 100 + 1 + 2 + 3 + 4,
            open: true
          })
          const b = yield* AggregateLoader.load(Account, "b")
          assert.deepStrictEqual(b.state, { customerId: "cust-b", holder: "Grace Hopper", balance: 501, open: true })
          assert.deepStrictEqual(yield* sql`SELECT account_id, holder FROM account_holders`, [
            { account_id: "b", holder: "Grace Hopper" }
          ])
        })
    )
  })
})
