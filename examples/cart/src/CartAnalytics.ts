/**
 * The cart analytics read model: for each product, how many units shoppers added and how many they took out again,
 * in the Postgres table `cart_product_removals`. Removal is its own event in the log, so the question "which
 * products get added and then removed?" is answered from history that a current-state table would have lost; and
 * because the model is a projection, asking it of the past is a rebuild. Each batch is folded in memory and written
 * as one upsert.
 */

import { Projection } from "@chronicle/core"
import { PgProjection } from "@chronicle/postgres"
import { Array as Arr, Effect, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Cart } from "./Cart.ts"

const decode = Projection.decodeWith(Cart.events)

/** Units added and removed per product, in table `cart_product_removals`. */
export const model = PgProjection.make({
  name: "cart-analytics",
  table: "cart_product_removals",
  categories: [Cart.category],
  types: ["ItemAdded", "ItemRemoved"],
  decode,
  create: (table) =>
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql`CREATE TABLE ${sql(table)} (sku text PRIMARY KEY, added int NOT NULL, removed int NOT NULL)`
    ),
  handle: (table) => (events) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const bySku = yield* Stream.runFold(
        events,
        () => new Map<string, { added: number; removed: number }>(),
        (totals, { event }) => {
          if (event._tag === "CheckedOut") return totals
          const current = totals.get(event.sku) ?? { added: 0, removed: 0 }
          return totals.set(
            event.sku,
            event._tag === "ItemAdded"
              ? { ...current, added: current.added + event.quantity }
              : { ...current, removed: current.removed + event.quantity }
          )
        }
      )
      const rows = [...bySku].map(([sku, { added, removed }]) => ({ sku, added, removed }))
      if (!Arr.isArrayNonEmpty(rows)) return
      yield* sql`
        INSERT INTO ${sql(table)} ${sql.insert(rows)}
        ON CONFLICT (sku) DO UPDATE SET
          added = ${sql(table)}.added + excluded.added, removed = ${sql(table)}.removed + excluded.removed`
    })
})
