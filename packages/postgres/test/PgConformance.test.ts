import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { PgTest, StoreConformance } from "@chronicle/testing"
import { Layer } from "effect"

StoreConformance.suite(
  "PgEventStore",
  PgEventStore.layer({ pollInterval: "100 millis" }).pipe(
    Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer, { maxConnections: 24 }))
  )
)

StoreConformance.suite(
  "PgEventStore without group commit",
  PgEventStore.layer({ pollInterval: "100 millis", groupCommit: false }).pipe(
    Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer, { maxConnections: 24 }))
  )
)
