/**
 * Partitioned catch-up on Effect Cluster (`cluster.catchup`): how long runner processes take to catch a projection
 * up over a burst of events whose handler waits 5 ms per batch (an I/O-bound read model), with 2 partitions on 2
 * runners and with 4 partitions on 2 runners, beside one runner with one partition measured in the same run. Each
 * burst is appended in one transaction, so it becomes visible at once; the clock runs from its commit until every
 * partition's checkpoint has reached the burst's last event in that partition. Each configuration starts its own
 * runners (real processes over loopback, the cluster's storage in the same Postgres), lets them join, then starts
 * the partitions and runs one unmeasured burst before the measured ones.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { CheckpointStore, EventStore, ExpectedVersion, Partition } from "@chronicle/core"
import { PgCheckpointStore, PgEventStore, PgMigrations } from "@chronicle/postgres"
import { FreePort } from "@chronicle/postgres/embedded"
import { NodeCrypto } from "@effect/platform-node"
import { Console, Effect, Layer, Schedule, Stream } from "effect"
import { ShardingConfig, SqlMessageStorage, SqlRunnerStorage } from "effect/cluster"
import { SqlClient } from "effect/sql"
import * as Bench from "./Bench.ts"

const node = process.execPath
const runnerScript = fileURLToPath(new URL("./clusterRunner.ts", import.meta.url))

/** Stops a runner: SIGTERM, so it leaves the cluster, then SIGKILL if it has not exited after 20 seconds. */
const stop = (child: ChildProcess) =>
  child.exitCode !== null
    ? Effect.void
    : Effect.callback<void>((resume) => {
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGTERM")
      }).pipe(
        Effect.timeout("20 seconds"),
        Effect.catch(() => Effect.sync(() => void child.kill("SIGKILL")))
      )

/** A set of runner processes, each with the claims it printed; stopped when the scope closes. */
const startRunners = (databaseUrl: string, runners: number, partitions: number) =>
  Effect.gen(function* () {
    const claims = new Map<string, Array<string>>()
    const children: Array<ChildProcess> = []
    for (let i = 1; i <= runners; i++) {
      const name = `r${i}`
      const port = yield* FreePort.pick
      const child = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(node, [runnerScript, databaseUrl, name, String(port), String(partitions)], {
            stdio: ["pipe", "pipe", "inherit"]
          })
        ),
        stop
      )
      claims.set(name, [])
      createInterface({ input: child.stdout! }).on("line", (line) => claims.get(name)!.push(line))
      children.push(child)
    }
    const go = Effect.sync(() => {
      for (const child of children) child.stdin!.write("go\n")
    })
    return { claims, go }
  })

const healthyRunners = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM cluster_runners WHERE healthy`
).pipe(Effect.map(([row]) => row?.n ?? 0))

const until = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.repeat(check, { schedule: Schedule.spaced("2 millis"), until: (done) => done })

/** Appends `count` events over 400 `load-*` streams in one transaction; returns each partition's last position. */
const burst = (count: number, partitions: number, round: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const store = yield* EventStore.EventStore
    const perStream = count / 400
    const results = yield* sql.withTransaction(
      Effect.forEach(
        Array.from({ length: 400 }, (_, s) => `load-${s}`),
        (stream) =>
          store.append(
            stream,
            Array.from({ length: perStream }, (_, i) => ({
              eventId: crypto.randomUUID(),
              type: "Loaded",
              schemaVersion: 1,
              data: { round, i },
              metadata: {}
            })),
            ExpectedVersion.any
          )
      )
    )
    const last = new Map<number, bigint>()
    for (const result of results) {
      const partition = Partition.of(result.stream, partitions)
      if ((last.get(partition) ?? 0n) < result.position) last.set(partition, result.position)
    }
    return last
  })

/** Milliseconds from a burst's commit until every partition's checkpoint has reached its last event. */
const catchUpTime = (count: number, partitions: number, round: number) =>
  Effect.gen(function* () {
    const checkpoints = yield* CheckpointStore.CheckpointStore
    const last = yield* burst(count, partitions, round)
    const started = performance.now()
    yield* Effect.forEach(
      Partition.all(partitions),
      (partition) =>
        until(
          Effect.map(
            checkpoints.load(Partition.key("load", partition)),
            (at) => at >= (last.get(partition.index) ?? 0n)
          )
        ),
      { concurrency: "unbounded", discard: true }
    )
    return performance.now() - started
  })

/** Runs `runners` processes with `partitions` partitions, one warm-up burst, then `reps` measured bursts. */
const configuration = (databaseUrl: string, runners: number, partitions: number, count: number, reps: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const begun = performance.now()
      const started = yield* startRunners(databaseUrl, runners, partitions)
      yield* until(Effect.map(healthyRunners, (n) => n === runners))
      yield* started.go
      yield* catchUpTime(count, partitions, 0)
      const seconds = ((performance.now() - begun) / 1000).toFixed(1)
      yield* Console.log(`    ${runners} runner(s) up and warmed up in ${seconds} s`)
      const times: Array<number> = []
      for (let rep = 1; rep <= reps; rep++) {
        times.push(yield* catchUpTime(count, partitions, rep))
        yield* Console.log(
          `    ${partitions} partition(s) on ${runners} runner(s), rep ${rep}: ${times.at(-1)!.toFixed(0)} ms`
        )
      }
      const placement = [...started.claims].map(([name, lines]) => `${name} took ${lines.length}`).join(", ")
      // Checkpoints of a configuration are its own: the next one starts from the beginning of its partitions.
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DELETE FROM chronicle_checkpoints`)
      return { times, placement }
    })
  )

const catchup: Bench.Section = {
  name: "cluster.catchup",
  title: "Partitioned catch-up on Effect Cluster runners, handler waiting 5 ms per batch of 100",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      yield* PgMigrations.run
      yield* PgMigrations.partitionIndex
      // The cluster's tables, created once up front so that the runners can start together.
      yield* Effect.scoped(
        Layer.build(
          Layer.mergeAll(SqlRunnerStorage.layer, SqlMessageStorage.layer).pipe(
            Layer.provide([ShardingConfig.layer(), NodeCrypto.layerDigest])
          )
        )
      )
      const count = quick ? 4_000 : 20_000
      const reps = quick ? 1 : 3
      const one = yield* configuration(databaseUrl, 1, 1, count, reps)
      const two = yield* configuration(databaseUrl, 2, 2, count, reps)
      const four = yield* configuration(databaseUrl, 2, 4, count, reps)
      const baseline = Bench.median(one.times)
      const row = (label: string, result: { times: ReadonlyArray<number>; placement: string }) =>
        Bench.row({
          figure: `catch-up over ${count.toLocaleString("en-US")} events, ${label}`,
          measure: Bench.milliseconds,
          ours: Bench.median(result.times),
          baseline: "1 partition on 1 runner",
          raw: baseline,
          ratio: Bench.median(result.times.map((time, rep) => one.times[rep]! / time)),
          target: 1.6,
          note: `${label}: ${result.times.map((t) => t.toFixed(0)).join(", ")} ms vs ${one.times.map((t) => t.toFixed(0)).join(", ")} ms on one runner; claims: ${result.placement}`
        })
      return [row("2 partitions on 2 runners", two), row("4 partitions on 2 runners", four)]
    }).pipe(
      Effect.provide(
        Layer.mergeAll(PgEventStore.layer(), PgCheckpointStore.layer).pipe(
          Layer.provideMerge(Bench.pgClient(databaseUrl))
        )
      ),
      Effect.scoped
    )
}

/** Milliseconds to drain `readAll(options)`. */
const drain = (options: EventStore.ReadAllOptions) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const started = performance.now()
    yield* Stream.runDrain(store.readAll(options))
    return performance.now() - started
  })

const partitionRead: Bench.Section = {
  name: "cluster.partitionread",
  title: "Reading one partition of 8 beside its share of reading the whole log",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      yield* PgMigrations.run
      yield* PgMigrations.partitionIndex
      const store = yield* EventStore.EventStore
      const count = quick ? 20_000 : 100_000
      yield* Effect.forEach(
        Array.from({ length: count / 100 }, (_, s) => `part-${s}`),
        (stream) =>
          store.append(
            stream,
            Array.from({ length: 100 }, (_, i) => ({
              eventId: crypto.randomUUID(),
              type: "Filled",
              schemaVersion: 1,
              data: { i },
              metadata: {}
            })),
            ExpectedVersion.noStream
          ),
        { concurrency: 8, discard: true }
      )
      const share = yield* Bench.interleave({
        label: "partition read",
        measure: Bench.milliseconds,
        reps: quick ? 1 : 5,
        ours: drain({ partition: { count: 8, index: 0 } }),
        raw: Effect.map(drain({}), (whole) => whole / 8)
      })
      return [
        Bench.row({
          figure: `read partition 0 of 8 of ${count.toLocaleString("en-US")} events (pages of 1,000)`,
          measure: Bench.milliseconds,
          ours: share.ours,
          baseline: "the whole log's read ÷ 8",
          raw: share.raw,
          ratio: share.ratio
        })
      ]
    }).pipe(Effect.provide(PgEventStore.layer().pipe(Layer.provideMerge(Bench.pgClient(databaseUrl)))), Effect.scoped)
}

/** The cluster sections. */
export const sections: ReadonlyArray<Bench.Section> = [partitionRead, catchup]
