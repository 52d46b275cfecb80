/**
 * Aggregates as entities: on one runner (in memory), the state kept between commands, passivation and reload,
 * conflicts, command ids and typed errors; then three runner processes on one Postgres, 32 concurrent senders on 4 hot
 * aggregates, one runner killed with SIGKILL mid-load.
 */
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { AggregateLoader, CommandHandler, EventId, EventStore } from "@chronicle/core"
import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { FreePort } from "@chronicle/postgres/embedded"
import { PgTest } from "@chronicle/testing"
import { NodeClusterSocket } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Ref, Schedule, Stream } from "effect"
import { Sharding, TestRunner } from "effect/cluster"
import { SqlClient } from "effect/sql"
import { AggregateEntity, LocalSharding } from "../src/index.ts"
import { Account, Accounts, type State } from "./fixtures/Account.ts"

// The in-memory store, counting the streams read (a load reads its stream once); `failAppend` makes the next append
// fail as if the database were gone.
const reads = Ref.makeUnsafe(0)
const failAppend = Ref.makeUnsafe(false)
const CountingStore = Layer.effect(
  EventStore.EventStore,
  Effect.map(EventStore.makeMemory, (store) =>
    EventStore.EventStore.of({
      ...store,
      append: (stream, events, expected) =>
        Effect.flatMap(Ref.getAndSet(failAppend, false), (fail) =>
          fail
            ? Effect.fail(new EventStore.EventStoreError({ operation: "append", stream, cause: new Error("gone") }))
            : store.append(stream, events, expected)
        ),
      readStream: (stream, options) =>
        Stream.unwrap(
          Effect.as(
            Ref.update(reads, (n) => n + 1),
            store.readStream(stream, options)
          )
        )
    })
  )
)

const Live = AggregateEntity.layer(Accounts, { maxIdleTime: "1 second" }).pipe(
  Layer.provideMerge(TestRunner.layer),
  Layer.provideMerge(CountingStore)
)

const deposit = (amount: number) => ({ _tag: "Deposit" as const, amount })
// Waits until the idle entities have passivated (the cluster checks every 5 seconds).
const passivated = Effect.gen(function* () {
  const sharding = yield* Sharding.Sharding
  while ((yield* sharding.activeEntityCount) > 0) yield* Effect.sleep("100 millis")
}).pipe(Effect.timeout("30 seconds"))

// The fold of the stream as stored.
const stateOf = (id: string) => Effect.map(AggregateLoader.load(Account, id), (loaded) => loaded.state)

describe("AggregateEntity", () => {
  it.live("keeps the state between commands, passivates when idle, and loads again", () =>
    Effect.gen(function* () {
      yield* Ref.set(reads, 0)
      const send = yield* AggregateEntity.client(Accounts)
      for (let i = 1; i <= 3; i++) yield* send("a", deposit(i), { commandId: `a-${i}` })
      assert.strictEqual(yield* Ref.get(reads), 1, "one load for three commands")
      yield* passivated
      const reply = yield* send("a", deposit(10))
      assert.strictEqual(yield* Ref.get(reads), 2, "passivated, then loaded from the store")
      assert.deepStrictEqual(reply, { stream: "account-a", version: 4, written: 1, state: { balance: 16, events: 4 } })
      // A command id handled before the entity passivated is still recognised after the reload.
      assert.deepStrictEqual(yield* send("a", deposit(2), { commandId: "a-2" }), { ...reply, written: 0 })
    }).pipe(Effect.provide(Live))
  )

  it.live("a write behind the entity's back is a conflict: it reloads, decides again, and loses nothing", () =>
    Effect.gen(function* () {
      const send = yield* AggregateEntity.client(Accounts)
      yield* send("b", deposit(1))
      yield* CommandHandler.handle(Account, "b", deposit(100))
      const reply = yield* send("b", deposit(50))
      assert.deepStrictEqual(reply.state, { balance: 151, events: 3 })
      assert.strictEqual(reply.version, 3)
      assert.deepStrictEqual(yield* stateOf("b"), reply.state)
    }).pipe(Effect.provide(Live))
  )

  it.live("a re-sent command id writes nothing and replies with the current state", () =>
    Effect.gen(function* () {
      const send = yield* AggregateEntity.client(Accounts)
      const first = yield* send("c", deposit(5), { commandId: "pay-1" })
      const again = yield* send("c", deposit(5), { commandId: "pay-1" })
      assert.deepStrictEqual(first, { stream: "account-c", version: 1, written: 1, state: { balance: 5, events: 1 } })
      assert.deepStrictEqual(again, { ...first, written: 0 })
      assert.deepStrictEqual(yield* stateOf("c"), { balance: 5, events: 1 })
    }).pipe(Effect.provide(Live))
  )

  it.live("a refusal keeps the state; a store failure arrives typed and drops it, so the next command loads", () =>
    Effect.gen(function* () {
      const send = yield* AggregateEntity.client(Accounts)
      yield* send("e", deposit(5))
      const before = yield* Ref.get(reads)
      yield* Effect.flip(send("e", { _tag: "Withdraw", amount: 50 }))
      yield* send("e", deposit(1))
      assert.strictEqual(yield* Ref.get(reads), before, "no load after a refusal")
      yield* Ref.set(failAppend, true)
      const failed = yield* Effect.flip(send("e", deposit(1)))
      assert.strictEqual(failed._tag, "EventStoreError")
      assert.strictEqual(failed._tag === "EventStoreError" && failed.operation, "append")
      const reply = yield* send("e", deposit(1))
      assert.strictEqual(yield* Ref.get(reads), before + 1, "loaded again after the failure")
      assert.deepStrictEqual(reply.state, { balance: 7, events: 3 })
    }).pipe(Effect.provide(Live))
  )

  it.live("the domain's refusal and a bad command arrive as typed errors", () =>
    Effect.gen(function* () {
      const send = yield* AggregateEntity.client(Accounts)
      const refused = yield* Effect.flip(send("d", { _tag: "Withdraw", amount: 3 }))
      assert.strictEqual(refused._tag, "InsufficientFunds")
      assert.deepStrictEqual(refused._tag === "InsufficientFunds" && [refused.balance, refused.requested], [0, 3])
      const error = yield* Effect.flip(send("d", deposit(-1)))
      assert.strictEqual(error._tag, "InvalidCommand")
      assert.strictEqual(error._tag === "InvalidCommand" && error.path, "amount")
    }).pipe(Effect.provide(Live))
  )
})

// ── Three runner processes on one Postgres, one of them killed mid-load ──

const node = fileURLToPath(new URL("../../../node_modules/node/bin/node", import.meta.url))
const runnerScript = fileURLToPath(new URL("./fixtures/entityRunner.ts", import.meta.url))

/** Which runner process loaded each stream last: where its entity lives now. */
const host = new Map<string, number>()

/** A runner process; it records the streams it loads in `host`, and is killed when the scope closes. */
const runner = (url: string) =>
  Effect.gen(function* () {
    const port = yield* FreePort.pick
    const process = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(node, [runnerScript, url, String(port)], { stdio: ["ignore", "pipe", "inherit"] })),
      (process) => Effect.sync(() => void (process.exitCode === null && process.kill("SIGKILL")))
    )
    createInterface({ input: process.stdout! }).on("line", (line) => {
      if (line.startsWith("loaded ")) host.set(line.slice("loaded ".length), process.pid!)
    })
    return process
  })

const senders = 32
const perSender = 8
const hot = ["h0", "h1", "h2", "h3"]

describe("AggregateEntity on three runner processes", () => {
  it.live(
    "a runner killed mid-load: every command applied once, each state equal to the fold of its stream",
    () =>
      Effect.gen(function* () {
        const url = yield* PgTest.database
        const Pg = PgClient.layer({ url: Redacted.make(url), maxConnections: 8 })
        yield* Effect.gen(function* () {
          const runners = yield* Effect.all([runner(url), runner(url), runner(url)])
          const send = yield* AggregateEntity.client(Accounts)
          // A sender re-sends a command that failed (its runner died, its shard moved) with the same id until it is
          // answered.
          let answered = 0
          const last = new Map<string, AggregateEntity.Reply<State>>()
          const sendOnce = (id: string, amount: number, commandId: string) =>
            send(id, { _tag: "Deposit", amount }, { commandId }).pipe(
              Effect.timeout("5 seconds"),
              Effect.sandbox,
              Effect.retry(Schedule.spaced("100 millis")),
              Effect.tap((reply) =>
                Effect.sync(() => {
                  answered++
                  if (reply.version > (last.get(id)?.version ?? 0)) last.set(id, reply)
                })
              )
            )
          const load = Effect.forEach(
            Array.from({ length: senders }, (_, s) => s),
            (s) =>
              Effect.forEach(
                Array.from({ length: perSender }, (_, i) => i),
                (i) => sendOnce(hot[(s + i) % hot.length]!, s + 1, `s${s}-${i}`),
                { discard: true }
              ),
            { concurrency: "unbounded", discard: true }
          )
          const killer = Effect.gen(function* () {
            while (answered < (senders * perSender) / 4) yield* Effect.sleep("20 millis")
            const victim = runners.find((process) => process.pid === host.get("account-h0"))!
            victim.kill("SIGKILL")
            return answered
          })
          const [, killedAt] = yield* Effect.all([load, killer], { concurrency: 2 })
          assert.isBelow(killedAt, senders * perSender, "the runner died while commands were still coming")

          const sql = yield* SqlClient.SqlClient
          for (const id of hot) {
            const stream = `account-${id}`
            const ids = new Set(
              (yield* sql<{ id: string }>`
                SELECT event_id::text AS id FROM chronicle_events WHERE stream_id = ${stream}`).map((row) => row.id)
            )
            const expected = Array.from({ length: senders }, (_, s) => s).flatMap((s) =>
              Array.from({ length: perSender }, (_, i) => i)
                .filter((i) => hot[(s + i) % hot.length] === id)
                .map((i) => EventId.fromCommand(stream, `s${s}-${i}`, 0))
            )
            assert.strictEqual(ids.size, expected.length, `${stream}: one event per command`)
            assert.isTrue(
              expected.every((eventId) => ids.has(eventId)),
              `${stream}: every command applied`
            )
            const folded = yield* AggregateLoader.load(Account, id)
            assert.deepStrictEqual(last.get(id)?.state, folded.state, `${stream}: the entity's state is the fold`)
            assert.strictEqual(folded.version, expected.length)
          }
          const survivors = runners.filter((child) => child.exitCode === null && child.signalCode === null)
          assert.strictEqual(survivors.length, 2)
        }).pipe(
          Effect.scoped,
          Effect.provide(
            Layer.mergeAll(
              NodeClusterSocket.layer({ clientOnly: true, storage: "sql", shardingConfig: LocalSharding.client() }),
              PgEventStore.layer()
            ).pipe(Layer.provideMerge(PgMigrations.layer), Layer.provideMerge(Pg), Layer.orDie)
          )
        )
      }),
    180_000
  )
})
