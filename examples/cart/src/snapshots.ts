/**
 * Snapshots for the cart app: carts are snapshotted every 50 events and kept in Postgres, so loading a cart reads one
 * snapshot and at most about 50 events however long it has lived. Other aggregates of the app get no snapshots
 * unless listed. Provide `layer` beside the event store; `CommandHandler.handle` picks both up.
 */
import { SnapshotPolicy } from "@chronicle/core"
import { PgSnapshotStore } from "@chronicle/postgres"
import { Layer } from "effect"
import { Cart } from "./Cart.ts"

/** When the app snapshots: carts every 50 events, everything else never. */
export const policy = SnapshotPolicy.layerByCategory({ [Cart.category]: SnapshotPolicy.everyEvents(50) })

/** The cart app's snapshots: the policy above and the Postgres snapshot store (run `PgMigrations` first). */
export const layer = Layer.mergeAll(policy, PgSnapshotStore.layer)
