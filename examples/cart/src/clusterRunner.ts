/**
 * One runner of `pnpm demo:cluster`: hosts the cart entities, with the cluster's storage and the events in the
 * database at argv[2], listening on loopback port argv[3]. It prints `<name> loads <stream>` when an entity loads its
 * stream (argv[4] is its name), so the demo can show where each cart lives.
 */

import { AggregateEntity, LocalSharding } from "@chronicle/cluster"
import { EventStore } from "@chronicle/core"
import { PgEventStore } from "@chronicle/postgres"
import { NodeClusterSocket, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { Carts } from "./clusterConfig.ts"

const [url = "", port = "0", name = "runner"] = process.argv.slice(2)

// The Postgres event store, telling the demo which carts this runner loads.
const Store = Layer.effect(
  EventStore.EventStore,
  Effect.map(PgEventStore.make(), (store) =>
    EventStore.EventStore.of({
      ...store,
      readStream: (stream, options) => {
        process.stdout.write(`${name} loads ${stream}\n`)
        return store.readStream(stream, options)
      }
    })
  )
)
const Cluster = NodeClusterSocket.layer({
  storage: "sql",
  shardingConfig: LocalSharding.runner(Number(port))
})

Layer.launch(
  AggregateEntity.layer(Carts).pipe(
    Layer.provide([Cluster, Store]),
    Layer.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 4 }))
  )
).pipe(NodeRuntime.runMain)
