/**
 * `pnpm demo:bank`: a bank account whose events changed shape over the years, and a customer who asked to be
 * forgotten, on a real Postgres. Starts an embedded Postgres 18 (or uses `DATABASE_URL`), applies Chronicle's
 * migrations, writes an account's early history in its old shapes and loads it through the upcasting store, handles
 * new commands, runs a balance read model with a bug and rebuilds it fixed, forgets the customer, and finally
 * migrates the old events to their current versions. Personal fields are sealed under keys kept in Postgres.
 */
import { randomBytes } from "node:crypto"
import {
  AggregateLoader,
  CommandHandler,
  CryptoShredding,
  Decider,
  EventId,
  type EventStore,
  ExpectedVersion,
  Projection,
  StreamName,
  Upcasting
} from "@chronicle/core"
import { PgEventStore, PgEventUpgrade, PgKeyStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Layer, Redacted, type Schema, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Account, type Command, registry, type State } from "./Account.ts"

const euros = (cents: number) => `€${(cents / 100).toFixed(2)}`
const showState = (state: State) => `${state.holder}, ${euros(state.balance)}`

/** Prints each event of the stream as it is stored (opened, not upcast), then as the app reads it today. */
const showHistory = (asStored: EventStore.Service, stream: string) => {
  const upcast = Upcasting.upcast(registry)
  let state = Account.decider.initialState
  return asStored.readStream(stream).pipe(
    Stream.mapEffect((stored) => {
      const read = upcast(stored)
      return Effect.map(Effect.fromResult(Account.events.decode(read)), (event) => ({ stored, read, event }))
    }),
    Stream.runForEach(({ stored, read, event }) => {
      state = Decider.fold(Account.decider, [event], state)
      return Console.log(
        `  stored v${stored.schemaVersion} ${stored.type} ${JSON.stringify(stored.data)}\n` +
          `  read   v${read.schemaVersion} ${read.type} ${JSON.stringify(read.data)} → ${showState(state)}`
      )
    })
  )
}

const send = (id: string, command: Command) => {
  const { _tag, ...fields } = command
  return CommandHandler.handle(Account, id, command).pipe(
    Effect.tap((handled) =>
      Console.log(
        `  ${_tag.padEnd(8)} ${JSON.stringify(fields).padEnd(15)} → ${handled.events.map((event) => event._tag).join(", ")}, ${euros(handled.state.balance)}`
      )
    ),
    Effect.catchTag("InsufficientFunds", (error) =>
      Console.log(`  ${_tag.padEnd(8)} ${JSON.stringify(fields).padEnd(15)} refused: ${error.message}`)
    )
  )
}

const storedVersions = (stream: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ type: string; schema_version: number }>`
      SELECT type, schema_version FROM chronicle_events WHERE stream_id = ${stream} ORDER BY version`.pipe(
      Effect.map((rows) => rows.map((row) => `${row.type} v${row.schema_version}`).join(", "))
    )
  )

const decode = Projection.decodeWith(Account.events)

/** The balance of every account in table `account_balance`; with `withdrawals: false` it has the demo's bug. */
const balances = (withdrawals: boolean) =>
  PgProjection.make({
    name: "account-balance",
    table: "account_balance",
    categories: [Account.category],
    decode,
    batchSize: 2, // small batches, so that rebuilding a handful of events reports progress more than once
    create: (table) =>
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`CREATE TABLE ${sql(table)} (account_id text PRIMARY KEY, balance int NOT NULL)`
      ),
    handle: (table) => (events) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Stream.runForEach(events, ({ stream, event }) => {
          const cents =
            event._tag === "Deposited" ? event.cents : event._tag === "Withdrawn" && withdrawals ? -event.cents : 0
          return sql`
            INSERT INTO ${sql(table)} (account_id, balance) VALUES (${StreamName.id(stream)}, ${cents})
            ON CONFLICT (account_id) DO UPDATE SET balance = ${sql(table)}.balance + excluded.balance`
        })
      )
  })

const readBalance = (id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ balance: number }>`SELECT balance FROM account_balance WHERE account_id = ${id}`
  ).pipe(Effect.map(([row]) => euros(row?.balance ?? 0)))

/** Runs the model's live runner until it has caught up with the log, then stops it. */
const runUntilCaughtUp = (model: ReturnType<typeof balances>) =>
  Effect.gen(function* () {
    const runner = yield* PgProjection.start(model)
    yield* runner.awaitCaughtUp
  }).pipe(Effect.scoped)

const eventsText = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ text: string | null }>`SELECT string_agg(t::text, ' ') AS text FROM chronicle_events t`
).pipe(Effect.map(([row]) => row?.text ?? ""))

const program = Effect.gen(function* () {
  const id = crypto.randomUUID().slice(0, 8)
  const stream = `${Account.category}-${id}`
  const customerId = `cust-${id}` // pseudonymous: subject ids are stored in the clear
  // The store as an older version of the app used it: personal fields sealed, events written in their old shapes.
  const store = yield* PgEventStore.make()
  const asStored = yield* CryptoShredding.make(store, { aggregates: [Account] })

  yield* Console.log(`\n1. ${stream} as older versions of the app stored it, and as the app reads it today:`)
  const old: ReadonlyArray<readonly [string, number, Schema.JsonObject]> = [
    ["AccountOpened", 1, { customerId, holder: "Ada King Lovelace" }],
    ["Deposited", 1, { amount: 12.5 }],
    ["Deposited", 2, { cents: 300 }]
  ]
  const written = old.map(([type, schemaVersion, data]) => ({
    eventId: EventId.random(),
    type,
    schemaVersion,
    data,
    metadata: {}
  }))
  yield* asStored.append(stream, written, ExpectedVersion.any)
  yield* showHistory(asStored, stream)
  yield* Console.log(
    `  Loaded through the upcasting store: ${showState((yield* AggregateLoader.load(Account, id)).state)}`
  )

  yield* Console.log("\n2. New commands write the current versions:")
  yield* send(id, { _tag: "Deposit", cents: 1000 })
  yield* send(id, { _tag: "Withdraw", cents: 800 })
  yield* send(id, { _tag: "Withdraw", cents: 5000 })
  yield* Console.log(`  Stored: ${yield* storedVersions(stream)}`)

  yield* Console.log("\n3. A balance read model (PgProjection, table account_balance):")
  yield* runUntilCaughtUp(balances(false))
  const truth = euros((yield* AggregateLoader.load(Account, id)).state.balance)
  yield* Console.log(`  Handler v1 (bug: ignores withdrawals) caught up: ${yield* readBalance(id)}, not ${truth}`)
  yield* Console.log("  Fix the handler, rebuild aside and swap in:")
  yield* PgProjection.rebuild(balances(true), {
    onProgress: ({ done, total }) => Console.log(`    rebuilt ${done}/${total} events`)
  })
  yield* Console.log(`  Handler v2 rebuilt: ${yield* readBalance(id)}`)

  yield* Console.log(`\n4. Forget the customer ${customerId} (CryptoShredding.forget deletes their data key):`)
  const forgotten = yield* CryptoShredding.forget(customerId)
  yield* Console.log(
    `  Recorded SubjectForgotten at position ${forgotten.position}; key deleted in the same transaction`
  )
  yield* Console.log(`  Loaded again: ${showState((yield* AggregateLoader.load(Account, id)).state)}`)
  const found = (yield* eventsText).includes("Lovelace")
  yield* Console.log(
    `  "Lovelace" in chronicle_events as plain text: ${found ? "FOUND" : "nowhere"} (sealed on append; its key is gone)`
  )

  yield* Console.log("\n5. The event upgrade rewrites old versions in place (originals kept in the archive table):")
  yield* PgEventUpgrade.run(registry, {
    batchSize: 2,
    onProgress: ({ done, total }) => Console.log(`    migrated ${done}/${total} events`)
  })
  yield* Console.log(`  Stored: ${yield* storedVersions(stream)}`)
  yield* Console.log(`  Loaded again: ${showState((yield* AggregateLoader.load(Account, id)).state)}`)
}).pipe(Effect.scoped)

// A real app reads its master key from config (`PgKeyStore.layerConfig`: CHRONICLE_MASTER_KEY, 32 bytes, base64);
// the demo uses it when set (so `chronicle` can open the demo's data afterwards), else random bytes for this run.
const masterKey = Redacted.make(process.env.CHRONICLE_MASTER_KEY || randomBytes(32).toString("base64"))

// The app's store: upcasting over crypto-shredding over Postgres, with keys and read models in Postgres.
const Live = Layer.mergeAll(
  Upcasting.layer(registry).pipe(
    Layer.provide(CryptoShredding.layer({ aggregates: [Account] })),
    Layer.provide(PgEventStore.layer())
  ),
  PgProjection.layerServices()
).pipe(
  Layer.provideMerge(PgKeyStore.layer({ masterKey })),
  Layer.provideMerge(PgMigrations.layer),
  Layer.provideMerge(
    Layer.unwrap(
      Effect.map(EmbeddedPostgres.databaseUrl, (url) => PgClient.layer({ url: Redacted.make(url), maxConnections: 8 }))
    )
  )
)

Console.log(
  process.env.CHRONICLE_MASTER_KEY
    ? "Master key: from CHRONICLE_MASTER_KEY."
    : "Master key: 32 random bytes for this run (a real app reads CHRONICLE_MASTER_KEY)."
).pipe(Effect.andThen(program), Effect.provide(Live), NodeRuntime.runMain)
