import { createSecretKey } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as OpenWorker from "../src/internal/OpenWorker.ts"
import * as KeyStore from "../src/KeyStore.ts"

describe("OpenWorker", () => {
  it.effect("opens every chunk of a batch the calling thread leaves to it; altered values do not open", () =>
    Effect.gen(function* () {
      const keys = Array.from({ length: 5 }, () => KeyStore.generateKey())
      const size = 10 * OpenWorker.chunk + 3
      const plaintexts = Array.from({ length: size }, (_, i) => `value ${i}`)
      const sealed = plaintexts.map((plaintext, i) => {
        const value = KeyStore.seal(keys[i % keys.length]!, plaintext, `context ${i}`)
        return i % 9 === 2 ? `${value.slice(0, 30)}${value[30] === "A" ? "B" : "A"}${value.slice(31)}` : value
      })
      const batch: OpenWorker.Batch = {
        keys: keys.map((key) => createSecretKey(key)),
        keyIndex: plaintexts.map((_, i) => i % keys.length),
        sealed,
        contexts: plaintexts.map((_, i) => `context ${i}`)
      }
      // The calling thread takes no chunk here, so the worker opens them all.
      const reply = yield* Effect.callback<OpenWorker.Opened | undefined>((resume) => {
        const cancel = OpenWorker.share(batch, new Int32Array(new SharedArrayBuffer(4)), (opened) =>
          resume(Effect.succeed(opened))
        )
        if (cancel === undefined) resume(Effect.succeed(undefined))
      })
      assert.isDefined(reply)
      const opened = new Array<string | null>(size)
      for (const [chunk, start] of reply!.starts.entries()) {
        for (const [i, value] of reply!.opened[chunk]!.entries()) opened[start + i] = value
      }
      for (const [i, plaintext] of plaintexts.entries()) {
        assert.strictEqual(opened[i], i % 9 === 2 ? null : plaintext, `value ${i}`)
      }
    })
  )
})
