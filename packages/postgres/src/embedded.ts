export * as EmbeddedPostgres from "./EmbeddedPostgres.ts"
export * as FreePort from "./FreePort.ts"
