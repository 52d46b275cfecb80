/**
 * Crypto-shredding as a decorator of the `EventStore`. On append, the personal fields of each event (declared with
 * `PersonalData`) are sealed with its subject's key from the `KeyStore`, and the append is refused if a personal
 * value also shows up in the clear elsewhere in the row (metadata, stream name, another field). On read, sealed
 * fields are opened, or read as their redaction marker once the subject is forgotten, so aggregates and projections
 * still load. Compose it under `Upcasting` (decrypt first, then upcast): `Upcasting.layer(r)` over
 * `CryptoShredding.layer(r)` over the real store.
 *
 * **Gotchas:** personal string values shorter than `minLeakLength` are not searched for elsewhere (they would match
 * by chance). Values written before a field was declared personal stay in the clear: forgetting cannot erase them.
 */
import { Array as Arr, Effect, Layer, Result, Stream } from "effect"
import type { EventData, RecordedEvent } from "./Envelope.ts"
import { EventDecodeError } from "./EventCodec.ts"
import { EventStore, EventStoreError, InvalidAppend, type Service } from "./EventStore.ts"
import type * as EventVersions from "./EventVersions.ts"
import * as KeyStore from "./KeyStore.ts"
import * as PersonalData from "./PersonalData.ts"

/** Personal string values at least this long must not appear in the clear anywhere else in the row. */
export const minLeakLength = 4

/** What happens to an event of a forgotten subject that is written: refused (appends) or stored redacted. */
export type OnForgotten = "fail" | "redact"

/** Encrypts and decrypts events' personal fields with the keys of the `KeyStore` it was made with. */
export interface Cipher {
  /** Seals the personal fields of events about to be appended to `stream`. */
  readonly encrypt: (
    stream: string,
    events: ReadonlyArray<EventData>,
    onForgotten: OnForgotten
  ) => Effect.Effect<ReadonlyArray<EventData>, InvalidAppend | EventStoreError>
  /** Opens the personal fields of recorded events (redaction markers for forgotten subjects). */
  readonly decrypt: (
    events: Arr.NonEmptyReadonlyArray<RecordedEvent>
  ) => Effect.Effect<Arr.NonEmptyReadonlyArray<RecordedEvent>, EventStoreError>
}

/**
 * Builds the cipher of the event types in `registry`. **Gotcha:** an event shape whose personal declaration is not
 * usable (no subject field, a marker the field rejects) is a bug in the app's schemas, so building dies.
 */
export const makeCipher = (registry: EventVersions.Registry): Effect.Effect<Cipher, never, KeyStore.KeyStore> =>
  Effect.gen(function* () {
    const keys = yield* KeyStore.KeyStore
    const declarations = new Map<string, PersonalData.Declaration>()
    for (const entry of registry.values()) {
      for (let version = 1; version <= entry.version; version++) {
        const declared = PersonalData.declarationOf(entry.shape(version)!)
        if (Result.isFailure(declared)) {
          return yield* Effect.die(new Error(`${entry.type} v${version}: ${declared.failure}`))
        }
        if (declared.success !== undefined) declarations.set(`${entry.type}@${version}`, declared.success)
      }
    }
    const declarationOf = (event: Pick<EventData, "type" | "schemaVersion">) =>
      declarations.get(`${event.type}@${event.schemaVersion}`)

    const keyError = (operation: string, stream?: string) => (cause: KeyStore.KeyStoreError) =>
      new EventStoreError(stream === undefined ? { operation, cause } : { operation, stream, cause })

    const keysOf = (stream: string, subjects: ReadonlyArray<string>, onForgotten: OnForgotten) =>
      onForgotten === "fail"
        ? keys.keysFor(subjects).pipe(
            Effect.catchTags({
              SubjectForgotten: (error) =>
                Effect.fail(
                  new InvalidAppend({ stream, reason: { _tag: "SubjectForgotten", subject: error.subject } })
                ),
              KeyStoreError: (error) => Effect.fail(keyError("keysFor", stream)(error))
            })
          )
        : Effect.forEach(subjects, (subject) =>
            keys.keysFor([subject]).pipe(
              Effect.catchTag("SubjectForgotten", () => Effect.succeed(new Map<string, KeyStore.DataKey>())),
              Effect.mapError(keyError("keysFor", stream))
            )
          ).pipe(Effect.map((maps) => new Map(maps.flatMap((map) => [...map]))))

    const encrypt: Cipher["encrypt"] = (stream, events, onForgotten) =>
      Effect.gen(function* () {
        const subjects = new Set<string>()
        for (const [index, event] of events.entries()) {
          const declaration = declarationOf(event)
          if (declaration === undefined) continue
          const subject = PersonalData.subjectOf(declaration, event.data)
          if (subject === undefined) {
            return yield* new InvalidAppend({
              stream,
              reason: { _tag: "NoSubject", index, field: declaration.subject }
            })
          }
          subjects.add(subject)
        }
        if (subjects.size === 0) return events
        const found = yield* keysOf(stream, [...subjects], onForgotten)
        return yield* Effect.forEach(events, (event, index) => {
          const declaration = declarationOf(event)
          if (declaration === undefined) return Effect.succeed(event)
          const subject = PersonalData.subjectOf(declaration, event.data)!
          const key = found.get(subject)
          const data =
            key === undefined
              ? {
                  ...(event.data as object),
                  ...Object.fromEntries(declaration.fields.map((f) => [f.name, f.redacted]))
                }
              : PersonalData.encrypt(declaration, event.data, subject, key)
          const row = JSON.stringify([stream, event.type, data, event.metadata])
          const leaked = PersonalData.plaintexts(declaration, event.data).find(
            (value) => value.length >= minLeakLength && row.includes(JSON.stringify(value).slice(1, -1))
          )
          if (leaked !== undefined && key !== undefined) {
            return Effect.fail(new InvalidAppend({ stream, reason: { _tag: "PersonalDataInClear", index } }))
          }
          return Effect.succeed({ ...event, data })
        })
      })

    const decrypt: Cipher["decrypt"] = (events) =>
      Effect.gen(function* () {
        const subjects = new Set<string>()
        for (const event of events) {
          const declaration = declarationOf(event)
          const subject = declaration && PersonalData.subjectOf(declaration, event.data)
          if (subject !== undefined) subjects.add(subject)
        }
        if (subjects.size === 0) return events
        const found = yield* keys.find([...subjects]).pipe(Effect.mapError(keyError("find")))
        let failure: EventStoreError | undefined
        const opened = Arr.map(events, (event) => {
          const declaration = declarationOf(event)
          const subject = declaration && PersonalData.subjectOf(declaration, event.data)
          if (declaration === undefined || subject === undefined) return event
          const data = PersonalData.decrypt(declaration, event.data, subject, found.get(subject))
          if (Result.isSuccess(data)) return { ...event, data: data.success }
          const { stream, version, position, type, schemaVersion } = event
          const cause = new EventDecodeError({ stream, version, position, type, schemaVersion, reason: data.failure })
          failure ??= new EventStoreError({ operation: "decrypt", stream, cause })
          return event
        })
        return failure === undefined ? opened : yield* failure
      })

    return { encrypt, decrypt }
  })

/** Decorates `store`: personal fields are sealed on append and opened (or redacted) on every read. */
export const make = (
  store: Service,
  registry: EventVersions.Registry
): Effect.Effect<Service, never, KeyStore.KeyStore> =>
  Effect.map(makeCipher(registry), (cipher) => {
    const decrypted = <E>(stream: Stream.Stream<RecordedEvent, E>) => Stream.mapArrayEffect(stream, cipher.decrypt)
    return {
      ...store,
      append: (stream, events, expected) =>
        Effect.flatMap(cipher.encrypt(stream, events, "fail"), (sealed) => store.append(stream, sealed, expected)),
      readStream: (stream, options) => decrypted(store.readStream(stream, options)),
      readAll: (options) => decrypted(store.readAll(options)),
      subscribe: (options) => decrypted(store.subscribe(options))
    }
  })

/** Decorates the `EventStore` in context with crypto-shredding of the personal fields of `registry`'s event types. */
export const layer = (
  registry: EventVersions.Registry
): Layer.Layer<EventStore, never, EventStore | KeyStore.KeyStore> =>
  Layer.effect(
    EventStore,
    EventStore.use((store) => make(store, registry))
  )
