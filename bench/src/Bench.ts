/**
 * The bench harness. A bench is a list of sections; each section gets a fresh database on the bench's server and
 * returns rows, each row putting one of Chronicle's figures beside the raw Postgres limit measured in the same run on
 * the same server. The two sides run alternately (`interleave`), so a ratio compares numbers taken side by side and
 * background noise hits both.
 */
import { cpus, loadavg, totalmem } from "node:os"
import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import pg from "pg"

/** What a section gets to work with. */
export interface Context {
  /** The URL of a fresh, empty database on the bench's server; it is dropped when the section ends. */
  readonly databaseUrl: string
  /** Smaller sizes and fewer repetitions, for smoke runs (`--quick`). */
  readonly quick: boolean
}

/** One figure: Chronicle's value beside the raw baseline measured in the same run on the same server. */
export interface Row {
  readonly figure: string
  /** The unit of both values. */
  readonly unit: string
  /** Chronicle's value (or, in a raw-only comparison, the variant under study). */
  readonly ours: number
  /** What the raw side did. */
  readonly baseline: string
  readonly raw: number
  /** Oriented so that ≥ 1 means as good as raw: ours ÷ raw for rates, raw ÷ ours for times. */
  readonly ratio: number
  /** The smallest ratio the design asks for, where it sets a target. */
  readonly target?: number
  /** A remark printed under the table (an exactness check, a cause...). */
  readonly note?: string
}

/** One part of the bench: a name to select it on the command line, a title, and how to measure its rows. */
export interface Section {
  /** Selects the section: `pnpm bench <filter>` runs the sections whose name contains the filter. */
  readonly name: string
  readonly title: string
  /** Runs only when a filter names it exactly, never in the default run (it takes minutes). */
  readonly optIn?: boolean
  readonly run: (context: Context) => Effect.Effect<ReadonlyArray<Row>, unknown>
}

/** How a quantity is read: a rate is better higher, a time is better lower. */
export interface Measure {
  readonly unit: string
  readonly better: "higher" | "lower"
}

/** Events per second, better higher. */
export const eventsPerSecond: Measure = { unit: "events/s", better: "higher" }

/** Milliseconds, better lower. */
export const milliseconds: Measure = { unit: "ms", better: "lower" }

/** The ratio of `ours` to `raw`, oriented by the measure so that ≥ 1 means as good as raw. */
export const ratio = (measure: Measure, ours: number, raw: number): number =>
  measure.better === "higher" ? ours / raw : raw / ours

/**
 * Builds a row. Its ratio is `ratio` when given (`interleave` gives the median of the side-by-side pairs' ratios),
 * else computed from the two values.
 */
export const row = (fields: {
  readonly figure: string
  readonly measure: Measure
  readonly ours: number
  readonly baseline: string
  readonly raw: number
  readonly ratio?: number
  readonly target?: number
  readonly note?: string
}): Row => {
  const { measure, ...rest } = fields
  return { ...rest, unit: measure.unit, ratio: fields.ratio ?? ratio(measure, fields.ours, fields.raw) }
}

/** The median of some numbers (the mean of the middle two for an even count). */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const format = (value: number, measure: Measure | string): string => {
  const unit = typeof measure === "string" ? measure : measure.unit
  return unit === "ms"
    ? value.toLocaleString("en-US", { maximumFractionDigits: 1, minimumFractionDigits: 1 })
    : Math.round(value).toLocaleString("en-US")
}

/**
 * Measures `ours` and `raw` alternately, `reps` times each, and returns the median of each side and the median of the
 * ratios of the pairs taken side by side. The side that goes first swaps every repetition, so drift (a growing table,
 * a warming cache, a neighbour's load) hits both alike. Each repetition's pair is printed as it is taken.
 */
export const interleave = <E1, R1, E2, R2>(options: {
  readonly label: string
  readonly measure: Measure
  readonly reps: number
  readonly ours: Effect.Effect<number, E1, R1>
  readonly raw: Effect.Effect<number, E2, R2>
}): Effect.Effect<{ readonly ours: number; readonly raw: number; readonly ratio: number }, E1 | E2, R1 | R2> =>
  Effect.map(interleaveBaselines({ ...options, baselines: { raw: options.raw } }), ({ ours, baselines }) => ({
    ours,
    ...baselines.raw!
  }))

/**
 * `interleave` against several baselines at once: each repetition measures `ours` and every baseline, starting from
 * a different side each time, and each baseline gets its median and the median of its side-by-side ratios to `ours`.
 */
export const interleaveBaselines = <
  E1,
  R1,
  B extends Readonly<Record<string, Effect.Effect<number, any, any>>>
>(options: {
  readonly label: string
  readonly measure: Measure
  readonly reps: number
  readonly ours: Effect.Effect<number, E1, R1>
  readonly baselines: B
}): Effect.Effect<
  {
    readonly ours: number
    readonly baselines: { readonly [K in keyof B]: { readonly raw: number; readonly ratio: number } }
  },
  E1 | Effect.Error<B[keyof B]>,
  R1 | Effect.Services<B[keyof B]>
> =>
  Effect.gen(function* () {
    const names = Object.keys(options.baselines) as Array<keyof B & string>
    const sides: Array<Effect.Effect<number, E1 | Effect.Error<B[keyof B]>, R1 | Effect.Services<B[keyof B]>>> = [
      options.ours,
      ...names.map(
        (name) =>
          options.baselines[name] as Effect.Effect<number, Effect.Error<B[keyof B]>, Effect.Services<B[keyof B]>>
      )
    ]
    const taken = sides.map((): Array<number> => [])
    for (let rep = 0; rep < options.reps; rep++) {
      for (let k = 0; k < sides.length; k++) {
        const side = (rep + k) % sides.length
        taken[side]!.push(yield* sides[side]!)
      }
      const values = taken.map((values) => format(values.at(-1)!, options.measure))
      yield* Console.log(
        `    ${options.label} rep ${rep + 1}/${options.reps}: ours ${values[0]}, ${names.map((name, k) => `${name} ${values[k + 1]}`).join(", ")} ${options.measure.unit}`
      )
    }
    const [ours, ...raws] = taken
    const baselines = Object.fromEntries(
      names.map((name, k) => [
        name,
        {
          raw: median(raws[k]!),
          ratio: median(ours!.map((value, rep) => ratio(options.measure, value, raws[k]![rep]!)))
        }
      ])
    ) as { readonly [K in keyof B]: { readonly raw: number; readonly ratio: number } }
    return { ours: median(ours!), baselines }
  })

/**
 * Runs `operation` on `concurrency` fibers, each starting a new operation until `seconds` have passed, and returns
 * the events written per second over the whole run (each operation returns how many events it wrote). Fiber `worker`
 * gets its index, so workers can own disjoint streams.
 */
export const throughput = <E, R>(
  concurrency: number,
  seconds: number,
  operation: (worker: number) => Effect.Effect<number, E, R>
): Effect.Effect<number, E, R> =>
  Effect.gen(function* () {
    const start = performance.now()
    const deadline = start + seconds * 1000
    const counts = yield* Effect.forEach(
      Array.from({ length: concurrency }, (_, worker) => worker),
      (worker) =>
        Effect.gen(function* () {
          let events = 0
          while (performance.now() < deadline) events += yield* operation(worker)
          return events
        }),
      { concurrency }
    )
    return (counts.reduce((a, b) => a + b, 0) * 1000) / (performance.now() - start)
  })

/** How long `effect` takes, in milliseconds. */
export const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<number, E, R> =>
  Effect.suspend(() => {
    const start = performance.now()
    return Effect.map(effect, () => performance.now() - start)
  })

/** A `PgClient` on `url` whose pool holds enough connections for the bench's highest concurrency, and then some. */
export const pgClient = (url: string, maxConnections = 40) =>
  PgClient.layer({ url: Redacted.make(url), maxConnections })

/**
 * A node-postgres `pg.Pool` on `url`, as many connections as `pgClient`, ended when the scope closes: the driver of the
 * second raw baseline, so a ratio can be read against a driver other than the one Chronicle uses.
 */
export const nodePostgres = (url: string, max = 40) =>
  Effect.acquireRelease(
    Effect.sync(() => new pg.Pool({ connectionString: url, max })),
    (pool) => Effect.promise(() => pool.end())
  )

/** A node-postgres pool. */
export type NodePool = pg.Pool

/** Runs `text` through node-postgres as the prepared statement `name` (parsed once per connection); an error is a defect. */
export const nodeQuery = (pool: NodePool, name: string, text: string, values: ReadonlyArray<unknown>) =>
  Effect.promise(() => pool.query({ name, text, values: [...values] }))

const onServer = <A, E>(url: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  SqlClient.SqlClient.use(f).pipe(Effect.provide(pgClient(url, 1)))

/** Creates a database named `name` on the server at `url` and returns its URL; it is dropped when the scope closes. */
export const freshDatabase = (url: string, name: string) => Effect.orDie(EmbeddedPostgres.freshDatabase(url, name))

/** The machine and server the figures come from: CPU, cores, memory, load, Node and Postgres. */
export const machine = (url: string) =>
  onServer(url, (sql) =>
    Effect.map(
      sql<{ version: string; commit: string; fsync: string; buffers: string }>`
        SELECT current_setting('server_version') AS version, current_setting('synchronous_commit') AS commit,
               current_setting('fsync') AS fsync, current_setting('shared_buffers') AS buffers`,
      ([settings]) =>
        [
          `CPU: ${cpus()[0]?.model ?? "unknown"}, ${cpus().length} cores; memory ${Math.round(totalmem() / 2 ** 30)} GiB; load average ${loadavg()
            .map((load) => load.toFixed(2))
            .join(" ")}`,
          `Node ${process.version}; Postgres ${settings?.version} (fsync ${settings?.fsync}, synchronous_commit ${settings?.commit}, shared_buffers ${settings?.buffers}), client @effect/sql-pg (node-postgres for the second append baseline)`
        ].join("\n")
    )
  )

/** Renders rows as a markdown table, the ratio's orientation in its header, and their notes underneath. */
export const table = (rows: ReadonlyArray<Row>): string => {
  const lines = [
    "| Figure | Chronicle | Raw baseline | Raw | Ratio (≥ 1 = as good as raw) | Target |",
    "| --- | ---: | --- | ---: | ---: | --- |",
    ...rows.map(
      (r) =>
        `| ${r.figure} | ${format(r.ours, r.unit)} ${r.unit} | ${r.baseline} | ${format(r.raw, r.unit)} ${r.unit} | ${r.ratio.toFixed(2)} | ${
          r.target === undefined
            ? ""
            : `${r.unit === "ms" ? `≤ ${(1 / r.target).toFixed(1)}× raw time` : `≥ ${r.target.toFixed(2)} of raw`}: ${r.ratio >= r.target ? "met" : "missed"}`
        } |`
    ),
    "",
    "Ratio = Chronicle ÷ raw for rates (events/s), raw ÷ Chronicle for times (ms), the median over repetitions of the",
    "ratio of each side-by-side pair (so it need not equal the ratio of the two medians): ≥ 1 means as good as raw.",
    ...rows.flatMap((r) => (r.note === undefined ? [] : [`- ${r.figure}: ${r.note}`]))
  ]
  return lines.join("\n")
}
