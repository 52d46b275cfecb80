/**
 * `chronicle keys rotate` on a database of its own: data keys wrapped under an old master key are re-wrapped under
 * the new one, in batches, resumably; and the CLI's registry knows the fact `forget` records.
 */
import { PgKeyStore } from "@chronicle/postgres"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { Account } from "../../../examples/bank/src/Account.ts"
import * as Database from "../src/internal/Database.ts"
import { chronicle, json, masterKey, onDatabase, query, setup } from "./fixtures/harness.ts"

setup()

const newKey = Buffer.alloc(32, 9).toString("base64")
const subjects = ["cust-1", "cust-2", "cust-3"]

describe("chronicle keys", () => {
  it("rotate re-wraps every data key under the new master key, and is done once done", async () => {
    await chronicle(["migrate"])
    const keysUnder = (key: string) =>
      onDatabase(Effect.flatMap(PgKeyStore.make({ masterKey: Redacted.make(key) }), (store) => store.find(subjects)))
    const before = await onDatabase(
      Effect.flatMap(PgKeyStore.make({ masterKey: Redacted.make(masterKey) }), (store) => store.keysFor(subjects))
    )
    const masters = () => query<{ id: string }>("SELECT DISTINCT master_key_id AS id FROM chronicle_keys")

    const missing = await chronicle(["keys", "rotate"], { CHRONICLE_MASTER_KEY: undefined })
    assert.strictEqual(missing.code, 1)
    const env = { CHRONICLE_MASTER_KEY: newKey, CHRONICLE_PREVIOUS_MASTER_KEYS: masterKey }
    const rotated = await chronicle(["keys", "rotate", "--batch-size", "2", "--json"], env)
    assert.strictEqual(rotated.code, 0, rotated.stderr)
    assert.deepStrictEqual(json(rotated), { done: 3, total: 3 })
    assert.strictEqual((await masters()).length, 1)
    assert.deepStrictEqual(await keysUnder(newKey), before) // the same data keys, under the new master key only
    const old = await keysUnder(masterKey).then(
      () => "opened",
      (error: Error) => error.message
    )
    assert.include(old, "which this store was not given") // the old master key opens none of them

    const again = await chronicle(["keys", "rotate"], env)
    assert.strictEqual(again.code, 0, again.stderr)
    assert.strictEqual(again.stdout.trim(), "every data key is wrapped under the current master key: nothing to rotate")
  })

  it("keys and keys rotate have --help with an example", async () => {
    for (const path of [["keys"], ["keys", "rotate"]]) {
      const help = await chronicle([...path, "--help"])
      assert.strictEqual(help.code, 0, help.stderr)
      assert.match(help.stdout, /EXAMPLES\n( +# .*\n)? +chronicle keys rotate/)
    }
  })

  it("the registry of the config's aggregates includes SubjectForgotten", () => {
    const registry = Database.registryOf({ aggregates: [Account] })
    assert.isTrue(registry.has("SubjectForgotten"))
    assert.isTrue(registry.has("AccountOpened"))
  })
})
