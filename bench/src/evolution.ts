/**
 * The cost of event evolution and privacy on reads: reading 100,000 events of an old version through `Upcasting`,
 * and 100,000 events with sealed personal fields through `CryptoShredding` (keys in Postgres), each decoded into
 * domain events, beside reading and decoding the same number of current, unencrypted events. Ratios below 1 are the
 * price per event of upcasting and of decryption.
 */
import { randomBytes } from "node:crypto"
import {
  CryptoShredding,
  type Envelope,
  EventCodec,
  EventStore,
  EventVersions,
  ExpectedVersion,
  KeyStore,
  PersonalData,
  Upcasting
} from "@chronicle/core"
import { PgEventStore, PgKeyStore, PgMigrations } from "@chronicle/postgres"
import { Effect, Layer, Redacted, Result, Schema, Stream } from "effect"
import * as Bench from "./Bench.ts"

const DepositedV1 = Schema.TaggedStruct("Deposited", { amount: Schema.Finite })
const Deposited = Schema.TaggedStruct("Deposited", { cents: Schema.Int, currency: Schema.String })
const DepositedVersions = EventVersions.make(DepositedV1).next(Deposited, {
  decode: ({ amount }) => ({ _tag: "Deposited" as const, cents: Math.round(amount * 100), currency: "EUR" }),
  encode: ({ cents }) => ({ _tag: "Deposited" as const, amount: cents / 100 })
})
const Registered = Schema.TaggedStruct("Registered", {
  customerId: Schema.String.pipe(PersonalData.subject),
  name: Schema.String.pipe(PersonalData.personal({ redacted: "[forgotten]" })),
  email: Schema.String.pipe(PersonalData.personal({ redacted: "[forgotten]" }))
})
const Event = Schema.Union([DepositedVersions.schema, Registered])
const codec = EventCodec.make(Event)
const registry = EventVersions.registry([Event])

const batch = 1_000
const event = (type: string, schemaVersion: number, data: Schema.JsonObject): Envelope.EventData => ({
  eventId: crypto.randomUUID(),
  type,
  schemaVersion,
  data,
  metadata: {}
})

/** Reads a category of the global log and decodes every event, failing on the first that does not decode. */
const readDecoded = (store: EventStore.Service, category: string) =>
  Stream.runForEachArray(store.readAll({ categories: [category] }), (page) =>
    Effect.suspend(() => {
      for (const recorded of page) {
        const decoded = codec.decode(recorded)
        if (Result.isFailure(decoded)) return Effect.fail(decoded.failure)
      }
      return Effect.void
    })
  )

const readCosts: Bench.Section = {
  name: "evolution.read",
  title: "Upcasting and decryption: reading and decoding old or sealed events beside current, plain ones",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const count = quick ? 10_000 : 100_000
      const reps = quick ? 2 : 5
      const plain = yield* EventStore.EventStore
      const sealing = yield* CryptoShredding.make(plain, { events: [Event] })
      const fill = (category: string, write: EventStore.Service, make: (i: number) => Envelope.EventData) =>
        Effect.forEach(
          Array.from({ length: count / batch }, (_, s) => s),
          (s) =>
            write.append(
              `${category}-${s}`,
              Array.from({ length: batch }, (_, i) => make(s * batch + i)),
              ExpectedVersion.noStream
            ),
          { concurrency: 8, discard: true }
        )
      yield* fill("current", plain, (i) => event("Deposited", 2, { cents: i, currency: "EUR" }))
      yield* fill("old", plain, (i) => event("Deposited", 1, { amount: i / 100 }))
      const person = (i: number) => ({ customerId: `c${i % 1_000}`, name: `Name ${i}`, email: `n${i}@example.com` })
      yield* fill("clear", plain, (i) => event("Registered", 1, person(i)))
      yield* fill("sealed", sealing, (i) => event("Registered", 1, person(i)))

      const time = (effect: Effect.Effect<void, unknown>) => Bench.elapsed(effect)
      const upcasting = yield* Bench.interleave({
        label: `upcast read ${count}`,
        measure: Bench.milliseconds,
        reps,
        ours: time(readDecoded(Upcasting.make(plain, registry), "old")),
        raw: time(readDecoded(plain, "current"))
      })
      const decryption = yield* Bench.interleave({
        label: `decrypting read ${count}`,
        measure: Bench.milliseconds,
        reps,
        ours: time(readDecoded(sealing, "sealed")),
        raw: time(readDecoded(plain, "clear"))
      })
      const perEvent = (result: { readonly ours: number; readonly raw: number }) =>
        `${(((result.ours - result.raw) * 1000) / count).toFixed(2)} µs per event over the plain read`
      // The floor under the decrypting read: one AES-256-GCM open per event on one thread, values as the bench seals.
      const keys = Array.from({ length: 1_000 }, () => KeyStore.generateKey())
      const sealed = Array.from({ length: count }, (_, i) => {
        const values = JSON.stringify([person(i).name, person(i).email])
        return { key: keys[i % keys.length]!, sealed: KeyStore.seal(keys[i % keys.length]!, values, `c\u0000${i}`) }
      })
      const opening = yield* Bench.elapsed(
        Effect.sync(() => {
          for (const [i, value] of sealed.entries()) KeyStore.open(value.key, value.sealed, `c\u0000${i}`)
        })
      )
      return [
        Bench.row({
          figure: `read + decode ${count.toLocaleString("en-US")} v1 events upcast to v2`,
          measure: Bench.milliseconds,
          ...upcasting,
          baseline: "read + decode of current events",
          note: perEvent(upcasting)
        }),
        Bench.row({
          figure: `read + decode ${count.toLocaleString("en-US")} events with 2 sealed fields (1,000 subjects)`,
          measure: Bench.milliseconds,
          ...decryption,
          baseline: "read + decode of the same events in the clear",
          note: `${perEvent(decryption)}; one AES-256-GCM open alone takes ${((opening * 1000) / count).toFixed(2)} µs on one thread`
        })
      ]
    }).pipe(
      Effect.scoped,
      Effect.provide(
        PgEventStore.layer().pipe(
          Layer.provideMerge(PgKeyStore.layer({ masterKey: Redacted.make(randomBytes(32).toString("base64")) })),
          Layer.provideMerge(PgMigrations.layer),
          Layer.provideMerge(Bench.pgClient(databaseUrl))
        )
      )
    )
}

/** The evolution and privacy sections, in the order they run. */
export const sections: ReadonlyArray<Bench.Section> = [readCosts]
