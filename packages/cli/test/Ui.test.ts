/**
 * `chronicle ui` as a child process on a database of its own, with the cart example's config module: it prints the
 * URL with its token, then answers the stream browser's API over the Postgres store, its read models and dead
 * letters, and the horizon; Ctrl-C stops it.
 */
import { spawn } from "node:child_process"
import { CommandHandler, EventStore } from "@chronicle/core"
import { PgDeadLetters } from "@chronicle/postgres"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { Cart } from "../../../examples/cart/src/Cart.ts"
import { bin, cartConfig, chronicle, context, onDatabase, query, setup } from "./fixtures/harness.ts"

setup()

const token = "ui-test-token-0042"

/** Starts `chronicle ui`; resolves with the URL it prints, and a way to stop it with SIGINT. */
const start = (args: ReadonlyArray<string>) =>
  new Promise<{ readonly url: string; readonly stop: () => Promise<number | null> }>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "ui", ...args], {
      env: { ...process.env, DATABASE_URL: context.databaseUrl, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    const closed = new Promise<number | null>((done) => child.on("close", done))
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    child.stdout.on("data", (chunk) => {
      stdout += chunk
      const url = /the stream browser: (\S+)/.exec(stdout)?.[1]
      const stop = () => {
        child.kill("SIGINT")
        return closed
      }
      if (url !== undefined) resolve({ url, stop })
    })
    void closed.then((code) => reject(new Error(`chronicle ui exited ${code}:\n${stdout}\n${stderr}`)))
  })

describe("chronicle ui", { timeout: 120_000 }, () => {
  it("serves the stream browser on the cart example's store, read models and dead letters", async () => {
    assert.strictEqual((await chronicle(["migrate"])).code, 0)
    const position = await onDatabase(
      Effect.gen(function* () {
        for (const command of [
          { _tag: "AddItem", sku: "apple", quantity: 2 },
          { _tag: "AddItem", sku: "pear", quantity: 1 },
          { _tag: "CheckOut" }
        ] as const)
          yield* CommandHandler.handle(Cart, "ui1", command)
        const [event] = yield* Stream.runCollect(
          Stream.unwrap(
            EventStore.EventStore.use((store) => Effect.succeed(store.readStream("cart-ui1", { to: 2, from: 2 })))
          )
        )
        const letters = yield* PgDeadLetters.make
        yield* letters.park({
          projection: "cart-summary",
          position: event!.position,
          eventId: event!.eventId,
          stream: "cart-ui1",
          version: 2,
          type: "ItemAdded",
          error: "pears are not summed"
        })
        return event!.position
      })
    )
    const { url, stop } = await start(["--port", "0", "--token", token, "--allow-writes", "--config", cartConfig])
    try {
      assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:\\d+/\\?token=${token}$`))
      const call = async (path: string, init: { method?: string; as?: string } = {}) => {
        const response = await fetch(new URL(path, url), {
          method: init.method ?? "GET",
          headers: { authorization: `Bearer ${init.as ?? token}` }
        })
        const text = await response.text()
        return {
          status: response.status,
          body: response.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text
        }
      }
      assert.deepStrictEqual((await call("/api/streams?prefix=cart-ui")).body.streams, [
        { stream: "cart-ui1", version: 3 }
      ])
      const state = await call("/api/streams/cart-ui1/state?version=2")
      assert.deepStrictEqual(state.body.state, {
        items: [
          ["apple", 2],
          ["pear", 1]
        ],
        checkedOut: false
      })
      const timeline = await call("/api/streams/cart-ui1/events?limit=2")
      assert.deepStrictEqual(
        timeline.body.events.map((e: any) => e.type),
        ["CheckedOut", "ItemAdded"]
      )
      assert.strictEqual((await call("/api/streams/cart-ui1/state?version=x")).status, 400)
      assert.strictEqual((await call("/api/streams/cart-none/events")).status, 404)

      const summary = (await call("/api/projections")).body.projections.find((p: any) => p.name === "cart-summary")
      assert.deepInclude(summary, { state: "idle", lagUnit: "events", lag: "3" })
      assert.deepStrictEqual(
        summary.deadLetters.map((d: any) => [d.position, d.error]),
        [[String(position), "pears are not summed"]]
      )
      const path = `/api/projections/cart-summary/dead-letters/${position}/discard`
      assert.strictEqual((await call(path, { method: "POST", as: "wrong" })).status, 401)
      assert.deepStrictEqual(await call(path, { method: "POST" }), {
        status: 200,
        body: { projection: "cart-summary", position: String(position), discarded: true }
      })
      assert.deepStrictEqual(await query("SELECT * FROM chronicle_dead_letters"), [])
      const rebuilt = await call("/api/projections/cart-summary/rebuild", { method: "POST" })
      assert.strictEqual(rebuilt.status, 200, JSON.stringify(rebuilt.body))
      assert.deepStrictEqual(await query("SELECT cart_id, units, checked_out FROM cart_summary"), [
        { cart_id: "ui1", units: 3, checked_out: true }
      ])

      const horizon = (await call("/api/horizon")).body
      assert.deepInclude(horizon, { available: true, holder: null })
      const metrics = await call("/metrics")
      assert.match(metrics.body, /^chronicle_horizon_age_seconds\b/m)
    } finally {
      assert.strictEqual(await stop(), 130)
    }
  })
})
