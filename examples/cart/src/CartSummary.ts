/**
 * The cart summary read model: one row per cart with the units in it and whether it is checked out, kept in the
 * Postgres table `cart_summary` and updated exactly once per event, in the batch's transaction.
 */
import { Projection, StreamName } from "@chronicle/core"
import { PgProjection } from "@chronicle/postgres"
import { Effect, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Cart } from "./Cart.ts"

const decode = Projection.decodeWith(Cart.events)

/** The summary of every cart, in table `cart_summary`. */
export const model = PgProjection.make({
  name: "cart-summary",
  table: "cart_summary",
  categories: [Cart.category],
  decode,
  create: (table) =>
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql`
        CREATE TABLE ${sql(table)} (
          cart_id text PRIMARY KEY, units int NOT NULL, checked_out boolean NOT NULL, updated_at timestamptz NOT NULL)`
    ),
  handle: (table) => (events) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Stream.runForEach(events, ({ stream, event, recordedAt }) => {
        const cart = StreamName.id(stream)
        const units = event._tag === "ItemAdded" ? event.quantity : event._tag === "ItemRemoved" ? -event.quantity : 0
        return sql`
          INSERT INTO ${sql(table)} (cart_id, units, checked_out, updated_at)
          VALUES (${cart}, ${units}, ${event._tag === "CheckedOut"}, ${recordedAt})
          ON CONFLICT (cart_id) DO UPDATE SET
            units = ${sql(table)}.units + excluded.units,
            checked_out = ${sql(table)}.checked_out OR excluded.checked_out,
            updated_at = excluded.updated_at`
      })
    )
})
