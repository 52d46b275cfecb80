/**
 * Chronicle on Effect Cluster: partitioned followers spread over runners, aggregates as entities, and sharding
 * settings for clusters on one machine.
 */
export * as AggregateEntity from "./AggregateEntity.ts"
export * as LocalSharding from "./LocalSharding.ts"
export * as PartitionedFollower from "./PartitionedFollower.ts"
