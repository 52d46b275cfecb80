/**
 * What the cluster demo's processes share: the cart entity, and sharding settings that notice a dead runner within
 * seconds (health checks every second, assignments re-read every half second) so the demo stays short. Production
 * keeps Effect's defaults unless it has a reason (see docs/cluster.md).
 */
import { AggregateEntity } from "@chronicle/cluster"
import type { ShardingConfig } from "effect/cluster"
import { Cart, CartEmpty } from "./Cart.ts"

/** The cart aggregate as a cluster entity; `CartEmpty` is its refusal. */
export const Carts = AggregateEntity.make(Cart, { error: CartEmpty })

/** Sharding settings for every process of the demo cluster. */
export const shardingConfig: Partial<ShardingConfig.ShardingConfig["Service"]> = {
  shardsPerGroup: 30,
  refreshAssignmentsInterval: "500 millis",
  runnerHealthCheckInterval: "1 second",
  shardLockRefreshInterval: "3 seconds",
  shardLockExpiration: "15 seconds",
  sendRetryInterval: "50 millis"
}
