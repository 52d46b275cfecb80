import { spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { Export } from "@chronicle/cli"
import { EventStore } from "@chronicle/core"
import { PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as CartFunnel from "../src/CartFunnel.ts"
import * as DuckDb from "../src/DuckDb.ts"
import * as ShopSessions from "../src/ShopSessions.ts"

const Database = PgTest.layer({ maxConnections: 8 })

const Live = Layer.mergeAll(PgEventStore.layer({ pollInterval: "100 millis" }), PgProjection.layerServices()).pipe(
  Layer.provideMerge(PgMigrations.layer),
  Layer.provideMerge(Database)
)

/** The report computed by hand from the sessions: the answer both ways must give. */
const reference = (sessions: ReadonlyArray<ShopSessions.Session>, top = 5): CartFunnel.Report => {
  const funnel = { opened: 0, added: 0, removed: 0, checkedOut: 0 }
  const removed = new Map<string, { removals: number; units: number }>()
  const seconds: Array<number> = []
  for (const session of sessions) {
    const events = ShopSessions.events(session)
    if (events.length === 0) continue
    const added = events.filter(({ event }) => event._tag === "ItemAdded")
    const removals = events.flatMap(({ event }) => (event._tag === "ItemRemoved" ? [event] : []))
    const checkout = events.find(({ event }) => event._tag === "CheckedOut")
    funnel.opened += 1
    if (added.length > 0) funnel.added += 1
    if (removals.length > 0) funnel.removed += 1
    if (checkout === undefined) continue
    funnel.checkedOut += 1
    seconds.push((checkout.at.getTime() - added[0]!.at.getTime()) / 1000)
    for (const { sku, quantity } of removals) {
      const totals = removed.get(sku) ?? { removals: 0, units: 0 }
      removed.set(sku, { removals: totals.removals + 1, units: totals.units + quantity })
    }
  }
  const sorted = [...seconds].sort((a, b) => a - b)
  const middle = sorted.length / 2
  const median = sorted.length % 2 === 1 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2
  const mean = seconds.reduce((sum, s) => sum + s, 0) / seconds.length
  return {
    funnel,
    topRemoved: [...removed]
      .map(([sku, totals]) => ({ sku, ...totals }))
      .sort((a, b) => b.removals - a.removals || b.units - a.units || a.sku.localeCompare(b.sku))
      .slice(0, top),
    timeToCheckout: {
      carts: seconds.length,
      medianSeconds: seconds.length === 0 ? null : Math.round(median * 10) / 10,
      meanSeconds: seconds.length === 0 ? null : Math.round(mean * 10) / 10
    }
  }
}

const at = (seconds: number) => new Date(Date.UTC(2026, 10, 27, 9, 0, seconds))
const step = (seconds: number, command: ShopSessions.Step["command"]): ShopSessions.Step => ({
  at: at(seconds),
  command
})
/** Four carts whose report is worked out by hand below. */
const handMade: ReadonlyArray<ShopSessions.Session> = [
  {
    cart: "a",
    steps: [
      step(0, { _tag: "AddItem", sku: "apple", quantity: 2 }),
      step(10, { _tag: "AddItem", sku: "pear", quantity: 1 }),
      step(20, { _tag: "RemoveItem", sku: "apple", quantity: 1 }),
      step(60, { _tag: "CheckOut" })
    ]
  },
  {
    cart: "b",
    steps: [
      step(100, { _tag: "AddItem", sku: "apple", quantity: 1 }),
      step(105, { _tag: "RemoveItem", sku: "apple", quantity: 1 }),
      step(110, { _tag: "AddItem", sku: "wine", quantity: 2 }),
      step(115, { _tag: "RemoveItem", sku: "wine", quantity: 1 }),
      step(220, { _tag: "CheckOut" })
    ]
  },
  {
    cart: "c",
    steps: [
      step(300, { _tag: "AddItem", sku: "wine", quantity: 3 }),
      step(310, { _tag: "RemoveItem", sku: "wine", quantity: 3 })
    ]
  },
  { cart: "d", steps: [step(400, { _tag: "AddItem", sku: "bread", quantity: 1 }), step(430, { _tag: "CheckOut" })] }
]
const handMadeReport: CartFunnel.Report = {
  funnel: { opened: 4, added: 4, removed: 3, checkedOut: 3 },
  // c's wine is not counted: c was never checked out.
  topRemoved: [
    { sku: "apple", removals: 2, units: 2 },
    { sku: "wine", removals: 1, units: 1 }
  ],
  timeToCheckout: { carts: 3, medianSeconds: 60, meanSeconds: 70 }
}

const withDuckDb = <A, E, R>(file: string, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(DuckDb.layer(file)))

const temporaryDirectory = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "funnel-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** The report by SQL over the log exported to Parquet, as `chronicle export --format parquet` writes it. */
const exportedReport = (dir: string, name: string) =>
  Effect.gen(function* () {
    const file = join(dir, `${name}.parquet`)
    yield* Export.run({ file, format: "parquet", categories: ["cart"] })
    return yield* withDuckDb(":memory:", CartFunnel.fromExport(file))
  })

const reset = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`TRUNCATE chronicle_events, chronicle_checkpoints`)

layer(Live, { excludeTestServices: true, timeout: 120_000 })("cart funnel", (it) => {
  it.effect(
    "the read model and SQL over the Parquet export give the hand-worked answer, and agree on a generated shop",
    () =>
      Effect.gen(function* () {
        const dir = yield* temporaryDirectory
        yield* reset
        yield* ShopSessions.append(handMade)
        assert.deepStrictEqual(reference(handMade), handMadeReport)
        const handMadeModel = yield* withDuckDb(
          ":memory:",
          Effect.andThen(CartFunnel.create, Effect.andThen(DuckDb.catchUp(CartFunnel.model), CartFunnel.fromModel()))
        )
        assert.deepStrictEqual(handMadeModel, handMadeReport)
        assert.deepStrictEqual(yield* exportedReport(dir, "hand-made"), handMadeReport)

        yield* reset
        const sessions = ShopSessions.generate({ carts: 600, seed: 11 })
        yield* ShopSessions.append(sessions)
        const expected = reference(sessions)
        const report = yield* withDuckDb(
          ":memory:",
          Effect.andThen(CartFunnel.create, Effect.andThen(DuckDb.catchUp(CartFunnel.model), CartFunnel.fromModel()))
        )
        assert.deepStrictEqual(yield* exportedReport(dir, "generated"), report)
        assert.deepStrictEqual(report.funnel, expected.funnel)
        assert.deepStrictEqual(report.topRemoved, expected.topRemoved)
        assert.strictEqual(report.timeToCheckout.carts, expected.timeToCheckout.carts)
        assert.strictEqual(report.timeToCheckout.medianSeconds, expected.timeToCheckout.medianSeconds)
        // The mean is a long decimal: DuckDB and JavaScript may round its last digit apart.
        assert.closeTo(report.timeToCheckout.meanSeconds!, expected.timeToCheckout.meanSeconds!, 0.11)
        assert.isAbove(expected.funnel.removed, 50)
        assert.isAbove(expected.funnel.checkedOut, 200)
      }).pipe(Effect.scoped)
  )

  it.effect("a process running the model killed mid-batch (SIGKILL) and restarted ends with the same answer", () =>
    Effect.gen(function* () {
      yield* reset
      const url = yield* PgTest.DatabaseUrl
      const dir = yield* temporaryDirectory
      const file = join(dir, "funnel.duckdb")
      const sessions = ShopSessions.generate({ carts: 250, seed: 5 })
      yield* ShopSessions.append(sessions)
      const store = yield* EventStore.EventStore
      const head = yield* store.head

      const node = fileURLToPath(new URL("../../../node_modules/node/bin/node", import.meta.url))
      const worker = fileURLToPath(new URL("./fixtures/funnelWorker.ts", import.meta.url))
      const follower = yield* Effect.acquireRelease(
        Effect.sync(() => spawn(node, [worker, url, file, "follow"], { stdio: ["ignore", "pipe", "inherit"] })),
        (child) => Effect.sync(() => void (child.exitCode === null && child.kill("SIGKILL")))
      )
      // Kill it once a few batches have gone through: it is then inside a batch's transaction, or between two.
      yield* Effect.callback<void>((resume) => {
        let batches = 0
        createInterface({ input: follower.stdout! }).on("line", (line) => {
          if (line === "batch handled" && ++batches === 4) {
            follower.once("exit", () => resume(Effect.void))
            follower.kill("SIGKILL")
          }
        })
      })
      const killedAt = yield* withDuckDb(
        file,
        Effect.flatMap(DuckDb.DuckDb, (duck) => DuckDb.checkpoints(duck).load("cart-funnel"))
      )
      assert.isTrue(killedAt > 0n, "some batches committed")
      assert.isTrue(killedAt < head, "killed before the end")

      const exitCode = yield* Effect.callback<number | null>((resume) => {
        spawn(node, [worker, url, file, "catch-up"], { stdio: ["ignore", "inherit", "inherit"] }).once("exit", (code) =>
          resume(Effect.succeed(code))
        )
      })
      assert.strictEqual(exitCode, 0)
      const report = yield* withDuckDb(file, CartFunnel.fromModel())
      const replay = yield* withDuckDb(
        ":memory:",
        Effect.andThen(CartFunnel.create, Effect.andThen(DuckDb.catchUp(CartFunnel.model), CartFunnel.fromModel()))
      )
      assert.deepStrictEqual(report, replay)
      assert.deepStrictEqual(report.funnel, reference(sessions).funnel)
    }).pipe(Effect.scoped)
  )
})
