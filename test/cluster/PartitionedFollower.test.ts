/**
 * Partitioned followers on a real Postgres: three cluster runner processes share 8 partitions of a projection over
 * 20,000 events, one is killed with SIGKILL mid-run and the others take its partitions, and the read model equals a
 * full replay with each stream applied in order and exactly once; a stale owner's commit is refused by the checkpoint
 * fence (no timing involved); changing the partition count by a rebuild under the new count, then running on in the
 * lease mode, keeps the model equal to a full replay.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { PartitionedFollower } from "@chronicle/cluster"
import {
  CheckpointStore,
  EventId,
  EventStore,
  ExpectedVersion,
  Lease,
  LogFollower,
  Partition,
  ProjectionRunner
} from "@chronicle/core"
import { PgCheckpointStore, PgDeadLetters, PgEventStore, PgMigrations, PgProjection } from "@chronicle/postgres"
import { FreePort } from "@chronicle/postgres/embedded"
import { PgTest } from "@chronicle/testing"
import { NodeCrypto } from "@effect/platform-node"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Result } from "effect"
import { ShardingConfig, SqlMessageStorage, SqlRunnerStorage } from "effect/cluster"
import { SqlClient } from "effect/sql"
import * as PartitionModel from "../fixtures/PartitionModel.ts"

const Database = PgTest.layer({ maxConnections: 20 })

const Live = Layer.mergeAll(
  PgEventStore.layer({ pollInterval: "100 millis" }),
  PgCheckpointStore.layer,
  PgDeadLetters.layer,
  Lease.layerMemory
).pipe(
  Layer.provideMerge(
    Layer.effectDiscard(Effect.andThen(PgMigrations.partitionIndex, PartitionModel.create)).pipe(
      Layer.provideMerge(PgMigrations.layer)
    )
  ),
  Layer.orDie,
  Layer.provideMerge(Database)
)

/** The tables of the cluster's runner and message storage, created as a runner would. */
const ClusterTables = Layer.mergeAll(SqlRunnerStorage.layer, SqlMessageStorage.layer).pipe(
  Layer.provide([ShardingConfig.layer(), NodeCrypto.layerDigest])
)

const node = fileURLToPath(new URL("../../node_modules/node/bin/node", import.meta.url))
const runnerScript = fileURLToPath(new URL("../fixtures/clusterRunner.ts", import.meta.url))

/** A cluster runner process, killed (SIGKILL) when the scope closes if still alive. */
const startRunner = (runner: string, partitions: number, batchMs: number) =>
  Effect.gen(function* () {
    const url = yield* PgTest.DatabaseUrl
    const port = yield* FreePort.pick
    return yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(node, [runnerScript, url, runner, String(port), String(partitions), String(batchMs)], {
          stdio: ["ignore", "ignore", "inherit"]
        })
      ),
      (child) => Effect.sync(() => void (child.exitCode === null && child.kill("SIGKILL")))
    )
  })

const kill = (child: ChildProcess) =>
  Effect.callback<void>((resume) => {
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeout: `${number} seconds` = "60 seconds") =>
  Effect.gen(function* () {
    while (!(yield* check)) yield* Effect.sleep("50 millis")
  }).pipe(Effect.timeout(timeout))

const query = <A extends object>(text: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text)).pipe(Effect.orDie)

/** Appends `perStream` events to each of `streams` `item-*` streams (from `from`), interleaved, up to 50 per append. */
const appendItems = (streams: number, perStream: number, from = 0) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const size = Math.min(50, perStream)
    for (let round = 0; round < perStream / size; round++) {
      yield* Effect.forEach(
        Array.from({ length: streams }, (_, i) => `item-${from + i}`),
        (stream) =>
          store.append(
            stream,
            Array.from({ length: size }, () => ({
              eventId: EventId.random(),
              type: "Added",
              schemaVersion: 1,
              data: { round },
              metadata: {}
            })),
            ExpectedVersion.any
          ),
        { concurrency: 16, discard: true }
      )
    }
  })

const appliedCount = Effect.map(query<{ n: number }>("SELECT count(*)::int AS n FROM applied"), ([row]) => row!.n)

/** The facts every run must end with: each event applied once, each stream in order, counts equal to a replay. */
const assertExactlyOnceInOrder = (total: number) =>
  Effect.gen(function* () {
    const [counts] = yield* query<{ n: number; distinct: number }>(
      "SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS distinct FROM applied"
    )
    assert.deepStrictEqual(counts, { n: total, distinct: total })
    const outOfOrder = yield* query<{ stream: string }>(`
      SELECT stream FROM (
        SELECT stream, version, row_number() OVER (PARTITION BY stream ORDER BY seq) AS rn FROM applied) x
      WHERE version <> rn LIMIT 1`)
    assert.deepStrictEqual(outOfOrder, [])
    const model = yield* query<{ stream: string; n: number }>(
      "SELECT stream, count(*)::int AS n FROM applied GROUP BY stream ORDER BY stream"
    )
    const replay = yield* query<{ stream: string; n: number }>(
      "SELECT stream_id AS stream, count(*)::int AS n FROM chronicle_events WHERE category = 'item' GROUP BY stream_id ORDER BY stream_id"
    )
    assert.deepStrictEqual(model, replay)
  })

const reset = query(
  "TRUNCATE applied, chronicle_events, chronicle_checkpoints, chronicle_dead_letters RESTART IDENTITY"
)

layer(Live, { excludeTestServices: true, timeout: 120_000 })("Partitioned followers on Postgres", (it) => {
  it.effect(
    "3 runners, 8 partitions, one SIGKILLed: the others take its partitions; exactly once, in order",
    () =>
      Effect.gen(function* () {
        yield* reset
        // The cluster's tables are created once up front, so that the runners can start together.
        yield* Effect.scoped(Layer.build(ClusterTables))
        const runners = new Map<string, ChildProcess>()
        for (const name of ["r1", "r2", "r3"]) runners.set(name, yield* startRunner(name, 8, 2))
        yield* eventually(
          Effect.map(
            query<{ n: number }>("SELECT count(*)::int AS n FROM cluster_runners WHERE healthy"),
            ([row]) => row!.n === 3
          )
        )
        yield* appendItems(200, 50)
        yield* eventually(Effect.map(appliedCount, (n) => n > 0))
        // The victim is the runner that committed the latest batch: it owned a partition then.
        const [latest] = yield* query<{ runner: string }>("SELECT runner FROM applied ORDER BY seq DESC LIMIT 1")
        const victim = latest!.runner
        yield* kill(runners.get(victim)!)
        const [{ seq: killedAt }] = (yield* query<{ seq: string }>("SELECT max(seq)::text AS seq FROM applied")) as [
          { seq: string }
        ]
        const victimPartitions = (yield* query<{ partition: number }>(
          `SELECT DISTINCT partition FROM applied WHERE runner = '${victim}' ORDER BY partition`
        )).map((row) => row.partition)
        assert.isAbove(victimPartitions.length, 0)
        yield* appendItems(200, 50, 200)
        yield* eventually(
          Effect.map(appliedCount, (n) => n >= 20_000),
          "90 seconds"
        )
        yield* assertExactlyOnceInOrder(20_000)
        // Every partition the victim ran went on without it, on the runners left.
        const takenOver = (yield* query<{ partition: number }>(
          `SELECT DISTINCT partition FROM applied WHERE seq > ${killedAt} AND runner <> '${victim}' ORDER BY partition`
        )).map((row) => row.partition)
        assert.includeMembers(takenOver, victimPartitions)
        const after = yield* query<{ n: number }>(
          `SELECT count(*)::int AS n FROM applied WHERE seq > ${killedAt} AND runner = '${victim}'`
        )
        assert.strictEqual(after[0]!.n, 0)
      }),
    { timeout: 150_000 }
  )

  it.effect(
    "a stale owner of a partition cannot commit: the checkpoint fence refuses it, and its batch rolls back",
    () =>
      Effect.gen(function* () {
        yield* reset
        const transaction = yield* PgProjection.transaction
        const partitionOf = (runner: string) =>
          Result.getOrThrow(
            PartitionedFollower.partitions(
              ProjectionRunner.follower(PartitionModel.projection({ runner, partitions: 2, batchMs: 0 }), {
                transaction
              }),
              2
            )
          )[0]!
        const [stale, current] = [partitionOf("stale"), partitionOf("current")]
        const checkpoints = yield* CheckpointStore.CheckpointStore
        yield* appendItems(20, 10)
        const staleEpoch = yield* checkpoints.claim(stale.checkpoint!)
        yield* LogFollower.catchUp({ ...stale, epoch: staleEpoch })
        const before = yield* appliedCount
        assert.isAbove(before, 0)
        yield* appendItems(20, 10)
        // The partition moves: the new owner claims it while the old one still believes it owns it.
        const currentEpoch = yield* checkpoints.claim(current.checkpoint!)
        const refused = yield* LogFollower.catchUp({ ...stale, epoch: staleEpoch }).pipe(Effect.flip)
        assert.deepInclude(refused, {
          _tag: "CheckpointFenced",
          projection: "items#0/2",
          epoch: staleEpoch,
          current: currentEpoch
        })
        assert.strictEqual(yield* appliedCount, before)
        yield* LogFollower.catchUp({ ...current, epoch: currentEpoch })
        const runners = yield* query<{ runner: string; n: number }>(
          "SELECT runner, count(*)::int AS n FROM applied GROUP BY runner ORDER BY runner"
        )
        assert.deepStrictEqual(
          runners.map((row) => row.runner),
          ["current", "stale"]
        )
        const [inPartition] = yield* query<{ n: number }>(
          "SELECT count(*)::int AS n FROM chronicle_events WHERE category = 'item'"
        )
        const expected = (yield* query<{ stream_id: string }>(
          "SELECT stream_id FROM chronicle_events WHERE category = 'item'"
        )).filter((row) => Partition.of(row.stream_id, 2) === 0).length
        assert.isBelow(expected, inPartition!.n)
        assert.strictEqual(yield* appliedCount, expected)
      })
  )

  it.effect("changing the count: a rebuild under the new count, then the lease mode runs on, equal to a replay", () =>
    Effect.gen(function* () {
      yield* reset
      const transaction = yield* PgProjection.transaction
      const projection = PartitionModel.projection({ runner: "lease", partitions: 3, batchMs: 0 })
      const under = (count: number) =>
        Result.getOrThrow(PartitionedFollower.partitions(ProjectionRunner.follower(projection, { transaction }), count))
      yield* appendItems(40, 20)
      yield* Effect.forEach(under(2), (one) => LogFollower.catchUp(one), { discard: true })
      yield* appendItems(40, 10)
      const reached = yield* PartitionedFollower.rebuild(projection, { partitions: 3, transaction })
      assert.strictEqual(reached.length, 3)
      yield* assertExactlyOnceInOrder(1_200)
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* Layer.build(
            PartitionedFollower.layerLease(ProjectionRunner.follower(projection, { transaction }), { partitions: 3 })
          )
          yield* appendItems(40, 10, 40)
          yield* eventually(Effect.map(appliedCount, (n) => n >= 1_600))
        })
      )
      yield* assertExactlyOnceInOrder(1_600)
      const [invalid] = yield* Effect.flip(
        PartitionedFollower.rebuild(projection, { partitions: 17, transaction })
      ).pipe(Effect.map((error) => [error]))
      assert.deepInclude(invalid, { _tag: "InvalidPartitionCount", name: "items", count: 17 })
    })
  )
})
