import {
  CommandHandler,
  CryptoShredding,
  EventId,
  EventStore,
  ExpectedVersion,
  Lease,
  Projection,
  ProjectionRunner
} from "@chronicle/core"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import * as chess from "../../../examples/chess/src/chronicle.config.ts"
import { Game } from "../../../examples/chess/src/Game.ts"
import * as StreamBrowser from "../src/StreamBrowser.ts"
import { browser, cart, cartCounter, openAccount, runCounter, Stores, token } from "./fixtures.ts"

// Fetches `path` from the running browser; `as` is "token", "none" or a wrong token.
const call = (path: string, options: { readonly as?: string; readonly method?: string } = {}) =>
  Effect.gen(function* () {
    const { url } = yield* StreamBrowser.StreamBrowser
    const as = options.as ?? "token"
    const headers: Record<string, string> =
      as === "none" ? {} : { authorization: `Bearer ${as === "token" ? token : as}` }
    const response = yield* Effect.promise(() =>
      fetch(new URL(path, url), { method: options.method ?? "GET", headers })
    )
    const body = yield* Effect.promise(() => response.json() as Promise<any>)
    return { status: response.status, body }
  })

const App = Layer.provideMerge(browser(), Stores)

layer(App, { excludeTestServices: true })("StreamBrowser API", (it) => {
  it.effect("categories and a stream search by prefix count streams and events", () =>
    Effect.gen(function* () {
      yield* cart("a1", [{ _tag: "AddItem", sku: "apple", quantity: 2 }, { _tag: "CheckOut" }])
      yield* cart("a2", [{ _tag: "AddItem", sku: "pear", quantity: 1 }])
      const categories = yield* call("/api/categories")
      assert.deepStrictEqual(
        categories.body.find((c: any) => c.category === "cart"),
        { category: "cart", streams: 2, events: 3, aggregate: true }
      )
      const found = yield* call("/api/streams?prefix=cart-a")
      assert.deepStrictEqual(found.body.streams, [
        { stream: "cart-a1", version: 2 },
        { stream: "cart-a2", version: 1 }
      ])
      assert.deepStrictEqual((yield* call("/api/streams?prefix=cart-zz")).body.streams, [])
      assert.strictEqual((yield* call("/api/streams?limit=x")).status, 400)
    })
  )

  it.effect("a long stream's timeline comes newest first, one page at a time", () =>
    Effect.gen(function* () {
      yield* cart(
        "long",
        Array.from({ length: 120 }, (_, n) => ({ _tag: "AddItem" as const, sku: `sku${n % 7}`, quantity: 1 }))
      )
      const first = yield* call("/api/streams/cart-long/events?limit=50")
      assert.strictEqual(first.body.version, 120)
      assert.deepStrictEqual(
        first.body.events.map((e: any) => e.version),
        Array.from({ length: 50 }, (_, i) => 120 - i)
      )
      assert.strictEqual(first.body.next, 71)
      const last = yield* call("/api/streams/cart-long/events?limit=50&before=21")
      assert.deepStrictEqual(last.body.events.at(-1).version, 1)
      assert.strictEqual(last.body.events.length, 20)
      assert.strictEqual(last.body.next, null)
      assert.strictEqual(first.body.events[0].type, "ItemAdded")
      assert.strictEqual(typeof first.body.events[0].position, "string")
    })
  )

  it.effect("the state as of a version, with the paths that changed from the version before", () =>
    Effect.gen(function* () {
      yield* cart("t1", [
        { _tag: "AddItem", sku: "apple", quantity: 2 },
        { _tag: "AddItem", sku: "pear", quantity: 1 },
        { _tag: "CheckOut" }
      ])
      const at2 = yield* call("/api/streams/cart-t1/state?version=2")
      assert.deepStrictEqual(at2.body.state, {
        items: [
          ["apple", 2],
          ["pear", 1]
        ],
        checkedOut: false
      })
      assert.deepStrictEqual(at2.body.changed, ["items.1"])
      const at3 = yield* call("/api/streams/cart-t1/state?version=3")
      assert.deepStrictEqual(at3.body.changed, ["checkedOut"])
      const at1 = yield* call("/api/streams/cart-t1/state?version=1")
      assert.deepStrictEqual(at1.body.state.items, [["apple", 2]])
    })
  )

  it.effect("bad input: unknown stream, bad or too high version, bad name, no aggregate, no route", () =>
    Effect.gen(function* () {
      yield* cart("b1", [{ _tag: "AddItem", sku: "apple", quantity: 2 }])
      const outcomes = [
        yield* call("/api/streams/cart-nothere/events"),
        yield* call("/api/streams/cart-b1/state?version=abc"),
        yield* call("/api/streams/cart-b1/state?version=9"),
        yield* call("/api/streams/nocategory/events"),
        yield* call("/api/nowhere")
      ]
      assert.deepStrictEqual(
        outcomes.map((o) => [o.status, o.body.error]),
        [
          [404, "no stream cart-nothere"],
          [400, 'version must be a whole number, not "abc"'],
          [400, "cart-b1 has 1 events, not 9"],
          [400, (outcomes[3]!.body as any).error],
          [404, "no such page: GET /api/nowhere"]
        ]
      )
      assert.match(outcomes[3]!.body.error, /nocategory/)
    })
  )

  it.effect("a wrong token is refused; without one, personal values stay sealed until forget redacts them", () =>
    Effect.gen(function* () {
      yield* openAccount("acc1", "customer-1")
      assert.deepStrictEqual(yield* call("/api/categories", { as: "wrong-token-9999" }), {
        status: 401,
        body: { error: "wrong token" }
      })
      const sealed = (yield* call("/api/streams/account-acc1/events", { as: "none" })).body.events.at(-1)
      assert.deepStrictEqual([sealed.data.firstName, sealed.data.$personal], [{ $sealed: true }, undefined])
      assert.strictEqual(sealed.data.customerId, "customer-1")
      const withToken = yield* call("/api/streams/account-acc1/events")
      assert.strictEqual(withToken.body.events.at(-1).data.firstName, "Ada")
      const state = yield* call("/api/streams/account-acc1/state?version=2")
      assert.deepStrictEqual(state.body.state, {
        customerId: "customer-1",
        holder: "Ada Lovelace",
        balance: 500,
        open: true
      })
      const stateWithout = yield* call("/api/streams/account-acc1/state?version=2", { as: "none" })
      assert.notInclude(JSON.stringify(stateWithout.body), "Ada")
      yield* CryptoShredding.forget("customer-1")
      for (const as of ["token", "none"]) {
        const forgotten = yield* call("/api/streams/account-acc1/events", { as })
        assert.strictEqual(forgotten.body.events.at(-1).data.firstName, "[forgotten]", as)
      }
    })
  )

  it.effect("projections show checkpoint, lag and dead letters; retry, discard and rebuild need the token", () =>
    Effect.gen(function* () {
      yield* cart("p1", [{ _tag: "AddItem", sku: "apple", quantity: 1 }, { _tag: "CheckOut" }])
      yield* runCounter
      const { body } = yield* call("/api/projections")
      const counter = body.projections[0]
      assert.strictEqual(counter.name, "cart-counter")
      assert.strictEqual(counter.lag, "0")
      const letter = counter.deadLetters.find((d: any) => d.stream === "cart-p1")
      assert.strictEqual(letter.type, "CheckedOut")
      assert.strictEqual(letter.error, "checkouts are not counted")
      const path = `/api/projections/cart-counter/dead-letters/${letter.position}`
      assert.deepStrictEqual(yield* call(`${path}/discard`, { method: "POST", as: "none" }), {
        status: 401,
        body: { error: "writing needs the token" }
      })
      const retried = yield* call(`${path}/retry`, { method: "POST" })
      assert.deepStrictEqual(retried, { status: 409, body: { error: "still fails: checkouts are not counted" } })
      assert.strictEqual((yield* call(`${path}/discard`, { method: "POST" })).status, 200)
      const after = (yield* call("/api/projections")).body.projections[0]
      assert.isUndefined(after.deadLetters.find((d: any) => d.stream === "cart-p1"))
      assert.strictEqual((yield* call(`${path}/discard`, { method: "POST" })).status, 404)
      assert.strictEqual((yield* call("/api/projections/nope/rebuild", { method: "POST" })).status, 404)
      assert.strictEqual((yield* call("/api/projections/cart-counter/rebuild", { method: "POST" })).status, 200)
    })
  )

  it.effect("bad dead-letter positions and a renderer's text beside the state", () =>
    Effect.gen(function* () {
      yield* cart("r1", [{ _tag: "AddItem", sku: "apple", quantity: 2 }])
      const bad = yield* call("/api/projections/cart-counter/dead-letters/-4/discard", { method: "POST" })
      assert.deepStrictEqual(bad, { status: 400, body: { error: "position must be a whole number, not -4" } })
      const unknown = yield* call("/api/projections/nope/dead-letters/4/discard", { method: "POST" })
      assert.deepStrictEqual(unknown, { status: 404, body: { error: "no projection nope" } })
      assert.strictEqual((yield* call("/api/streams/cart-r1/state?version=1")).body.rendered, "1 line(s)")
    })
  )

  it.effect("/metrics serves Effect's metrics in Prometheus's text format", () =>
    Effect.gen(function* () {
      const { url } = yield* StreamBrowser.StreamBrowser
      const response = yield* Effect.promise(() =>
        fetch(new URL("/metrics", url), { headers: { authorization: `Bearer ${token}` } })
      )
      const text = yield* Effect.promise(() => response.text())
      assert.strictEqual(response.status, 200)
      assert.match(response.headers.get("content-type") ?? "", /^text\/plain/)
      assert.match(text, /^# TYPE chronicle_\w+ \w+$/m)
    })
  )

  it.effect("the horizon says when the store cannot report one", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual((yield* call("/api/horizon")).body, { available: false })
      const info = yield* call("/api/info")
      assert.deepStrictEqual(info.body.aggregates, ["cart", "account"])
      assert.isTrue(info.body.writes)
    })
  )
})

layer(Layer.provideMerge(browser({ allowWrites: false }), Stores), { excludeTestServices: true })(
  "StreamBrowser read-only",
  (it) => {
    it.effect("writes are refused without --allow-writes, even with the token", () =>
      Effect.gen(function* () {
        const refused = yield* call("/api/projections/cart-counter/rebuild", { method: "POST" })
        assert.deepStrictEqual(refused, {
          status: 403,
          body: { error: "read-only: start the browser with --allow-writes" }
        })
      })
    )
  }
)

layer(Layer.provideMerge(browser({ host: "0.0.0.0" }), Stores), { excludeTestServices: true })(
  "StreamBrowser on another interface",
  (it) => {
    it.effect("every request needs the token, the page included", () =>
      Effect.gen(function* () {
        const { url } = yield* StreamBrowser.StreamBrowser
        const local = url.replace("0.0.0.0", "127.0.0.1")
        const page = yield* Effect.promise(() => fetch(local))
        assert.strictEqual(page.status, 401)
        const api = yield* Effect.promise(() => fetch(new URL("/api/categories", local)))
        assert.strictEqual(api.status, 401)
        const opened = yield* Effect.promise(() => fetch(`${local}?token=${token}`))
        assert.strictEqual(opened.status, 200)
      })
    )
  }
)

layer(Layer.merge(Stores, Lease.layerMemory), { excludeTestServices: true })("StreamBrowser.inProcess", (it) => {
  it.effect("a projection started here shows as running, then stopped with its error", () =>
    Effect.gen(function* () {
      const strict = Projection.make({ ...cartCounter, name: "strict-counter", onFailure: "stop" })
      yield* cart("s1", [{ _tag: "AddItem", sku: "apple", quantity: 1 }])
      const handle = yield* ProjectionRunner.start(strict)
      yield* handle.awaitCaughtUp
      const projections = yield* StreamBrowser.inProcess([strict], { handles: [handle] })
      const running = (yield* projections.list)[0]!
      assert.deepStrictEqual([running.state, running.lag, running.detail], ["running", 0n, undefined])
      yield* cart("s1", [{ _tag: "CheckOut" }])
      yield* Effect.exit(handle.await)
      const stopped = (yield* projections.list)[0]!
      assert.strictEqual(stopped.state, "stopped")
      assert.include(stopped.detail, "checkouts are not counted")
    }).pipe(Effect.scoped)
  )
})

layer(Layer.provideMerge(browser({ aggregates: chess.aggregates, renderers: chess.renderers }), Stores), {
  excludeTestServices: true
})("StreamBrowser on the chess example's config", (it) => {
  it.effect("draws the board as of each move", () =>
    Effect.gen(function* () {
      yield* Effect.forEach(
        [
          { _tag: "StartGame", white: "Ann", black: "Bob" },
          { _tag: "PlayMove", by: "white", move: "e4" },
          { _tag: "PlayMove", by: "black", move: "e5" }
        ] as const,
        (command) => CommandHandler.handle(Game, "g1", command),
        { discard: true }
      )
      const boards = []
      for (const version of [1, 2]) boards.push((yield* call(`/api/streams/game-g1/state?version=${version}`)).body)
      assert.strictEqual(boards[0].rendered.split("\n")[4], "4 · · · · · · · ·")
      assert.strictEqual(boards[1].rendered.split("\n")[4], "4 · · · · P · · ·")
      assert.include(boards[1].changed, "fen")
    })
  )
})

// A memory store that counts the events `readStream` reads, page by page.
const streamReads = { events: 0 }
const Counting = Layer.effect(
  EventStore.EventStore,
  Effect.map(EventStore.makeMemory, (store) => ({
    ...store,
    readStream: (stream: string, options?: EventStore.ReadStreamOptions) =>
      Stream.mapArray(store.readStream(stream, options), (page) => {
        streamReads.events += page.length
        return page
      })
  }))
)

layer(Layer.provideMerge(browser(), Layer.merge(Stores, Counting)), { excludeTestServices: true })(
  "StreamBrowser on a long stream",
  (it) => {
    it.effect("a stream of 10,000 events opens reading one page of it", () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        for (let batch = 0; batch < 10; batch++) {
          const events = Array.from({ length: 1_000 }, () => ({
            eventId: EventId.random(),
            type: "ItemAdded",
            schemaVersion: 1,
            data: { sku: "apple", quantity: 1 },
            metadata: {}
          }))
          yield* store.append("cart-huge", events, ExpectedVersion.exact(batch * 1_000))
        }
        streamReads.events = 0
        const first = yield* call("/api/streams/cart-huge/events")
        assert.strictEqual(first.body.events.length, 50)
        assert.strictEqual(first.body.events[0].version, 10_000)
        assert.strictEqual(first.body.next, 9_951)
        assert.strictEqual(streamReads.events, 50)
      })
    )
  }
)
