import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Count, Tally } from "../../../test/fixtures/Tally.ts"
import * as AggregateLoader from "../src/AggregateLoader.ts"
import * as CommandHandler from "../src/CommandHandler.ts"
import * as EventStore from "../src/EventStore.ts"

describe("AggregateLoader.loadAsOf", () => {
  it.effect("gives the state after each version, and the whole stream past its end", () =>
    Effect.gen(function* () {
      for (const key of ["x", "y", "x"]) yield* CommandHandler.handle(Tally, "a", Count.make({ key }))
      const totals = []
      for (const version of [0, 1, 2, 3, 9]) {
        const loaded = yield* AggregateLoader.loadAsOf(Tally, "a", version)
        totals.push([loaded.version, loaded.state.total, loaded.state.counts.get("x") ?? 0])
      }
      assert.deepStrictEqual(totals, [
        [0, 0, 0],
        [1, 1, 1],
        [2, 2, 1],
        [3, 3, 2],
        [3, 3, 2]
      ])
    }).pipe(Effect.provide(EventStore.layerMemory))
  )
})
