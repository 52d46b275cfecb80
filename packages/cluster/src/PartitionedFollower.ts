/**
 * Partitioned followers: one `LogFollower` (a projection's, the outbox's) split into `count` partitions of the log
 * (see `Partition` in core), each reading only its streams under a checkpoint of its own (`<checkpoint>#<index>/<count>`)
 * and committing it with its batches as a lone follower does. Order holds within each stream, not across streams.
 * Two layers run them, and switching between them is swapping the layer:
 *
 * - `layerLease`, the simple mode: every partition is a follower under its own `Lease` (`<lease>#<index>/<count>`), so
 *   one instance runs them all side by side and the others stand by, each partition failing over on its own.
 * - `layerCluster`: every partition is an Effect Cluster singleton, run by the runner that owns its shard and moved
 *   when a runner joins, leaves or dies. A runner taking a partition first claims its checkpoint
 *   (`CheckpointStore.claim`), then runs the follower fenced by that claim, so a runner that lost the partition but
 *   still runs can commit nothing more: its next advance is refused (`CheckpointFenced`) and rolls its batch back with
 *   it when the follower has a `transaction`. Exclusivity rests on the fence, not on timing.
 *
 * Partition `index` is registered on shard `index % shardsPerGroup + 1` of its shard group (its singleton's name is
 * chosen for that), so the partitions spread over the runners as evenly as that group's shards do.
 *
 * **Gotcha**: changing the count of a follower that has run means new checkpoints: rebuild under the new count (see
 * docs/cluster.md), or the new partitions start from the beginning of the log.
 */
import {
  Backoff,
  CheckpointStore,
  type EventStore,
  Lease,
  LogFollower,
  Partition,
  type Projection,
  ProjectionRunner
} from "@chronicle/core"
import { Effect, Layer, Result } from "effect"
import { EntityId, Sharding } from "effect/cluster"

/** How a follower is split; every field but `partitions` has a default. */
export interface Options {
  /** How many partitions, from 1 to `Partition.maxCount`. */
  readonly partitions: number
  /** The shard group of the partitions' singletons (`layerCluster`); `"default"` unless set. */
  readonly shardGroup?: string
  /** The cluster's `shardsPerGroup`, to place partitions on distinct shards (`layerCluster`); 300 unless set. */
  readonly shardsPerGroup?: number
}

/** Effect Cluster's default `shardsPerGroup`. */
const defaultShardsPerGroup = 300

/**
 * The followers of each partition of `follower`, in index order: each reads its partition, under the name,
 * checkpoint and lease `<name>#<index>/<count>` (its checkpoint and lease keyed by the follower's own when set).
 */
export const partitions = <A, E, R>(
  follower: LogFollower.Follower<A, E, R>,
  count: number
): Result.Result<ReadonlyArray<LogFollower.Follower<A, E, R>>, Partition.InvalidPartitionCount> =>
  Partition.isValidCount(count)
    ? Result.succeed(
        Partition.all(count).map((partition) => ({
          ...follower,
          name: Partition.key(follower.name, partition),
          checkpoint: Partition.key(follower.checkpoint ?? follower.name, partition),
          lease: Partition.key(follower.lease ?? follower.name, partition),
          partition
        }))
      )
    : Result.fail(new Partition.InvalidPartitionCount({ name: follower.name, count }))

/**
 * Runs every partition of `follower` in the background under its own lease for as long as the layer lives (the
 * simple mode): the instance that takes a partition's lease runs it, the others stand by.
 */
export const layerLease = <A, E, R>(
  follower: LogFollower.Follower<A, E, R>,
  options: Options
): Layer.Layer<
  never,
  Partition.InvalidPartitionCount | LogFollower.InvalidFollowerName,
  LogFollower.Requirements<R> | Lease.Lease
> =>
  Layer.effectDiscard(
    Effect.flatMap(Effect.fromResult(partitions(follower, options.partitions)), (followers) =>
      Effect.forEach(followers, (one) => LogFollower.start(one), { discard: true })
    )
  )

/**
 * Runs one partition while this runner owns it: claims its checkpoint, then follows it fenced by that claim until it
 * stops with `ProjectionFailed` (the singleton then dies, as a lone follower's `await` ends) or the runner loses it.
 */
const own = <A, E, R>(follower: LogFollower.Follower<A, E, R>) =>
  Effect.gen(function* () {
    const checkpoint = follower.checkpoint ?? follower.name
    // The singleton dies on a failure: a claim that fails (the database down) is retried until it passes.
    const epoch = yield* CheckpointStore.CheckpointStore.use((checkpoints) => checkpoints.claim(checkpoint)).pipe(
      Effect.tapError((error) => Effect.logWarning(`${follower.name}: ${error.message}, retrying`)),
      Effect.retry(Backoff.schedule(follower.backoff))
    )
    yield* Effect.logInfo(`${follower.name}: owned under epoch ${epoch}`)
    // The cluster decides who runs a partition and the claim fences the others: the lease only needs this process.
    const handle = yield* LogFollower.start({ ...follower, epoch }).pipe(
      Effect.provideServiceEffect(Lease.Lease, Lease.makeMemory)
    )
    return yield* handle.await
  })

/**
 * The name of the singleton that runs a partition: `chronicle:<checkpoint>`, with the first suffix `~n` that lands it
 * on shard `index % shardsPerGroup + 1`; without a suffix if none of the first 100,000 does (a wrong `shardsPerGroup`).
 */
const singletonName = (
  sharding: Sharding.Sharding["Service"],
  follower: LogFollower.Follower<any, any, any>,
  group: string,
  shardsPerGroup: number
): string => {
  const base = `chronicle:${follower.checkpoint ?? follower.name}`
  const wanted = ((follower.partition?.index ?? 0) % shardsPerGroup) + 1
  for (let suffix = 0; suffix < 100_000; suffix++) {
    const name = `${base}~${suffix}`
    if (sharding.getShardId(EntityId.make(name), group).id === wanted) return name
  }
  return base
}

/**
 * Runs every partition of `follower` as an Effect Cluster singleton for as long as the layer lives: the runner that
 * owns a partition's shard claims its checkpoint and runs it, fenced; when the shard moves, the partition moves.
 */
export const layerCluster = <A, E, R>(
  follower: LogFollower.Follower<A, E, R>,
  options: Options
): Layer.Layer<
  never,
  Partition.InvalidPartitionCount,
  Exclude<R, Lease.Lease> | EventStore.EventStore | CheckpointStore.CheckpointStore | Sharding.Sharding
> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const followers = yield* Effect.fromResult(partitions(follower, options.partitions))
      const sharding = yield* Sharding.Sharding
      const group = options.shardGroup ?? "default"
      yield* Effect.forEach(
        followers,
        (one) =>
          sharding.registerSingleton(
            singletonName(sharding, one, group, options.shardsPerGroup ?? defaultShardsPerGroup),
            own(one),
            { shardGroup: group }
          ),
        { discard: true }
      )
    })
  )

/**
 * Rebuilds a projection in place under `partitions` partitions, the procedure for changing its count: resets its read
 * model (its `reset`), sets every new partition's checkpoint back to the start and catches them all up to the head
 * of the log, side by side. Stop every runner of the projection (under any count) first, then start it under the new
 * count. Returns the checkpoint each partition reached, in index order.
 */
export const rebuild = <A, Err, R>(
  projection: Projection.Projection<A, Err, R>,
  options: Omit<Options, "shardGroup" | "shardsPerGroup"> & ProjectionRunner.Options
): Effect.Effect<
  ReadonlyArray<bigint>,
  Partition.InvalidPartitionCount | LogFollower.CatchUpError | Err,
  ProjectionRunner.Requirements<R>
> =>
  Effect.gen(function* () {
    const followers = yield* Effect.fromResult(
      partitions(ProjectionRunner.follower(projection, options), options.partitions)
    )
    yield* projection.reset
    const checkpoints = yield* CheckpointStore.CheckpointStore
    yield* Effect.forEach(followers, (one) => checkpoints.save(one.checkpoint ?? one.name, 0n), { discard: true })
    return yield* Effect.forEach(followers, (one) => LogFollower.catchUp(one), { concurrency: "unbounded" })
  })
