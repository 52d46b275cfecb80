import { CommandHandler } from "@chronicle/core"
import { PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { Cart, type Command } from "../src/Cart.ts"
import * as CartAnalytics from "../src/CartAnalytics.ts"
import * as CartSummary from "../src/CartSummary.ts"

const Live = Layer.mergeAll(PgEventStore.layer({ pollInterval: "100 millis" }), PgProjection.layerServices()).pipe(
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer))
)

const send = (id: string, command: Command) => CommandHandler.handle(Cart, id, command)

layer(Live, { excludeTestServices: true })("cart read models", (it) => {
  it.effect("the summary and the analytics follow the carts, and a rebuild gives the same tables", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* send("a", { _tag: "AddItem", sku: "apple", quantity: 3 })
      yield* send("a", { _tag: "AddItem", sku: "pear", quantity: 1 })
      yield* send("a", { _tag: "RemoveItem", sku: "apple", quantity: 2 })
      yield* send("a", { _tag: "CheckOut" })
      const summary = yield* PgProjection.start(CartSummary.model)
      const analytics = yield* PgProjection.start(CartAnalytics.model)
      yield* send("b", { _tag: "AddItem", sku: "apple", quantity: 5 })
      yield* send("b", { _tag: "RemoveItem", sku: "apple", quantity: 5 })
      yield* send("b", { _tag: "AddItem", sku: "kiwi", quantity: 2 })
      yield* summary.awaitCaughtUp
      yield* analytics.awaitCaughtUp

      const carts = yield* sql`SELECT cart_id, units, checked_out FROM cart_summary ORDER BY cart_id`
      assert.deepStrictEqual(carts, [
        { cart_id: "a", units: 2, checked_out: true },
        { cart_id: "b", units: 2, checked_out: false }
      ])
      const products = yield* sql`SELECT sku, added, removed FROM cart_product_removals ORDER BY sku`
      const expected = [
        { sku: "apple", added: 8, removed: 7 },
        { sku: "kiwi", added: 2, removed: 0 },
        { sku: "pear", added: 1, removed: 0 }
      ]
      assert.deepStrictEqual(products, expected)

      yield* PgProjection.rebuild(CartAnalytics.model)
      yield* analytics.awaitCaughtUp
      assert.deepStrictEqual(yield* sql`SELECT sku, added, removed FROM cart_product_removals ORDER BY sku`, expected)
    }).pipe(Effect.scoped)
  )
})
