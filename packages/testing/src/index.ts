export * as EmbeddedPostgres from "./EmbeddedPostgres.ts"
export * as PgTest from "./PgTest.ts"
