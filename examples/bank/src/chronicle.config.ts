/**
 * The bank app's config module for the `chronicle` command: its aggregate, whose event schemas carry their version
 * histories (so `chronicle streams show account-<id>` upcasts old events and `chronicle events migrate` rewrites
 * them), and its key store in Postgres, whose master key comes from `CHRONICLE_MASTER_KEY` (so `chronicle forget`
 * can forget a customer, and `streams show` opens their sealed names). Use it with
 * `--config examples/bank/src/chronicle.config.ts`.
 */
import { PgKeyStore } from "@chronicle/postgres"
import { Account } from "./Account.ts"

/** The bank account aggregate: streams `account-<id>`. */
export const aggregates = [Account]

/** Data keys in `chronicle_keys`, wrapped under the master key in `CHRONICLE_MASTER_KEY`. */
export const keyStore = PgKeyStore.layerConfig
