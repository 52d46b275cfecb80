export * as PgCheckpointStore from "./PgCheckpointStore.ts"
export * as PgEventStore from "./PgEventStore.ts"
export * as PgLease from "./PgLease.ts"
export * as PgMigrations from "./PgMigrations.ts"
