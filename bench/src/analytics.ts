/**
 * The analytical read model: catch-up of a generated shop's cart events into the cart funnel in DuckDB (each batch
 * and its checkpoint in one DuckDB transaction) beside the catch-up of the same events into the cart's Postgres read
 * model `cart-analytics` (each batch and its checkpoint in one Postgres transaction). Both run through
 * `ProjectionRunner.catchUp`, so the ratio is the cost of the analytical engine against the usual read model.
 */
import { ProjectionRunner } from "@chronicle/core"
import { PgCheckpointStore, PgDeadLetters, PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as CartAnalytics from "../../examples/cart/src/CartAnalytics.ts"
import * as CartFunnel from "../../examples/cart/src/CartFunnel.ts"
import * as DuckDb from "../../examples/cart/src/DuckDb.ts"
import * as ShopSessions from "../../examples/cart/src/ShopSessions.ts"
import * as Bench from "./Bench.ts"

const catchUp: Bench.Section = {
  name: "analytics.catchup",
  title: "Analytical read model: catch-up into DuckDB beside a Postgres read model",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      yield* PgMigrations.run
      const sql = yield* SqlClient.SqlClient
      yield* ShopSessions.append(ShopSessions.generate({ carts: quick ? 1_000 : 10_000, seed: 1 }), 16)
      const [{ n: count } = { n: 0 }] = yield* sql<{ n: number }>`
        SELECT count(*)::int AS n FROM chronicle_events WHERE category = 'cart'`
      let run = 0
      const result = yield* Bench.interleave({
        label: "DuckDB funnel",
        measure: Bench.eventsPerSecond,
        reps: quick ? 2 : 3,
        ours: Effect.gen(function* () {
          const model = { ...CartFunnel.model, name: `cart-funnel-${run++}`, batchSize: 500 }
          const ms = yield* Bench.elapsed(Effect.andThen(CartFunnel.create, DuckDb.catchUp(model)))
          return (count * 1000) / ms
        }).pipe(Effect.scoped, Effect.provide(DuckDb.layer(":memory:"))),
        raw: Effect.gen(function* () {
          const model = { ...CartAnalytics.model, name: `cart-analytics-${run}`, table: `cart_analytics_${run++}` }
          yield* model.create(model.table)
          const ms = yield* Bench.elapsed(
            ProjectionRunner.catchUp(PgProjection.projection(model), { transaction: yield* PgProjection.transaction })
          )
          yield* sql`DROP TABLE ${sql(model.table)}`
          return (count * 1000) / ms
        })
      })
      return [
        Bench.row({
          figure: `catch-up of ${count.toLocaleString("en-US")} cart events into the DuckDB funnel`,
          measure: Bench.eventsPerSecond,
          ours: result.ours,
          baseline: "the Postgres read model cart-analytics",
          raw: result.raw,
          ratio: result.ratio
        })
      ]
    }).pipe(
      Effect.provide(
        Layer.mergeAll(PgEventStore.layer(), PgCheckpointStore.layer, PgDeadLetters.layer).pipe(
          Layer.provideMerge(Bench.pgClient(databaseUrl))
        )
      ),
      Effect.scoped
    )
}

/** The analytics section. */
export const sections: ReadonlyArray<Bench.Section> = [catchUp]
