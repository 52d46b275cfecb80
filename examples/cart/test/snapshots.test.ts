import { AggregateLoader, CommandHandler, SnapshotStore } from "@chronicle/core"
import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { AggregateLaws, PgTest } from "@chronicle/testing"
import { assert, describe, it, layer } from "@effect/vitest"
import { Arbitrary, Effect, Layer, Option, Schedule, type Schema } from "effect"
import { Cart, type Command, State } from "../src/Cart.ts"
import * as Snapshots from "../src/snapshots.ts"

// Commands from the cart's own schema, with SKUs folded onto three names so that removals meet earlier additions.
const skus = ["apple", "pear", "plum"] as const
const commands = Arbitrary.schema(Cart.commands).pipe(
  Arbitrary.map((command): Command => ("sku" in command ? { ...command, sku: skus[command.sku.length % 3]! } : command))
)

describe("cart snapshots", () => {
  it.effect("snapshot + tail equals the full fold, through the state schema's JSON codec", () =>
    AggregateLaws.snapshotPlusTail(Cart, { commands })
  )

  it.effect("the law catches a state schema that loses a field", () =>
    Effect.gen(function* () {
      const withoutCheckout = State.mapFields(({ items }) => ({ items }))
      const lossy = { ...Cart, state: withoutCheckout as unknown as Schema.Codec<State, unknown> }
      const failure = yield* Effect.flip(AggregateLaws.snapshotPlusTail(lossy, { commands }))
      assert.strictEqual(failure.law, "snapshot + tail equals the full fold")
    })
  )
})

const Live = Layer.mergeAll(PgEventStore.layer(), Snapshots.layer).pipe(
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer))
)

layer(Live, { excludeTestServices: true })("cart snapshots on Postgres", (it) => {
  it.effect("a long-lived cart loads from its latest snapshot and at most 50 events", () =>
    Effect.gen(function* () {
      for (let i = 0; i < 120; i++) {
        yield* CommandHandler.handle(Cart, "long", { _tag: "AddItem", sku: skus[i % 3]!, quantity: 1 })
      }
      yield* SnapshotStore.SnapshotStore.use((store) => store.load("cart-long")).pipe(
        Effect.repeat({
          schedule: Schedule.spaced("10 millis"),
          until: (s) => Option.isSome(s) && s.value.version >= 100
        }),
        Effect.timeout("20 seconds")
      )
      const loaded = yield* AggregateLoader.load(Cart, "long")
      assert.isAtLeast(loaded.snapshotVersion, 100)
      assert.isAtMost(loaded.version - loaded.snapshotVersion, 50)
      assert.deepStrictEqual(
        loaded.state.items,
        new Map([
          ["apple", 40],
          ["pear", 40],
          ["plum", 40]
        ])
      )
    })
  )
})
