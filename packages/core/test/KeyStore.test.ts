// @chronicle/testing depends on core, so core's tests reach the suite by path rather than by package name.
import * as KeyStoreConformance from "../../testing/src/KeyStoreConformance.ts"
import * as KeyStore from "../src/KeyStore.ts"

KeyStoreConformance.suite("KeyStore.layerMemory", KeyStore.layerMemory)
