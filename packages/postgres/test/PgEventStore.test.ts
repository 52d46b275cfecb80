import { EventId, EventStore, ExpectedVersion } from "@chronicle/core"
import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"

const StoreLive = PgEventStore.layer().pipe(Layer.provideMerge(PgMigrations.layer), Layer.provideMerge(PgTest.layer()))

const event = (type: string) => ({ eventId: EventId.random(), type, schemaVersion: 1, data: { n: 1 }, metadata: {} })

layer(StoreLive, { excludeTestServices: true })("PgEventStore", (it) => {
  it.effect("appends and reads", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const a = yield* store.append("cart-1", [event("A"), event("B")], ExpectedVersion.noStream)
      const b = yield* store.append("cart-1", [event("C")], ExpectedVersion.exact(2))
      const conflict = yield* store.append("cart-1", [event("D")], ExpectedVersion.exact(2)).pipe(Effect.flip)
      const all = yield* Stream.runCollect(store.readAll())
      console.log(
        a,
        b,
        conflict,
        all.map((e) => [e.position, e.stream, e.version, e.type])
      )
      assert.strictEqual(all.length, 3)
    })
  )
})
