/**
 * `pnpm demo:cluster`: carts as entities on three cluster runners. Starts an embedded Postgres 18 (or uses
 * `DATABASE_URL`), applies Chronicle's migrations, and starts three runner processes on loopback that share it (the
 * cluster's runner and message tables live there too). This process joins as a client: it sends commands to six carts,
 * each routed to the runner that owns the cart's shard, then kills one runner with SIGKILL. The others take over its
 * shards; commands that failed are sent again with the same command id, so none is applied twice. It prints each
 * cart's state beside the fold of its stream, and exits 0 when they all agree.
 */
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { AggregateEntity, LocalSharding } from "@chronicle/cluster"
import { AggregateLoader } from "@chronicle/core"
import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { EmbeddedPostgres, FreePort } from "@chronicle/postgres/embedded"
import { NodeClusterSocket, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Console, Data, Effect, Layer, Redacted, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Cart, type Command, type State, State as StateSchema } from "./Cart.ts"
import { Carts } from "./clusterConfig.ts"

const runnerScript = fileURLToPath(new URL("./clusterRunner.ts", import.meta.url))

/** A command the cluster could not answer (its runner died mid-way, or its shard was moving). */
class Undelivered extends Data.TaggedError("Undelivered")<{ readonly defect: unknown }> {}

const encode = (state: State) => JSON.stringify(Schema.encodeSync(StateSchema)(state))
const showState = (state: State) =>
  `${[...state.items].map(([sku, quantity]) => `${sku}×${quantity}`).join(", ") || "(empty)"}${state.checkedOut ? ", checked out" : ""}`

/** Which runner loaded each stream last: where its entity lives now. */
const host = new Map<string, string>()

/** Starts runner `name`; records the streams it loads in `host`, and kills it when the demo ends. */
const startRunner = (url: string, name: string) =>
  Effect.gen(function* () {
    const port = yield* FreePort.pick
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, [runnerScript, url, String(port), name], { stdio: ["ignore", "pipe", "inherit"] })
      ),
      (child) => Effect.sync(() => void (child.exitCode === null && child.kill("SIGKILL")))
    )
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const [, stream] = line.split(" loads ")
      if (stream === undefined) return
      host.set(stream, name)
      console.log(`  (${line})`)
    })
    yield* Console.log(`started ${name} (pid ${child.pid}) on 127.0.0.1:${port}`)
    return { name, child }
  })

const program = (url: string) =>
  Effect.gen(function* () {
    const runners = yield* Effect.all(["runner-1", "runner-2", "runner-3"].map((name) => startRunner(url, name)))
    const send = yield* AggregateEntity.client(Carts)
    // The runners register in the cluster's table; once all three have, shards settle within a second.
    const sql = yield* SqlClient.SqlClient
    yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM cluster_runners WHERE healthy`.pipe(
      Effect.map(([row]) => row?.n ?? 0),
      Effect.catch(() => Effect.succeed(0)),
      Effect.repeat({ schedule: Schedule.spaced("200 millis"), until: (n) => n === runners.length })
    )
    yield* Effect.sleep("1500 millis")
    // Sends until the cluster answers; a re-send carries the same command id, so the cart applies it once.
    const deliver = (cart: string, command: Command, commandId: string) => {
      let attempts = 0
      return Effect.suspend(() => {
        attempts++
        return send(cart, command, { commandId })
      }).pipe(
        Effect.timeout("5 seconds"),
        Effect.catchDefect((defect) => Effect.fail(new Undelivered({ defect }))),
        Effect.retry({
          schedule: Schedule.spaced("200 millis"),
          while: (error) =>
            error._tag === "Undelivered" || error._tag === "TimeoutError" || error._tag === "EntityNotAssignedToRunner"
        }),
        Effect.tap((reply) => Effect.sync(() => last.set(cart, reply))),
        Effect.tap((reply) =>
          Console.log(
            `cart-${cart}  ${command._tag.padEnd(8)} ${commandId.padEnd(10)} → v${reply.version}, ${reply.written} written${attempts > 1 ? `, answered after ${attempts} attempts` : ""}`
          )
        )
      )
    }
    const last = new Map<string, AggregateEntity.Reply<State>>()
    const carts = Array.from({ length: 6 }, (_, i) => `${crypto.randomUUID().slice(0, 6)}${i}`)

    yield* Console.log("\nEach cart's commands go to the runner that owns its shard:")
    yield* Effect.forEach(carts, (cart) => deliver(cart, { _tag: "AddItem", sku: "apple", quantity: 2 }, "add-apple"), {
      concurrency: "unbounded"
    })
    const victim = runners.find((runner) => runner.name === host.get(`cart-${carts[0]}`)) ?? runners[0]!
    const held = carts.filter((cart) => host.get(`cart-${cart}`) === victim.name)
    victim.child.kill("SIGKILL")
    yield* Console.log(
      `\nKilled ${victim.name} with SIGKILL; it held ${held.map((cart) => `cart-${cart}`).join(", ")}.`
    )
    yield* Console.log("The other runners take its shards; failed commands are re-sent with the same id:")
    yield* Effect.forEach(
      carts,
      (cart) =>
        Effect.andThen(
          deliver(cart, { _tag: "AddItem", sku: "pear", quantity: 1 }, "add-pear"),
          deliver(cart, { _tag: "CheckOut" }, "check-out")
        ),
      { concurrency: "unbounded" }
    )
    yield* Console.log("\nA re-sent command id writes nothing:")
    yield* deliver(carts[0]!, { _tag: "AddItem", sku: "pear", quantity: 1 }, "add-pear")

    yield* Console.log("\nEach cart as its entity last answered, beside the fold of its stream:")
    let agree = true
    for (const cart of carts) {
      const reply = last.get(cart)!
      const folded = yield* AggregateLoader.load(Cart, cart)
      const same = encode(reply.state) === encode(folded.state)
      agree &&= same && folded.version === 3
      yield* Console.log(`cart-${cart}  v${folded.version}  ${showState(reply.state)}  ${same ? "= fold" : "≠ fold"}`)
    }
    const survivors = runners.filter((runner) => runner !== victim && runner.child.exitCode === null)
    yield* Console.log(`\n${survivors.length} runners still up: ${survivors.map((runner) => runner.name).join(", ")}`)
    if (!agree) return yield* Effect.die(new Error("a cart's state differs from the fold of its stream"))
  }).pipe(Effect.scoped)

Effect.gen(function* () {
  const url = yield* EmbeddedPostgres.databaseUrl
  const Pg = PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })
  const Client = Layer.mergeAll(
    NodeClusterSocket.layer({ clientOnly: true, storage: "sql", shardingConfig: LocalSharding.client() }),
    PgEventStore.layer()
  ).pipe(Layer.provideMerge(PgMigrations.layer), Layer.provideMerge(Pg))
  yield* program(url).pipe(Effect.provide(Client))
}).pipe(Effect.scoped, NodeRuntime.runMain)
