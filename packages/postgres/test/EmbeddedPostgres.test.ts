import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, inject, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"

const query = <A extends object>(url: string, text: string) =>
  SqlClient.SqlClient.use((sql) => sql.unsafe<A>(text)).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))
  )

const exists = (server: string, name: string) =>
  Effect.map(
    query<{ n: number }>(server, `SELECT count(*)::int AS n FROM pg_database WHERE datname = '${name}'`),
    ([row]) => row!.n === 1
  )

describe("EmbeddedPostgres.freshDatabase", () => {
  it.effect("an empty database of its own, dropped with its scope even while connections are open", () =>
    Effect.gen(function* () {
      const server = inject("databaseUrl")
      const outer = yield* Scope.make()
      const name = yield* Effect.scoped(
        Effect.gen(function* () {
          const url = yield* EmbeddedPostgres.freshDatabase(server)
          const name = new URL(url).pathname.slice(1)
          assert.match(name, /^chronicle_[0-9a-f]{32}$/)
          assert.isTrue(yield* exists(server, name))
          const tables = yield* query<{ n: number }>(
            url,
            "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'"
          )
          assert.strictEqual(tables[0]!.n, 0)
          // A client that outlives the scope, with a connection open, does not keep the database alive.
          const client = yield* Layer.buildWithScope(
            PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }),
            outer
          )
          yield* SqlClient.SqlClient.use((sql) => sql`SELECT 1`).pipe(Effect.provideContext(client))
          return name
        })
      )
      assert.isFalse(yield* exists(server, name))
      yield* Scope.close(outer, Exit.void)
    })
  )
})
