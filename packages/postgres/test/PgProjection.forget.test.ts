import { randomBytes } from "node:crypto"
import {
  CryptoShredding,
  EventCodec,
  EventId,
  EventStore,
  ExpectedVersion,
  PersonalData,
  StreamName
} from "@chronicle/core"
import { PgEventStore, PgKeyStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { PgTest, PlaintextScan } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, Schema, Stream } from "effect"
import { SqlClient } from "effect/sql"

const forgotten = PersonalData.personal({ redacted: "[forgotten]" })
const Registered = Schema.TaggedStruct("Registered", {
  customerId: Schema.String.pipe(PersonalData.subject),
  name: Schema.String.pipe(forgotten),
  email: Schema.String.pipe(forgotten)
})
const codec = EventCodec.make(Schema.Union([Registered]))
const shredding = { events: [Registered] }

const Live = Layer.mergeAll(CryptoShredding.layer(shredding), PgProjection.layerServices()).pipe(
  Layer.provideMerge(PgEventStore.layer()),
  Layer.provideMerge(PgKeyStore.layer({ masterKey: Redacted.make(randomBytes(32).toString("base64")) })),
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer))
)

/** A read model of customers' names and emails, in `table`, forgetting as `onForget` says. */
const customers = (name: string, onForget: PgProjection.OnForget) =>
  PgProjection.make({
    name,
    table: name,
    categories: ["customer"],
    decode: codec.decode,
    onForget,
    create: (table) =>
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`CREATE TABLE ${sql(table)} (customer_id text PRIMARY KEY, name text, email text)`
      ),
    handle: (table) => (events) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Stream.runForEach(
          events,
          (event) => sql`INSERT INTO ${sql(table)} VALUES (${event.customerId}, ${event.name}, ${event.email})`
        )
      )
  })

const deleting = customers("customers_deleted", { deleteWhere: "customer_id" })
const redacting = customers("customers_redacted", (table, subject) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`UPDATE ${sql(table)} SET name = '[forgotten]', email = '[forgotten]' WHERE customer_id = ${subject}`
  )
)

const caughtUp = (model: typeof deleting) =>
  Effect.scoped(Effect.flatMap(PgProjection.start(model), (runner) => runner.awaitCaughtUp))

const register = (customerId: string, name: string, email: string) =>
  EventStore.EventStore.use((store) =>
    store.append(
      StreamName.make("customer", customerId),
      [
        {
          eventId: EventId.random(),
          type: "Registered",
          schemaVersion: 1,
          data: { customerId, name, email },
          metadata: {}
        }
      ],
      ExpectedVersion.noStream
    )
  )

const ada = ["Ada Lovelace", "ada@example.com"]

layer(Live, { excludeTestServices: true })("PgProjection onForget", (it) => {
  it.effect("deletes or redacts the subject's rows when forget is recorded, also in a rebuild", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* register("c-1", "Ada Lovelace", "ada@example.com")
      yield* register("c-2", "Grace Hopper", "grace@example.com")
      yield* caughtUp(deleting)
      yield* caughtUp(redacting)
      const where = [...new Set((yield* PlaintextScan.postgres(ada)).map((found) => found.where))].sort()
      assert.deepStrictEqual(where, ["public.customers_deleted", "public.customers_redacted"])

      yield* CryptoShredding.forget("c-1")
      yield* caughtUp(deleting)
      yield* caughtUp(redacting)
      assert.deepStrictEqual(yield* PlaintextScan.postgres(ada), [])
      assert.deepStrictEqual(yield* sql`SELECT * FROM customers_deleted`, [
        { customer_id: "c-2", name: "Grace Hopper", email: "grace@example.com" }
      ])
      assert.deepStrictEqual(yield* sql`SELECT * FROM customers_redacted ORDER BY customer_id`, [
        { customer_id: "c-1", name: "[forgotten]", email: "[forgotten]" },
        { customer_id: "c-2", name: "Grace Hopper", email: "grace@example.com" }
      ])

      yield* PgProjection.rebuild(deleting)
      assert.deepStrictEqual(yield* PlaintextScan.postgres(ada), [])
      assert.deepStrictEqual(yield* sql`SELECT customer_id FROM customers_deleted`, [{ customer_id: "c-2" }])
    })
  )

  it.effect("an inline model deletes the subject's rows in the transaction of forget", () =>
    Effect.gen(function* () {
      const model = customers("customers_inline", { deleteWhere: "customer_id" })
      yield* model.create(model.table)
      // Over the sealing store: the model sees the events as the app appends them, the log holds them sealed.
      const inline = yield* Layer.build(PgProjection.layerInline([model]))
      const store = Context.get(inline, EventStore.EventStore)
      const onStore = Effect.provideService(EventStore.EventStore, store)
      yield* onStore(register("c-3", "Alan Turing", "alan@example.com"))
      yield* onStore(register("c-4", "Edsger Dijkstra", "edsger@example.com"))
      const sql = yield* SqlClient.SqlClient
      const rows = sql`SELECT customer_id FROM customers_inline ORDER BY customer_id`
      assert.deepStrictEqual(yield* rows, [{ customer_id: "c-3" }, { customer_id: "c-4" }])
      yield* onStore(CryptoShredding.forget("c-3"))
      assert.deepStrictEqual(yield* rows, [{ customer_id: "c-4" }])
      assert.deepStrictEqual(yield* PlaintextScan.postgres(["Alan Turing", "alan@example.com"]), [])
    }).pipe(Effect.scoped)
  )
})
