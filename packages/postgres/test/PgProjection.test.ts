import { Projection } from "@chronicle/core"
import { PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { SqlClient } from "effect/sql"

const Live = Layer.mergeAll(PgEventStore.layer(), PgProjection.layerServices()).pipe(
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer))
)

layer(Live, { excludeTestServices: true })("PgProjection", (it) => {
  it.effect("a model whose table name needs quoting starts again on the table it created", () =>
    Effect.gen(function* () {
      const model = PgProjection.make({
        name: "quoted",
        table: "CartTotals",
        categories: ["quoted"],
        decode: Projection.recorded,
        create: (table) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE ${sql(table)} (n int)`),
        handle: () => Stream.runDrain
      })
      yield* Effect.scoped(PgProjection.start(model))
      yield* Effect.scoped(PgProjection.start(model))
      const sql = yield* SqlClient.SqlClient
      const tables = yield* sql<{
        name: string
      }>`SELECT tablename AS name FROM pg_tables WHERE tablename = 'CartTotals'`
      assert.deepStrictEqual(tables, [{ name: "CartTotals" }])
    })
  )
})
