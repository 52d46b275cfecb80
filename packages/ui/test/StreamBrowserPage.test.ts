/**
 * The stream browser's page in a real headless Chromium (Debian's `chromium`, driven by playwright-core): search a
 * cart, open it, step through its versions, watch the live tail, see a parked dead letter. Each step leaves a
 * screenshot in `packages/ui/test-artifacts/` (gitignored). Without chromium the suite skips with a message, except
 * under CI (`CI=true`), where it fails.
 */
import { copyFileSync, existsSync, mkdirSync } from "node:fs"
import { EventId, EventStore, ExpectedVersion } from "@chronicle/core"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime } from "effect"
import { type Browser, chromium, type Page } from "playwright-core"
import * as StreamBrowser from "../src/StreamBrowser.ts"
import { browser, cart, openAccount, runCounter, Stores } from "./fixtures.ts"

// Debian's chromium, which .ci/run installs; CHROMIUM names another binary (or a missing one, to see the skip).
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium"
const available = existsSync(executablePath)
if (!available && process.env.CI === "true") throw new Error(`${executablePath} is missing: .ci/run installs it`)
if (!available) console.warn(`skipping the stream browser's page tests: ${executablePath} is not installed`)

const artifacts = new URL("../test-artifacts/", import.meta.url)

describe.skipIf(!available)("StreamBrowser page in Chromium", () => {
  const runtime = ManagedRuntime.make(Layer.provideMerge(browser({ renderers: {} }), Stores))
  let chrome: Browser
  let page: Page
  const shot = (name: string) => page.screenshot({ path: new URL(`${name}.png`, artifacts).pathname })

  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true })
    await runtime.runPromise(
      Effect.gen(function* () {
        yield* cart("7f3a", [
          { _tag: "AddItem", sku: "apple", quantity: 3 },
          { _tag: "AddItem", sku: "pear", quantity: 1 },
          { _tag: "RemoveItem", sku: "apple", quantity: 1 },
          { _tag: "CheckOut" }
        ])
        yield* cart("91bc", [{ _tag: "AddItem", sku: "kiwi", quantity: 2 }])
        yield* openAccount("ada", "customer-ada")
        yield* runCounter
      })
    )
    chrome = await chromium.launch({
      executablePath,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
    page = await chrome.newPage({ viewport: { width: 1440, height: 860 } })
    page.on("dialog", (dialog) => void dialog.accept())
  })

  afterAll(async () => {
    await chrome?.close()
    await runtime.dispose()
  })

  it("searches a cart, opens it and steps back through its versions", async () => {
    const { urlWithToken } = await runtime.runPromise(StreamBrowser.StreamBrowser)
    await page.goto(urlWithToken)
    await page.fill("#search", "cart-7")
    await page.locator('#stream-list li[data-stream="cart-7f3a"]').click()
    await page.locator('#timeline tr[data-version="4"]').waitFor()
    await page.locator("#state-version", { hasText: "v4" }).waitFor()
    assert.include(await page.textContent("#state"), '"checkedOut": true')
    await shot("1-stream-opened")

    await page.click("#prev")
    await page.locator("#state-version", { hasText: "v3" }).waitFor()
    await page.locator("#state", { hasText: '"checkedOut": false' }).waitFor()
    assert.include(await page.textContent("#state .changed"), "2")
    await shot("2-version-3")
    // The README's picture, refreshed with UPDATE_DOCS_IMAGES=1 when the page changes.
    if (process.env.UPDATE_DOCS_IMAGES === "1")
      copyFileSync(
        new URL("2-version-3.png", artifacts),
        new URL("../../../docs/images/stream-browser.png", import.meta.url)
      )

    await page.click("#prev")
    await page.locator("#state-version", { hasText: "v2" }).waitFor()
    await page.locator("#state .changed", { hasText: '"pear"' }).waitFor()
    await shot("3-version-2")
  })

  it("shows a new event in the live tail after an append", async () => {
    await page.click('nav button[data-view="tail"]')
    await page.locator("#tail-status", { hasText: "live" }).waitFor()
    await runtime.runPromise(cart("live1", [{ _tag: "AddItem", sku: "plum", quantity: 1 }]))
    await page.locator("#tail-rows tr", { hasText: "cart-live1" }).waitFor()
    await shot("4-live-tail")
  })

  it("keeps up with a burst of 2,000 appends and keeps at most 300 rows", async () => {
    await runtime.runPromise(
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        for (let batch = 0; batch < 4; batch++) {
          const events = Array.from({ length: 500 }, () => ({
            eventId: EventId.random(),
            type: "ItemAdded",
            schemaVersion: 1,
            data: { sku: "fig", quantity: 1 },
            metadata: {}
          }))
          yield* store.append("cart-burst", events, ExpectedVersion.exact(batch * 500))
        }
      })
    )
    // The newest row is on top; the burst's last event is version 2000.
    await page.waitForFunction('document.querySelector("#tail-rows tr td:nth-child(3)")?.textContent === "2000"')
    assert.strictEqual(await page.locator("#tail-rows tr").count(), 300)
  })

  it("shows the parked dead letter of a projection", async () => {
    await page.click('nav button[data-view="projections"]')
    const letter = page.locator("tr.dead-letter", { hasText: "cart-7f3a v4" })
    await letter.waitFor()
    assert.include(await letter.textContent(), "checkouts are not counted")
    await shot("5-dead-letter")
  })

  it("shows sealed personal values to a page opened without the token", async () => {
    const { url } = await runtime.runPromise(StreamBrowser.StreamBrowser)
    await page.goto(url)
    await page.fill("#search", "account-")
    await page.locator('#stream-list li[data-stream="account-ada"]').click()
    await page.locator("#timeline tr", { hasText: "AccountOpened" }).waitFor()
    assert.include(await page.textContent("#timeline"), "🔒 sealed")
    assert.notInclude(await page.textContent("body"), "Lovelace")
    await shot("6-sealed-without-token")
  })
})
