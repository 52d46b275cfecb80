/**
 * `pnpm demo:analytics`: the log as a source for analysis, as the original notes describe. Starts an embedded
 * Postgres 18 (or uses `DATABASE_URL`) and writes into a throw-away database of its own there, so other data on the
 * server is neither counted nor touched and every run starts afresh. Starts the funnel's read model in an in-memory
 * DuckDB, then writes a day of generated shop sessions (3,000 carts, seeded) in three parts, printing the funnel after
 * each part as the model follows the log. At the end it prints the funnel, the products most often removed before
 * checkout and the time to checkout two ways: from the read model, and by ad hoc SQL over the log exported to Parquet
 * (the library function behind `chronicle export --format parquet`). The two must agree; the demo fails if they do
 * not.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { isDeepStrictEqual } from "node:util"
import { Export } from "@chronicle/cli"
import { PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Layer, Redacted, Schema } from "effect"
import * as CartFunnel from "./CartFunnel.ts"
import * as DuckDb from "./DuckDb.ts"
import * as ShopSessions from "./ShopSessions.ts"

const carts = 3_000
const seed = 2026

const showFunnel = ({ opened, added, removed, checkedOut }: CartFunnel.Funnel) =>
  `opened ${opened} → items added ${added} → items removed ${removed} → checked out ${checkedOut} (${((100 * checkedOut) / Math.max(1, opened)).toFixed(1)}%)`

const showReport = (report: CartFunnel.Report) =>
  [
    `  funnel: ${showFunnel(report.funnel)}`,
    "  most often removed from carts that were then checked out:",
    ...report.topRemoved.map(
      ({ sku, removals, units }, index) => `    ${index + 1}. ${sku.padEnd(18)} ${removals} removals, ${units} units`
    ),
    `  first item to checkout, over ${report.timeToCheckout.carts} carts: median ${report.timeToCheckout.medianSeconds} s, mean ${report.timeToCheckout.meanSeconds} s`
  ].join("\n")

/** The read model and the SQL over the export gave different reports: one of the two ways is wrong. */
class ReportsDisagree extends Schema.TaggedError<ReportsDisagree>()("ReportsDisagree", {
  fromModel: Schema.String,
  fromExport: Schema.String
}) {
  override get message() {
    return `the read model and the export disagree:\n${this.fromModel}\nversus\n${this.fromExport}`
  }
}

const program = Effect.gen(function* () {
  yield* CartFunnel.create
  const runner = yield* DuckDb.start(CartFunnel.model)
  const sessions = ShopSessions.generate({ carts, seed })
  yield* Console.log(`\nA day of shopping: ${carts} carts generated from seed ${seed}, written in three parts.`)
  const part = Math.ceil(carts / 3)
  for (let start = 0; start < carts; start += part) {
    yield* ShopSessions.append(sessions.slice(start, start + part))
    yield* runner.awaitCaughtUp
    const { funnel } = yield* CartFunnel.fromModel()
    yield* Console.log(
      `  after ${Math.min(start + part, carts)} carts, the DuckDB read model says: ${showFunnel(funnel)}`
    )
  }
  const fromModel = yield* CartFunnel.fromModel()
  yield* Console.log("\nThe analytical read model (a projection into DuckDB, updated as events arrive):")
  yield* Console.log(showReport(fromModel))

  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "chronicle-analytics-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )
  const file = join(dir, "cart.parquet")
  const exported = yield* Export.run({ file, format: "parquet", categories: ["cart"] })
  const fromExport = yield* CartFunnel.fromExport(file)
  yield* Console.log(`\nAd hoc SQL over the log exported to Parquet (${exported.events} events):`)
  yield* Console.log(showReport(fromExport))
  if (!isDeepStrictEqual(fromModel, fromExport)) {
    return yield* new ReportsDisagree({ fromModel: showReport(fromModel), fromExport: showReport(fromExport) })
  }
  yield* Console.log("\nBoth ways agree.")
}).pipe(Effect.scoped)

const Live = Layer.mergeAll(PgEventStore.layer(), PgProjection.layerServices(), DuckDb.layer(":memory:")).pipe(
  Layer.provideMerge(PgMigrations.layer),
  Layer.provideMerge(
    Layer.unwrap(
      Effect.map(Effect.flatMap(EmbeddedPostgres.databaseUrl, EmbeddedPostgres.freshDatabase), (url) =>
        PgClient.layer({ url: Redacted.make(url), maxConnections: 10 })
      )
    )
  )
)

program.pipe(Effect.provide(Live), NodeRuntime.runMain)
