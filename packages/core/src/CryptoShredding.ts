/**
 * Crypto-shredding as a decorator of the `EventStore`. On append, the personal values of each event (marked with
 * `PersonalData`) are sealed under its subject's key from the `KeyStore`, all of an event's values as one sealed value;
 * the append is refused if a personal value also shows up in the clear elsewhere in the row (metadata, stream name,
 * another field). On read, sealed values are opened, or read as their redaction markers once the subject is
 * forgotten, so aggregates and projections still load. Compose it under `Upcasting` (open first, then upcast):
 * `Upcasting.layer(r)` over `CryptoShredding.layer(options)` over the real store. Each event it opens keeps its stored
 * form (`asStored`), which the outbox publishes.
 *
 * The layer knows every event type the app appends, from its aggregates: an append of any other type is refused,
 * unless the app declares that type free of personal data. A mark the layer cannot seal fails the layer's build.
 *
 * **Gotchas:** personal string values shorter than `minLeakLength` are not searched for elsewhere (they would match
 * by chance). Values written before a value was marked personal stay in the clear: forgetting cannot erase them.
 * `readAll` and `subscribe` read one page ahead of their consumer (the next page loads while one is opened).
 */
import { Array as Arr, Effect, Layer, Metric, Option, Result, Schema, Stream } from "effect"
import type * as Aggregate from "./Aggregate.ts"
import type { EventData, RecordedEvent } from "./Envelope.ts"
import { EventDecodeError } from "./EventCodec.ts"
import * as EventId from "./EventId.ts"
import { type AppendError, EventStore, EventStoreError, InvalidAppend, type Service } from "./EventStore.ts"
import * as EventVersions from "./EventVersions.ts"
import * as ExpectedVersion from "./ExpectedVersion.ts"
import * as KeyStore from "./KeyStore.ts"
import * as Metrics from "./Metrics.ts"
import * as PersonalData from "./PersonalData.ts"
import {
  type Snapshot,
  SnapshotStore,
  SnapshotStoreError,
  type Service as SnapshotStoreService
} from "./SnapshotStore.ts"
import * as Storable from "./Storable.ts"
import * as StreamName from "./StreamName.ts"

/** Personal string values at least this long must not appear in the clear anywhere else in the row. */
export const minLeakLength = 4

/** What happens to an event of a forgotten subject that is written: refused (appends) or stored redacted. */
export type OnForgotten = "fail" | "redact"

/** A personal mark sits where the layer cannot seal it, or an event shape with marks names no subject. */
export class UnsupportedMark extends Schema.TaggedError<UnsupportedMark>()("UnsupportedMark", {
  type: Schema.String,
  schemaVersion: Schema.Int,
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot seal ${this.type} v${this.schemaVersion} at ${this.path}: ${this.reason}`
  }
}

/** The event types a shredding layer accepts. */
export interface Options {
  /** Every aggregate whose events the app appends; their event types (and older versions) are known. */
  readonly aggregates?: ReadonlyArray<Aggregate.Any>
  /** Event schemas (or unions) appended outside any aggregate. */
  readonly events?: ReadonlyArray<Schema.Top>
  /** Types with no schema here that hold no personal data: stored as they are, never refused. */
  readonly freeOfPersonalData?: ReadonlyArray<string>
  /**
   * Categories whose state holds no personal data although their events do (snapshots stored as they are). Any other
   * aggregate whose events hold personal values must mark them in its state schema, or `layerSnapshots` refuses it.
   */
  readonly statesFreeOfPersonalData?: ReadonlyArray<string>
}

/** The fact `forget` records in the log: the subject was forgotten. Stored in stream `forgetFacts-<subject>`. */
export const SubjectForgotten = Schema.TaggedStruct("SubjectForgotten", { subject: Schema.String })

/** The category of the streams that hold the `SubjectForgotten` facts, for projections that react to them. */
export const forgottenCategory = "forgetFacts"

/** The registry of the event types `options` names (and `SubjectForgotten`), for `Upcasting` and migrations. */
export const registryOf = (options: Options): EventVersions.Registry =>
  EventVersions.registry([
    ...(options.aggregates ?? []).map((aggregate) => aggregate.events.schema),
    ...(options.events ?? []),
    SubjectForgotten
  ])

const storedForm = Symbol.for("@chronicle/core/CryptoShredding/stored")

/**
 * The event as the store holds it (sealed values, subject id, the schema version it was stored in), for an event
 * the shredding layer opened; any other event as it is. The outbox publishes this form, so the broker never carries
 * personal values in the clear, whichever store it reads. Decorators that copy events with a spread (`Upcasting`)
 * keep it.
 */
export const asStored = (event: RecordedEvent): RecordedEvent =>
  (event as { readonly [storedForm]?: RecordedEvent })[storedForm] ?? event

/** Encrypts and decrypts events' personal values with the keys of the `KeyStore` it was made with. */
export interface Cipher {
  /** Seals the personal values of events about to be appended to `stream`; refuses types it does not know. */
  readonly encrypt: (
    stream: string,
    events: ReadonlyArray<EventData>,
    onForgotten: OnForgotten
  ) => Effect.Effect<ReadonlyArray<EventData>, InvalidAppend | EventStoreError>
  /** Opens the personal values of recorded events (redaction markers for forgotten subjects). */
  readonly decrypt: (
    events: Arr.NonEmptyReadonlyArray<RecordedEvent>
  ) => Effect.Effect<Arr.NonEmptyReadonlyArray<RecordedEvent>, EventStoreError>
}

/**
 * Builds the cipher of the event types in `registry` and the types `freeOfPersonalData`; fails with the first mark
 * it cannot seal.
 */
export const makeCipher = (
  registry: EventVersions.Registry,
  freeOfPersonalData: ReadonlyArray<string> = []
): Effect.Effect<Cipher, UnsupportedMark, KeyStore.KeyStore> =>
  Effect.gen(function* () {
    const keys = yield* KeyStore.KeyStore
    // By `type@version`: the declaration, or null for a known shape without personal values.
    const declarations = new Map<string, PersonalData.Declaration | null>()
    for (const entry of registry.values()) {
      for (let version = 1; version <= entry.version; version++) {
        const declared = PersonalData.declarationOf(entry.shape(version)!)
        if (Result.isFailure(declared)) {
          return yield* new UnsupportedMark({ type: entry.type, schemaVersion: version, ...declared.failure })
        }
        declarations.set(`${entry.type}@${version}`, declared.success ?? null)
      }
    }
    const free = new Set(freeOfPersonalData)
    const declarationOf = (event: Pick<EventData, "type" | "schemaVersion">) =>
      declarations.get(`${event.type}@${event.schemaVersion}`) ?? undefined

    const keyError =
      (operation: string, stream?: string) => (cause: KeyStore.KeyStoreError | KeyStore.InvalidSubject) =>
        new EventStoreError(stream === undefined ? { operation, cause } : { operation, stream, cause })

    const keysOf = (stream: string, subjects: ReadonlyArray<string>, onForgotten: OnForgotten) =>
      onForgotten === "fail"
        ? keys.keysFor(subjects).pipe(
            Effect.catchTags({
              SubjectForgotten: (error) =>
                Effect.fail(
                  new InvalidAppend({ stream, reason: { _tag: "SubjectForgotten", subject: error.subject } })
                ),
              KeyStoreError: (error) => Effect.fail(keyError("keysFor", stream)(error)),
              InvalidSubject: (error) => Effect.fail(keyError("keysFor", stream)(error)) // refused by encrypt first
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
          const declaration = declarations.get(`${event.type}@${event.schemaVersion}`)
          if (declaration === undefined && !free.has(event.type)) {
            return yield* new InvalidAppend({
              stream,
              reason: { _tag: "UnregisteredType", index, type: event.type, schemaVersion: event.schemaVersion }
            })
          }
          if (declaration === undefined || declaration === null) continue
          const subject = PersonalData.subjectOf(declaration, event.data)
          if (subject === undefined) {
            return yield* new InvalidAppend({
              stream,
              reason: { _tag: "NoSubject", index, field: declaration.subject }
            })
          }
          const problem = Storable.textProblem(subject)
          if (problem !== undefined) {
            const path = `data.${declaration.subject}`
            return yield* new InvalidAppend({
              stream,
              reason: { _tag: "UnrepresentableText", index, path, detail: problem }
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
          if (key === undefined) return Effect.succeed({ ...event, data: PersonalData.redact(declaration, event.data) })
          const data = PersonalData.seal(declaration, event.data, subject, event.eventId, key)
          const row = JSON.stringify([stream, event.type, data, event.metadata])
          const leaked = PersonalData.strings(PersonalData.personalValues(declaration, event.data)).find(
            (value) => value.length >= minLeakLength && row.includes(JSON.stringify(value).slice(1, -1))
          )
          if (leaked !== undefined) {
            return Effect.fail(new InvalidAppend({ stream, reason: { _tag: "PersonalDataInClear", index } }))
          }
          return Effect.succeed({ ...event, data })
        })
      })

    // The subject whose key opens an event in the old format (fields sealed one by one), named by its subject field.
    const subjectToOpen = (event: RecordedEvent): string | undefined => {
      if (!PersonalData.hasSealedFields(event.data)) return undefined
      const declaration = declarationOf(event)
      return declaration && PersonalData.subjectOf(declaration, event.data)
    }

    // Opens an event in the format before one seal per event, which needs its schema.
    const openFields = (event: RecordedEvent, subject: string, key: KeyStore.DataKey | undefined) => {
      const declaration = declarationOf(event)
      return declaration === undefined
        ? Result.fail(`no schema for ${event.type} v${event.schemaVersion} to open its sealed fields`)
        : PersonalData.openFields(declaration, event.data, subject, key)
    }

    const decrypt: Cipher["decrypt"] = (events) =>
      Effect.gen(function* () {
        const subjects = new Set<string>()
        const openings = Arr.map(events, (event) => PersonalData.openingOf(event.data, event.eventId))
        const toOpen = Arr.map(events, (event, index) => {
          const subject = openings[index]?.subject ?? subjectToOpen(event)
          if (subject !== undefined) subjects.add(subject)
          return subject
        })
        if (subjects.size === 0) return events
        // A subject no key store holds (text with a NUL or a lone surrogate) has no key: its event cannot be opened.
        const storable = [...subjects].filter((subject) => Storable.textProblem(subject) === undefined)
        const found = yield* keys.find(storable).pipe(Effect.mapError(keyError("find")))
        // The values of every event sealed once per event, opened as one batch.
        const batch: Array<KeyStore.ToOpen> = []
        const inBatch = Arr.map(openings, (opening) => {
          const key = opening && found.get(opening.subject)
          if (opening === undefined || key === undefined) return undefined
          batch.push({ key, sealed: opening.sealed, context: opening.context })
          return batch.length - 1
        })
        const plaintexts = yield* KeyStore.openAll(batch)
        let failure: EventStoreError | undefined
        let failures = 0
        const opened = Arr.map(events, (event, index) => {
          const subject = toOpen[index]
          if (subject === undefined) return event
          const at = inBatch[index]
          const problem = Storable.textProblem(subject)
          const data =
            problem !== undefined
              ? Result.fail(`its subject ${JSON.stringify(subject)} ${problem}, which no key store holds`)
              : openings[index] !== undefined
                ? PersonalData.withValues(event.data, at === undefined ? undefined : plaintexts[at])
                : openFields(event, subject, found.get(subject))
          if (Result.isSuccess(data)) return { ...event, data: data.success, [storedForm]: asStored(event) }
          const { stream, version, position, type, schemaVersion } = event
          const cause = new EventDecodeError({ stream, version, position, type, schemaVersion, reason: data.failure })
          failure ??= new EventStoreError({ operation: "decrypt", stream, cause })
          failures++
          return event
        })
        if (failure === undefined) return opened
        yield* Metric.update(Metrics.decryptionFailures, failures)
        return yield* failure
      })

    return { encrypt, decrypt }
  })

/** Decorates `store`: personal values are sealed on append and opened (or redacted) on every read. */
export const make = (store: Service, options: Options): Effect.Effect<Service, UnsupportedMark, KeyStore.KeyStore> =>
  Effect.map(makeCipher(registryOf(options), options.freeOfPersonalData), (cipher) => {
    const decrypted = <E>(stream: Stream.Stream<RecordedEvent, E>) => Stream.mapArrayEffect(stream, cipher.decrypt)
    // Log readers read on, so the store fetches the next page while one is opened; a stream is often read a page at
    // a time (a browser's timeline), where reading ahead would fetch pages nobody asked for.
    const readAhead = <E>(stream: Stream.Stream<RecordedEvent, E>) =>
      decrypted(Stream.bufferArray(stream, { capacity: 1 }))
    return {
      ...store,
      append: (stream, events, expected) =>
        Effect.flatMap(cipher.encrypt(stream, events, "fail"), (sealed) => store.append(stream, sealed, expected)),
      readStream: (stream, options) => decrypted(store.readStream(stream, options)),
      readAll: (options) => readAhead(store.readAll(options)),
      subscribe: (options) => readAhead(store.subscribe(options))
    }
  })

/** Decorates the `EventStore` in context with crypto-shredding of the personal values of `options`' event types. */
export const layer = (options: Options): Layer.Layer<EventStore, UnsupportedMark, EventStore | KeyStore.KeyStore> =>
  Layer.effect(
    EventStore,
    EventStore.use((store) => make(store, options))
  )

/**
 * Decorates a snapshot store: the personal values of each aggregate's state (marked in its state schema, with a
 * subject field, as in events) are sealed under the subject's key, so forgetting the subject shreds every snapshot of
 * it, including one a command in flight saves after the `forget` (sealed under the deleted key, or not saved at all).
 * A snapshot whose seal cannot be opened, and one saved in the clear before its state had marks, is ignored, so the
 * aggregate loads from its events (redacted). A state with personal values but no subject yet is not saved.
 */
export const makeSnapshots = (
  store: SnapshotStoreService,
  options: Options
): Effect.Effect<SnapshotStoreService, UnsupportedMark, KeyStore.KeyStore> =>
  Effect.gen(function* () {
    const keys = yield* KeyStore.KeyStore
    const registry = registryOf(options)
    const free = new Set(options.statesFreeOfPersonalData ?? [])
    const states = new Map<string, PersonalData.Declaration | null>()
    for (const aggregate of options.aggregates ?? []) {
      if (aggregate.state === undefined) continue
      const type = `${aggregate.category} state`
      const declared = PersonalData.declarationOf(aggregate.state)
      if (Result.isFailure(declared)) return yield* new UnsupportedMark({ type, schemaVersion: 1, ...declared.failure })
      const eventsArePersonal = aggregate.events.types.some((eventType: string) => {
        const entry = registry.get(eventType)!
        return Array.from({ length: entry.version }, (_, v) => PersonalData.declarationOf(entry.shape(v + 1)!)).some(
          (declaration) => Result.isSuccess(declaration) && declaration.success !== undefined
        )
      })
      if (declared.success === undefined && eventsArePersonal && !free.has(aggregate.category)) {
        return yield* new UnsupportedMark({
          type,
          schemaVersion: 1,
          path: "(the state)",
          reason:
            "the events hold personal values and the state schema marks none: mark them, or declare the state free of personal data"
        })
      }
      states.set(aggregate.category, declared.success ?? null)
    }
    const contextOf = (snapshot: Pick<Snapshot, "stream" | "version">) =>
      `snapshot/${snapshot.stream}@${snapshot.version}`
    const failed = (operation: string, stream: string) => (cause: KeyStore.KeyStoreError | Error) =>
      new SnapshotStoreError({ operation, stream, cause })

    const save = (snapshot: Snapshot) =>
      Effect.gen(function* () {
        const declaration = states.get(StreamName.category(snapshot.stream))
        if (declaration === undefined) {
          return yield* failed(
            "seal",
            snapshot.stream
          )(new Error("its category has no aggregate with a state schema in the shredding layer"))
        }
        if (declaration === null) return yield* store.save(snapshot)
        const subject = PersonalData.subjectOf(declaration, snapshot.state)
        if (subject === undefined) {
          if (PersonalData.personalValues(declaration, snapshot.state).length === 0) return yield* store.save(snapshot)
          return
        }
        const found = yield* keys.keysFor([subject]).pipe(
          Effect.map((map) => map.get(subject)),
          Effect.catchTags({
            SubjectForgotten: () => Effect.succeed(undefined),
            InvalidSubject: () => Effect.succeed(undefined)
          }),
          Effect.mapError(failed("seal", snapshot.stream))
        )
        // Forgotten (or a subject no key store holds): a state holding its values is never stored.
        if (found === undefined) return
        const state = PersonalData.seal(declaration, snapshot.state, subject, contextOf(snapshot), found)
        return yield* store.save({ ...snapshot, state })
      })

    const load = (stream: string) =>
      Effect.gen(function* () {
        const stored = yield* store.load(stream)
        if (Option.isNone(stored)) return stored
        const snapshot = stored.value
        const sealed = PersonalData.sealedValuesOf(snapshot.state)
        if (sealed === undefined) {
          const declaration = states.get(StreamName.category(stream))
          if (declaration === null || declaration === undefined) return stored
          if (PersonalData.personalValues(declaration, snapshot.state).length === 0) return stored
          // Saved in the clear before the state had marks: never trusted, and dropped.
          yield* store.delete(stream)
          return Option.none<Snapshot>()
        }
        const key = yield* keys.find([sealed.subject]).pipe(
          Effect.map((map) => map.get(sealed.subject)),
          Effect.catchTag("InvalidSubject", () => Effect.succeed(undefined)),
          Effect.mapError(failed("open", stream))
        )
        if (key === undefined) return Option.none<Snapshot>()
        const state = PersonalData.open(snapshot.state, contextOf(snapshot), key)
        return Result.isSuccess(state) ? Option.some({ ...snapshot, state: state.success }) : Option.none<Snapshot>()
      })

    return { load, save, delete: store.delete }
  })

/** Decorates the `SnapshotStore` in context with the sealing of `makeSnapshots`. */
export const layerSnapshots = (options: Options): Layer.Layer<never, UnsupportedMark, KeyStore.KeyStore> =>
  Layer.effect(
    SnapshotStore,
    Effect.flatMap(SnapshotStore, (store: SnapshotStoreService) => makeSnapshots(store, options))
  )

/** What `forget` did. */
export interface Forgotten {
  readonly subject: string
  /** False when the subject had been forgotten already: nothing new was written. */
  readonly now: boolean
  /** The global position of the `SubjectForgotten` fact in the log. */
  readonly position: bigint
}

/**
 * Forgets a subject, in one call: records `SubjectForgotten` in the log (stream `forgetFacts-<subject>`) and deletes
 * the subject's key, in one transaction when the key store shares one with the event store (`PgKeyStore` beside
 * `PgEventStore`), so projections meet the fact in order with the events before it. Idempotent: the fact's event id is
 * derived from the subject, so forgetting again writes nothing, completes a forget that stopped half-way, and
 * returns `now: false`. Afterwards every sealed value of the subject (events, archived events, snapshots) reads as
 * its redaction marker, and no new personal data of the subject can be stored.
 */
export const forget = (
  subject: string
): Effect.Effect<
  Forgotten,
  KeyStore.KeyStoreError | KeyStore.InvalidSubject | AppendError,
  KeyStore.KeyStore | EventStore
> =>
  Effect.gen(function* () {
    yield* KeyStore.validateSubjects([subject])
    const keys = yield* KeyStore.KeyStore
    const store = yield* EventStore
    const stream = StreamName.make(forgottenCategory, subject)
    const fact: EventData = {
      eventId: EventId.fromCommand(stream, "forget", 0),
      type: "SubjectForgotten",
      schemaVersion: 1,
      data: { subject },
      metadata: {}
    }
    const both = Effect.gen(function* () {
      const appended = yield* store.append(stream, [fact], ExpectedVersion.noStream)
      yield* keys.forget(subject)
      return appended
    })
    const appended = yield* keys.transaction === undefined ? both : keys.transaction(both)
    return { subject, now: appended.written > 0, position: appended.position }
  })

/**
 * Opens events received outside the store, such as from the broker, which carries them as stored (sealed values,
 * subject ids): a consumer wraps its handler with the function this gives. Values read as their redaction markers
 * once the subject is forgotten. `options` is needed only for events in the format before one seal per event.
 */
export const opener = (
  options: Options = {}
): Effect.Effect<
  (event: RecordedEvent) => Effect.Effect<RecordedEvent, EventStoreError>,
  UnsupportedMark,
  KeyStore.KeyStore
> =>
  Effect.map(
    makeCipher(registryOf(options), options.freeOfPersonalData),
    (cipher) => (event) => Effect.map(cipher.decrypt([event]), ([opened]) => opened)
  )
