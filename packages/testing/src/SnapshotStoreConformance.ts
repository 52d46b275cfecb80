/**
 * The snapshot-store conformance suite: the `SnapshotStore` contract as vitest tests, for the stores Chronicle ships
 * and for a store of your own. One call registers it: `SnapshotStoreConformance.suite("MySnapshotStore", layer)`. It
 * checks that each stream keeps its latest snapshot (saved, replaced, loaded and deleted), that a state reads back
 * as it was saved (Unicode text included), and that bad input is refused typed before any I/O and stores nothing: a
 * stream name no store can hold with `InvalidStreamName`, a snapshot no store can hold (a NUL or a lone surrogate in
 * its state, a number JSON cannot hold, a malformed version, event id or fingerprint) with `InvalidSnapshot`. Stream
 * names are random, so it runs against a shared, non-empty database.
 */
import { SnapshotStore } from "@chronicle/core"
import { assert, layer } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"

const newStream = () => `snap-${crypto.randomUUID()}`
const snapshotOf = (stream: string, version: number, state: SnapshotStore.Snapshot["state"]) => ({
  stream,
  version,
  eventId: crypto.randomUUID(),
  fingerprint: "fingerprint-1",
  state
})

/** Registers the conformance tests of the `SnapshotStore` that `store` provides. */
export const suite = <E>(name: string, store: Layer.Layer<never, E>): void =>
  layer(store, { excludeTestServices: true })(`${name} (SnapshotStore conformance)`, (it) => {
    it.effect("saves, replaces, loads and deletes one snapshot per stream, leaving other streams alone", () =>
      Effect.gen(function* () {
        const snapshots = yield* SnapshotStore.SnapshotStore
        const [stream, other] = [newStream(), newStream()]
        assert.isTrue(Option.isNone(yield* snapshots.load(stream)))
        const first = snapshotOf(stream, 3, { counts: [["x", 3]], total: 3 })
        const beside = snapshotOf(other, 1, { total: 1 })
        yield* snapshots.save(first)
        yield* snapshots.save(beside)
        assert.deepStrictEqual(yield* snapshots.load(stream), Option.some(first))
        const later = snapshotOf(stream, 4, { counts: [], total: 0 })
        yield* snapshots.save(later)
        assert.deepStrictEqual(yield* snapshots.load(stream), Option.some(later))
        yield* snapshots.delete(stream)
        yield* snapshots.delete(stream)
        assert.isTrue(Option.isNone(yield* snapshots.load(stream)))
        assert.deepStrictEqual(yield* snapshots.load(other), Option.some(beside))
      })
    )

    it.effect("a state reads back as saved: Unicode text, nesting, numbers, null", () =>
      Effect.gen(function* () {
        const snapshots = yield* SnapshotStore.SnapshotStore
        const stream = newStream()
        const state = {
          "名前 🎉": ["e\u0301", "\u202eevil", "𝄞", ""],
          nested: { deeper: [[1.5, -2, 1e21], null, true] },
          "": null
        }
        const saved = snapshotOf(stream, 7, state)
        yield* snapshots.save(saved)
        assert.deepStrictEqual(yield* snapshots.load(stream), Option.some(saved))
      })
    )

    it.effect("a stream name no store can hold is InvalidStreamName on load, save and delete", () =>
      Effect.gen(function* () {
        const snapshots = yield* SnapshotStore.SnapshotStore
        for (const stream of ["snap-\u0000", "snap-\ud800", "nodash"]) {
          const errors = [
            yield* Effect.flip(snapshots.load(stream)),
            yield* Effect.flip(snapshots.save(snapshotOf(stream, 1, {}))),
            yield* Effect.flip(snapshots.delete(stream))
          ]
          assert.deepStrictEqual(
            errors.map((error) => error._tag),
            ["InvalidStreamName", "InvalidStreamName", "InvalidStreamName"]
          )
        }
      })
    )

    it.effect("a snapshot no store can hold is InvalidSnapshot naming the bad value, and stores nothing", () =>
      Effect.gen(function* () {
        const snapshots = yield* SnapshotStore.SnapshotStore
        const stream = newStream()
        const kept = snapshotOf(stream, 2, { name: "kept" })
        yield* snapshots.save(kept)
        const cases: ReadonlyArray<readonly [SnapshotStore.Snapshot, string]> = [
          [snapshotOf(stream, 3, { name: "nul\u0000" }), "state.name"],
          [snapshotOf(stream, 3, { items: ["ok", "lone \ud800"] }), "state.items[1]"],
          [snapshotOf(stream, 3, { ["key\u0000"]: 1 }), 'state["key\\u0000"]'],
          [snapshotOf(stream, 3, { total: Number.NaN }), "state.total"],
          [snapshotOf(stream, 3, { total: 10n } as never), "state.total"],
          [snapshotOf(stream, 3, { at: new Date(0) } as never), "state.at"],
          [snapshotOf(stream, 1.5, {}), "version"],
          [snapshotOf(stream, -1, {}), "version"],
          [{ ...snapshotOf(stream, 3, {}), eventId: "not-a-uuid" }, "eventId"],
          [{ ...snapshotOf(stream, 3, {}), fingerprint: "f\u0000" }, "fingerprint"]
        ]
        for (const [snapshot, path] of cases) {
          const refused = yield* Effect.flip(snapshots.save(snapshot))
          assert.deepInclude(refused, { _tag: "InvalidSnapshot", stream, path }, path)
        }
        assert.deepStrictEqual(yield* snapshots.load(stream), Option.some(kept))
      })
    )
  })
