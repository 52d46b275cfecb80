/**
 * `pnpm bench [--quick] [filter...]`: runs the bench's sections in order on an embedded Postgres 18 (or the server
 * `DATABASE_URL` names), each on a fresh database, printing progress as it goes and a markdown table of every figure
 * beside its raw limit at the end. `--quick` uses small sizes for smoke runs; a filter keeps the sections whose name
 * contains it. An opt-in section (a long one) runs only when a filter is its exact name.
 */
import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect } from "effect"
import * as Bench from "./Bench.ts"
import * as ClusterBench from "./cluster.ts"
import * as ClusterEntityBench from "./clusterEntity.ts"
import * as EventStoreBench from "./eventStore.ts"
import * as EvolutionBench from "./evolution.ts"
import * as ExportBench from "./export.ts"
import * as ObservabilityBench from "./observability.ts"
import * as OutboxBench from "./outbox.ts"
import * as ProjectionsBench from "./projections.ts"
import * as SnapshotsBench from "./snapshots.ts"

/** Every section, in the order they run; a new section is one more line here. */
const sections: ReadonlyArray<Bench.Section> = [
  ...EventStoreBench.sections,
  ...EvolutionBench.sections,
  ...SnapshotsBench.sections,
  ...ProjectionsBench.sections,
  ...ObservabilityBench.sections,
  ...OutboxBench.sections,
  ...ExportBench.sections,
  ...ClusterEntityBench.sections,
  ...ClusterBench.sections,
  ...(await import("./analytics.ts")).sections
]

const args = process.argv.slice(2)
const quick = args.includes("--quick")
const filters = args.filter((arg) => !arg.startsWith("--"))
const selected = sections.filter((section) =>
  section.optIn === true
    ? filters.includes(section.name)
    : filters.length === 0 || filters.some((filter) => section.name.includes(filter))
)

const program = Effect.gen(function* () {
  if (selected.length === 0) {
    return yield* Console.error(
      `No section matches ${filters.join(", ")}; sections: ${sections.map((s) => s.name).join(", ")}`
    )
  }
  const url = yield* EmbeddedPostgres.databaseUrl
  const machine = yield* Bench.machine(url)
  yield* Console.log(`${machine}\n${quick ? "Quick run (small sizes): " : ""}${selected.length} section(s)\n`)
  const rows: Array<Bench.Row> = []
  const failed: Array<string> = []
  const started = performance.now()
  for (const section of selected) {
    yield* Console.log(`▶ ${section.title} [${section.name}]`)
    const sectionStarted = performance.now()
    const name = `bench_${section.name.replaceAll(/\W/g, "_")}_${crypto.randomUUID().slice(0, 8)}`
    const sectionRows = yield* Effect.scoped(
      Effect.flatMap(Bench.freshDatabase(url, name), (databaseUrl) => section.run({ databaseUrl, quick }))
    ).pipe(
      Effect.catchCause((cause) => {
        failed.push(section.name)
        return Effect.as(Console.error(`  ${section.name} failed:\n${Cause.pretty(cause)}`), [])
      })
    )
    for (const r of sectionRows) yield* Console.log(`  ${r.figure}: ratio ${r.ratio.toFixed(2)}`)
    rows.push(...sectionRows)
    yield* Console.log(`  (${((performance.now() - sectionStarted) / 1000).toFixed(1)} s)\n`)
  }
  yield* Console.log(
    `\n${machine}\n\n${Bench.table(rows)}\n\nTotal ${((performance.now() - started) / 1000).toFixed(0)} s`
  )
  if (failed.length > 0) return yield* Effect.fail(new Error(`sections failed: ${failed.join(", ")}`))
})

program.pipe(Effect.scoped, NodeRuntime.runMain)
