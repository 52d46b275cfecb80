// @chronicle/testing depends on core, so core's tests reach the suite by path rather than by package name.
import * as StoreConformance from "../../testing/src/StoreConformance.ts"
import * as EventStore from "../src/EventStore.ts"

StoreConformance.suite("EventStore.layerMemory", EventStore.layerMemory)
