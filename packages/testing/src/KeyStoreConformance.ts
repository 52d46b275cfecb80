/**
 * The key-store conformance suite: the `KeyStore` contract as vitest tests, for the stores Chronicle ships and for an
 * adapter of your own (a KMS, Vault). One call registers it: `KeyStoreConformance.suite("MyKeyStore", layer)`. It
 * checks that a subject keeps one key, that `find` never creates one, that forgetting is final and idempotent (also
 * for a subject that never had a key), that concurrent first uses of a subject agree on its key, and that a subject id
 * no store can hold (a NUL, a lone surrogate) is refused as `InvalidSubject` by every method.
 */
import { KeyStore } from "@chronicle/core"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"

const newSubject = () => `subject-${crypto.randomUUID()}`
const same = (a: KeyStore.DataKey | undefined, b: KeyStore.DataKey | undefined) =>
  a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b))

/** Registers the conformance tests of the `KeyStore` that `store` provides. */
export const suite = <E>(name: string, store: Layer.Layer<KeyStore.KeyStore, E>): void =>
  layer(store, { excludeTestServices: true })(`${name} (KeyStore conformance)`, (it) => {
    it.effect("keysFor makes a 256-bit key per subject once, and returns it again after", () =>
      Effect.gen(function* () {
        const keys = yield* KeyStore.KeyStore
        const [a, b] = [newSubject(), newSubject()]
        const first = yield* keys.keysFor([a, b, a])
        assert.strictEqual(first.size, 2)
        assert.strictEqual(first.get(a)!.length, 32)
        assert.isFalse(same(first.get(a), first.get(b)))
        const again = yield* keys.keysFor([a])
        assert.isTrue(same(again.get(a), first.get(a)))
        assert.isTrue(same((yield* keys.find([a, b])).get(b), first.get(b)))
      })
    )

    it.effect("find returns existing keys only, and never makes one", () =>
      Effect.gen(function* () {
        const keys = yield* KeyStore.KeyStore
        const [known, unknown] = [newSubject(), newSubject()]
        yield* keys.keysFor([known])
        const found = yield* keys.find([known, unknown])
        assert.deepStrictEqual([...found.keys()], [known])
        assert.strictEqual((yield* keys.find([unknown])).size, 0)
      })
    )

    it.effect("forget is final: the key is gone, no new key is made, and forgetting twice is a no-op", () =>
      Effect.gen(function* () {
        const keys = yield* KeyStore.KeyStore
        const [subject, other, never] = [newSubject(), newSubject(), newSubject()]
        const before = yield* keys.keysFor([subject, other])
        yield* keys.forget(subject)
        yield* keys.forget(subject)
        yield* keys.forget(never)
        assert.deepStrictEqual([...(yield* keys.find([subject, other, never])).keys()], [other])
        assert.isTrue(same((yield* keys.find([other])).get(other), before.get(other)))
        for (const forgotten of [subject, never]) {
          const refused = yield* keys.keysFor([other, forgotten]).pipe(Effect.flip)
          assert.deepInclude(refused, { _tag: "SubjectForgotten", subject: forgotten })
        }
      })
    )

    it.effect("concurrent first uses of a subject agree on one key", () =>
      Effect.gen(function* () {
        const keys = yield* KeyStore.KeyStore
        const subject = newSubject()
        const found = yield* Effect.forEach(
          Array.from({ length: 8 }, () => subject),
          (s) => Effect.map(keys.keysFor([s]), (map) => map.get(s)),
          { concurrency: "unbounded" }
        )
        for (const key of found) assert.isTrue(same(key, found[0]))
      })
    )

    it.effect("a subject with a NUL or a lone surrogate is refused with InvalidSubject, and makes no key", () =>
      Effect.gen(function* () {
        const keys = yield* KeyStore.KeyStore
        const valid = newSubject()
        for (const bad of [`${newSubject()}\u0000`, `${newSubject()}\ud800`, `\udfff${newSubject()}`]) {
          const refusals = [
            yield* keys.keysFor([valid, bad]).pipe(Effect.flip),
            yield* keys.find([bad]).pipe(Effect.flip),
            yield* keys.forget(bad).pipe(Effect.flip)
          ]
          for (const refused of refusals) assert.deepInclude(refused, { _tag: "InvalidSubject", subject: bad })
        }
        assert.strictEqual((yield* keys.find([valid])).size, 0)
      })
    )
  })
