/**
 * Sharding settings for a cluster whose processes share one machine, as the demo and the tests run it: every runner
 * listens on loopback, and a dead runner is noticed within seconds (health checks every second, assignments re-read
 * every half second, shard locks refreshed every 3 s and expiring after 15 s, sends retried every 50 ms), with 30
 * shards. They suit a machine you control; on a real network keep Effect's defaults unless you have measured.
 */
import { Option } from "effect"
import { RunnerAddress, type ShardingConfig } from "effect/cluster"

/** Settings as `NodeClusterSocket.layer({ shardingConfig })` takes them. */
export type Settings = Partial<ShardingConfig.ShardingConfig["Service"]>

const quick: Settings = {
  shardsPerGroup: 30,
  refreshAssignmentsInterval: "500 millis",
  runnerHealthCheckInterval: "1 second",
  shardLockRefreshInterval: "3 seconds",
  shardLockExpiration: "15 seconds",
  sendRetryInterval: "50 millis"
}

/** The settings of a process that only sends (hosts nothing), with `overrides` on top. */
export const client = (overrides: Settings = {}): Settings => ({ ...quick, ...overrides })

/** The settings of a runner listening on 127.0.0.1:`port`, with `overrides` on top. */
export const runner = (port: number, overrides: Settings = {}): Settings => ({
  ...quick,
  runnerAddress: Option.some(RunnerAddress.make("127.0.0.1", port)),
  ...overrides
})
