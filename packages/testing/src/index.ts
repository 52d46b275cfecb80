export * as EmbeddedPostgres from "./EmbeddedPostgres.ts"
export * as NatsServer from "./NatsServer.ts"
export * as PgTest from "./PgTest.ts"
export * as SnapshotProperties from "./SnapshotProperties.ts"
