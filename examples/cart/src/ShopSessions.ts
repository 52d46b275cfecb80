/**
 * Realistic shop sessions, generated from a seed: shoppers add popular products more often, take some back out (the
 * pricier and the impulsive ones more often than staples), change their minds about quantities, and about half of
 * them check out. Each step carries the time the shopper acted, which is written into the event's metadata as
 * `occurredAt`, so analyses measure shopper time rather than the time the demo wrote the log. The same seed always
 * gives the same sessions.
 */
import { Decider, EventId, EventStore, ExpectedVersion, StreamName } from "@chronicle/core"
import { Effect } from "effect"
import { Cart, type Command, decider, type Event } from "./Cart.ts"

/** A product of the shop: how often shoppers pick it and how likely they are to put it back. */
interface Product {
  readonly sku: string
  readonly popularity: number
  readonly regret: number
}

/** The shop's catalogue. */
export const catalogue: ReadonlyArray<Product> = [
  { sku: "bread", popularity: 10, regret: 0.02 },
  { sku: "milk", popularity: 9, regret: 0.02 },
  { sku: "eggs", popularity: 8, regret: 0.03 },
  { sku: "apples", popularity: 7, regret: 0.05 },
  { sku: "coffee", popularity: 6, regret: 0.08 },
  { sku: "cheese", popularity: 5, regret: 0.1 },
  { sku: "chocolate", popularity: 5, regret: 0.3 },
  { sku: "wine", popularity: 4, regret: 0.25 },
  { sku: "salmon", popularity: 3, regret: 0.35 },
  { sku: "headphones", popularity: 2, regret: 0.45 },
  { sku: "espresso-machine", popularity: 1, regret: 0.6 },
  { sku: "cashmere-scarf", popularity: 1, regret: 0.55 }
]

/** One step of a session: what the shopper asked for, and when. */
export interface Step {
  readonly at: Date
  readonly command: Command
}

/** One shopper's cart, from the first item to checkout or abandonment. */
export interface Session {
  readonly cart: string
  readonly steps: ReadonlyArray<Step>
}

/** A small seeded pseudo-random generator (mulberry32): numbers in [0, 1), the same for the same seed. */
const random = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/** Generates `carts` sessions from `seed`, spread over the day that starts at `start`. */
export const generate = (options: {
  readonly carts: number
  readonly seed: number
  readonly start?: Date
}): ReadonlyArray<Session> => {
  const next = random(options.seed)
  const dayStart = (options.start ?? new Date("2026-11-27T00:00:00Z")).getTime()
  const totalPopularity = catalogue.reduce((sum, product) => sum + product.popularity, 0)
  const pick = () => {
    let ticket = next() * totalPopularity
    for (const product of catalogue) {
      ticket -= product.popularity
      if (ticket < 0) return product
    }
    return catalogue[0]!
  }
  // Whole seconds between two actions of one shopper: mostly under a minute, now and then several.
  const pause = (mean: number) => Math.max(1, Math.round(-Math.log(1 - next()) * mean)) * 1_000

  return Array.from({ length: options.carts }, (_, index) => {
    const steps: Array<Step> = []
    let at = dayStart + Math.floor(next() * 86_400) * 1_000
    const act = (command: Command, mean: number) => {
      steps.push({ at: new Date(at), command })
      at += pause(mean)
    }
    const picks = 1 + Math.floor(-Math.log(1 - next()) * 2.5)
    const regretted: Array<{ sku: string; quantity: number }> = []
    for (let i = 0; i < picks; i++) {
      const product = pick()
      const quantity = next() < 0.8 ? 1 : 2 + Math.floor(next() * 2)
      act({ _tag: "AddItem", sku: product.sku, quantity }, 40)
      if (next() < product.regret) regretted.push({ sku: product.sku, quantity: next() < 0.7 ? quantity : 1 })
    }
    for (const { sku, quantity } of regretted) act({ _tag: "RemoveItem", sku, quantity }, 60)
    if (next() < 0.55) act({ _tag: "CheckOut" }, 90)
    return { cart: `s${options.seed}-${String(index).padStart(5, "0")}`, steps }
  })
}

/** The events a session decides, each with the time of the step that decided it (refused steps decide none, as
 * steps after checkout do). */
export const events = (session: Session): ReadonlyArray<{ readonly at: Date; readonly event: Event }> => {
  let state = decider.initialState
  const decided: Array<{ at: Date; event: Event }> = []
  for (const { at, command } of session.steps) {
    const run = Decider.run(decider, [command], state)
    for (const event of run.events) decided.push({ at, event })
    state = run.state
  }
  return decided
}

/**
 * Writes the sessions into the event store: each cart's events in one append, with `occurredAt` in each event's
 * metadata, `concurrency` carts at a time.
 */
export const append = (sessions: ReadonlyArray<Session>, concurrency = 8) =>
  Effect.flatMap(EventStore.EventStore, (store) =>
    Effect.forEach(
      sessions,
      (session) =>
        Effect.gen(function* () {
          const encoded = yield* Effect.forEach(events(session), ({ at, event }) =>
            Effect.fromResult(Cart.events.encode(event, EventId.random(), { occurredAt: at.toISOString() }))
          )
          if (encoded.length > 0) {
            yield* store.append(StreamName.make(Cart.category, session.cart), encoded, ExpectedVersion.noStream)
          }
        }),
      { concurrency, discard: true }
    )
  )
