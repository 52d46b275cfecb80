/**
 * A cluster runner process for the `cluster.catchup` bench: joins the Effect Cluster stored in the database at
 * argv[2] (as runner argv[3], a name for the bench) on port argv[4], and, once it reads a line on stdin, runs the `load` projection in argv[5]
 * partitions as cluster singletons; each batch waits 5 ms (an I/O-bound read model) and commits with its checkpoint.
 * Prints `owned <partition>` for each partition it takes. Started with `node` directly.
 */
import { createInterface } from "node:readline"
import { PartitionedFollower } from "@chronicle/cluster"
import { Projection, ProjectionRunner } from "@chronicle/core"
import { PgCheckpointStore, PgDeadLetters, PgEventStore, PgProjection } from "@chronicle/postgres"
import { NodeClusterSocket, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Deferred, Effect, Layer, Logger, Option, Redacted } from "effect"
import { RunnerAddress } from "effect/cluster"

const [url = "", , port = "0", partitions = "1"] = process.argv.slice(2)

/** The bench's projection: reads `load-*` streams in batches of 100, each waiting 5 ms. */
export const projection = Projection.make({
  name: "load",
  categories: ["load"],
  decode: Projection.recorded,
  batchSize: 100,
  onFailure: "retry",
  handle: () => Effect.sleep("5 millis")
})

const Pg = PgClient.layer({ url: Redacted.make(url), maxConnections: 10 })
const Services = Layer.mergeAll(
  PgEventStore.layer({ pollInterval: "50 millis" }),
  PgCheckpointStore.layer,
  PgDeadLetters.layer,
  NodeClusterSocket.layer({
    storage: "sql",
    shardingConfig: {
      runnerAddress: Option.some(RunnerAddress.make("127.0.0.1", Number(port))),
      // Two shards: with two runners each owns one, and the partitions alternate between them.
      shardsPerGroup: 2,
      refreshAssignmentsInterval: "500 millis",
      runnerHealthCheckInterval: "1 second"
    }
  })
).pipe(Layer.provideMerge(Pg))

const go = Effect.gen(function* () {
  const line = yield* Deferred.make<void>()
  createInterface({ input: process.stdin }).once("line", () => Deferred.doneUnsafe(line, Effect.void))
  yield* Deferred.await(line)
})

const Partitions = Layer.unwrap(
  Effect.gen(function* () {
    yield* go
    const follower = ProjectionRunner.follower(projection, { transaction: yield* PgProjection.transaction })
    return PartitionedFollower.layerCluster(follower, { partitions: Number(partitions), shardsPerGroup: 2 })
  })
)

// Only the claims reach stdout, where the bench counts them: `<follower>: owned under epoch <n>`.
const ClaimsOnly = Logger.layer([
  Logger.make(({ message }) => {
    const text = Array.isArray(message) ? message.join(" ") : String(message)
    if (text.includes("owned under epoch")) process.stdout.write(`${text}\n`)
  })
])

Layer.launch(Partitions.pipe(Layer.provide(Services))).pipe(Effect.provide(ClaimsOnly), NodeRuntime.runMain)
