import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
// @chronicle/testing depends on core, so core's tests reach the suite by path rather than by package name.
import * as KeyStoreConformance from "../../testing/src/KeyStoreConformance.ts"
import * as KeyStore from "../src/KeyStore.ts"

KeyStoreConformance.suite("KeyStore.layerMemory", KeyStore.layerMemory)

describe("KeyStore.openAll", () => {
  const keys = Array.from({ length: 40 }, () => KeyStore.generateKey())
  // Every value sealed under one of 40 keys; every 7th altered, every 11th read under another context, every 13th
  // under another key: each must fail alone, and the others open.
  const batch = (size: number): ReadonlyArray<KeyStore.ToOpen & { readonly plaintext: string; readonly ok: boolean }> =>
    Array.from({ length: size }, (_, i) => {
      const key = keys[i % keys.length]!
      const plaintext = JSON.stringify([`name ${i}`, `n${i}@example.com`])
      const sealed = KeyStore.seal(key, plaintext, `context ${i}`)
      const altered = i % 7 === 3
      const flipped = `${sealed.slice(0, 20)}${sealed[20] === "A" ? "B" : "A"}${sealed.slice(21)}`
      return {
        key: i % 13 === 5 ? keys[(i + 1) % keys.length]! : key,
        sealed: altered ? flipped : sealed,
        context: i % 11 === 4 ? `context ${i + 1}` : `context ${i}`,
        plaintext,
        ok: !altered && i % 11 !== 4 && i % 13 !== 5
      }
    })

  it.effect("opens each value of a batch as open does; the altered and misdirected ones fail alone", () =>
    Effect.gen(function* () {
      const values = batch(300)
      const opened = yield* KeyStore.openAll(values)
      assert.strictEqual(opened.length, values.length)
      values.forEach((value, i) => {
        const result = opened[i]!
        assert.deepStrictEqual(result, KeyStore.open(value.key, value.sealed, value.context), `value ${i}`)
        if (value.ok) assert.deepStrictEqual(result, Result.succeed(value.plaintext), `value ${i}`)
        else assert.isTrue(Result.isFailure(result), `value ${i}`)
      })
    })
  )
})
