/**
 * Chronicle on Effect Cluster: partitioned followers spread over runners, and aggregates as entities.
 */
export * as AggregateEntity from "./AggregateEntity.ts"
export * as PartitionedFollower from "./PartitionedFollower.ts"
