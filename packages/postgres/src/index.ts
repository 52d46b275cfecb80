export * as PgEventStore from "./PgEventStore.ts"
export * as PgMigrations from "./PgMigrations.ts"
