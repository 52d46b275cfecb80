/**
 * The event-store conformance suite: every promise of the `EventStore` contract as vitest tests, which every store (in
 * memory, Postgres) registers with one call. It covers expected versions, all-or-nothing appends, typed validation
 * errors, idempotent retries, stream and global order, paging, reading up to a version and
 * backward, filters, `head`, live subscriptions, and concurrent
 * writers with a concurrent reader. Property-based fuzzing checks that bad input of every class gets the same typed
 * reason as from the in-memory store and writes nothing, and that Unicode text round-trips exactly.
 *
 * The suite is store-agnostic: each test writes to streams of a category of its own and assumes of global positions
 * only that they increase (not that they are dense or start at 1), so it also runs on a shared, non-empty store. It
 * runs on the real clock, because live subscriptions of real stores wait for wake-ups and polls.
 */
import { type Envelope, EventId, EventStore, ExpectedVersion, Partition, Storable } from "@chronicle/core"
import { assert, describe, layer } from "@effect/vitest"
import { Arbitrary, Deferred, Effect, Fiber, type Layer, Option, type Schema, Stream } from "effect"
import { type BadSeed, badAppend, badSeed, type ValidInput, validInput } from "./internal/appendInputs.ts"

// A category no other test writes to, so that reads filtered by it see this test's events only.
const newCategory = () => `conformance${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
const newStream = (category = newCategory()) => `${category}-${crypto.randomUUID()}`

const newEvent = (type = "Happened", data: Schema.Json = { n: 1 }): Envelope.EventData => ({
  eventId: EventId.random(),
  type,
  schemaVersion: 1,
  data,
  metadata: {}
})
const newEvents = (count: number, type?: string) => Array.from({ length: count }, (_, n) => newEvent(type, { n }))

const idsOf = (events: ReadonlyArray<Pick<Envelope.EventData, "eventId">>) => events.map((event) => event.eventId)
const versionsOf = (events: ReadonlyArray<Envelope.RecordedEvent>) => events.map((event) => event.version)
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

const assertIncreasing = (events: ReadonlyArray<Envelope.RecordedEvent>) => {
  for (let i = 1; i < events.length; i++) {
    assert.isTrue(
      events[i]!.position > events[i - 1]!.position,
      `position ${events[i]!.position} follows ${events[i - 1]!.position}`
    )
  }
}

// The facts of a failed append, comparable with deepStrictEqual (an unexpected error shows its tag and message).
const factsOf = (error: EventStore.AppendError) =>
  error._tag === "ConcurrencyError"
    ? { _tag: error._tag, stream: error.stream, expected: error.expected, actual: error.actual }
    : { _tag: error._tag, message: error.message }
const concurrencyError = (stream: string, expected: ExpectedVersion.ExpectedVersion, actual: number) => ({
  _tag: "ConcurrencyError" as const,
  stream,
  expected: ExpectedVersion.describe(expected),
  actual
})

const resultOf = ({ stream, version, position, written }: EventStore.AppendResult) => ({
  stream,
  version,
  position,
  written
})

const readStream = (stream: string, options?: EventStore.ReadStreamOptions) =>
  EventStore.EventStore.use((store) => Stream.runCollect(store.readStream(stream, options)))
const readAll = (options?: EventStore.ReadAllOptions) =>
  EventStore.EventStore.use((store) => Stream.runCollect(store.readAll(options)))
const append = (stream: string, events: ReadonlyArray<Envelope.EventData>, expected: ExpectedVersion.ExpectedVersion) =>
  EventStore.EventStore.use((store) => store.append(stream, events, expected))

/** The first `count` events a live subscription delivers; fails after 30 seconds rather than hang. */
const takeLive = (
  options: EventStore.ReadAllOptions,
  count: number,
  onEach: (event: Envelope.RecordedEvent) => Effect.Effect<unknown> = () => Effect.void
) =>
  EventStore.EventStore.use((store) =>
    store
      .subscribe(options)
      .pipe(Stream.tap(onEach), Stream.take(count), Stream.runCollect, Effect.timeout("30 seconds"))
  )

/**
 * Appends the events `make` builds for the stream's current version, at that version: on a `ConcurrencyError` it reads
 * the version again and retries, as a command handler does when another writer won.
 */
const appendAtCurrentVersion = (stream: string, make: (version: number) => ReadonlyArray<Envelope.EventData>) =>
  EventStore.EventStore.use((store) =>
    store.streamVersion(stream).pipe(
      // Yields between reading the version and appending, as a network round trip would, so writers interleave.
      Effect.tap(() => Effect.yieldNow),
      Effect.flatMap((version) => store.append(stream, make(version), ExpectedVersion.exact(version))),
      Effect.retry({ while: (error) => error._tag === "ConcurrencyError", times: 10_000 })
    )
  )

/** Events with these ids, each claiming in its data the stream version it is written at. */
const claiming = (ids: ReadonlyArray<string>) => (version: number) =>
  ids.map((eventId, index) => ({ ...newEvent("Claimed", { version: version + 1 + index }), eventId }))

/** Asserts that every event holds the version it claimed: no writer got through with a stale expectation. */
const assertClaimsHold = (events: ReadonlyArray<Envelope.RecordedEvent>) =>
  assert.deepStrictEqual(
    events.map((event) => (event.data as { readonly version: number }).version),
    versionsOf(events)
  )

/** What a refused append tells a caller: its tag and reason, comparable across stores. */
const refusalOf = (error: EventStore.AppendError) =>
  error._tag === "InvalidAppend"
    ? { _tag: error._tag, reason: { ...error.reason } }
    : error._tag === "InvalidStreamName"
      ? { _tag: error._tag, reason: error.reason }
      : { _tag: error._tag, message: error.message }

/** The reason tag of an `InvalidAppend`, else the error's tag. */
const kindOf = (error: EventStore.AppendError) => (error._tag === "InvalidAppend" ? error.reason._tag : error._tag)

/**
 * Checks `property` on `runs` values of `arbitrary`; a failed assertion is a counterexample, shrunk and reported with
 * its replay token.
 */
const holds = <A, R>(
  arbitrary: Arbitrary.Arbitrary<A>,
  runs: number,
  property: (value: A) => Effect.Effect<void, unknown, R>
) =>
  Arbitrary.checkEffect(
    arbitrary,
    (value) =>
      Effect.suspend(() => property(value)).pipe(
        Effect.catchDefect((defect) => Effect.fail(defect)),
        Effect.as(true)
      ),
    { runs }
  ).pipe(
    Effect.flatMap((result) => {
      const report = Arbitrary.formatCheckFailure(result)
      return report === undefined ? Effect.void : Effect.die(new Error(report))
    })
  )

/** A bad append is refused by the store as by the in-memory reference, with the reason of its class, writing nothing. */
const refusedAlike = (seed: BadSeed) =>
  Effect.gen(function* () {
    const category = newCategory()
    const { stream, events, expected } = badAppend(category, seed)
    const store = yield* EventStore.EventStore
    const reference = yield* EventStore.makeMemory
    const error = yield* Effect.flip(store.append(stream, events, expected))
    const referenceError = yield* Effect.flip(reference.append(stream, events, expected))
    assert.deepStrictEqual(refusalOf(error), refusalOf(referenceError))
    assert.strictEqual(kindOf(error), seed.kind, error.message)
    assert.deepStrictEqual(yield* readAll({ categories: [category] }), [])
    if (seed.kind === "InvalidStreamName") {
      const read = yield* Effect.flip(Stream.runCollect(store.readStream(stream)))
      const version = yield* Effect.flip(store.streamVersion(stream))
      assert.deepStrictEqual([read._tag, version._tag], ["InvalidStreamName", "InvalidStreamName"])
    }
  })

/** A valid event of Unicode text is read back exactly, by `readStream` and by `readAll`. */
const roundTrips = ({ id, type, data, metadata }: ValidInput) =>
  Effect.gen(function* () {
    const category = newCategory()
    const stream = `${category}-${id}`
    const event: Envelope.EventData = { eventId: EventId.random(), type, schemaVersion: 1, data, metadata }
    yield* append(stream, [event], ExpectedVersion.noStream)
    // JSON has one zero: -0 reads back as 0 from every store.
    const expected: ReadonlyArray<unknown> = [
      { stream, type, data: JSON.parse(JSON.stringify(data)), metadata: JSON.parse(JSON.stringify(metadata)) }
    ]
    const shown = (events: ReadonlyArray<Envelope.RecordedEvent>) =>
      events.map((read) => ({ stream: read.stream, type: read.type, data: read.data, metadata: read.metadata }))
    assert.deepStrictEqual(shown(yield* readStream(stream)), expected)
    assert.deepStrictEqual(shown(yield* readAll({ categories: [category] })), expected)
    assert.strictEqual(yield* EventStore.EventStore.use((store) => store.streamVersion(stream)), 1)
  })

/**
 * Registers the conformance suite, under `name`, for the store `store` provides. All tests share one store, built
 * before the first test and closed after the last.
 */
export const suite = <E>(name: string, store: Layer.Layer<EventStore.EventStore, E>): void =>
  layer(store, { excludeTestServices: true })(name, (it) => {
    describe("expected version", () => {
      it.effect("noStream appends to a new stream and refuses one with events", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const written = yield* append(stream, newEvents(2), ExpectedVersion.noStream)
          assert.deepStrictEqual([written.stream, written.version, written.written], [stream, 2, 2])
          const error = yield* Effect.flip(append(stream, newEvents(1), ExpectedVersion.noStream))
          assert.deepStrictEqual(factsOf(error), concurrencyError(stream, ExpectedVersion.noStream, 2))
        })
      )

      it.effect("streamExists refuses a new stream and appends to one with events", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const error = yield* Effect.flip(append(stream, newEvents(1), ExpectedVersion.streamExists))
          assert.deepStrictEqual(factsOf(error), concurrencyError(stream, ExpectedVersion.streamExists, 0))
          yield* append(stream, newEvents(1), ExpectedVersion.noStream)
          const written = yield* append(stream, newEvents(1), ExpectedVersion.streamExists)
          assert.strictEqual(written.version, 2)
        })
      )

      it.effect("any appends whatever the version", () =>
        Effect.gen(function* () {
          const stream = newStream()
          assert.strictEqual((yield* append(stream, newEvents(1), ExpectedVersion.any)).version, 1)
          assert.strictEqual((yield* append(stream, newEvents(2), ExpectedVersion.any)).version, 3)
        })
      )

      it.effect("exact(0) appends to a new stream only", () =>
        Effect.gen(function* () {
          const stream = newStream()
          assert.strictEqual((yield* append(stream, newEvents(1), ExpectedVersion.exact(0))).version, 1)
          const error = yield* Effect.flip(append(stream, newEvents(1), ExpectedVersion.exact(0)))
          assert.deepStrictEqual(factsOf(error), concurrencyError(stream, ExpectedVersion.exact(0), 1))
        })
      )

      it.effect("exact(n) appends at n and refuses an expectation ahead of or behind the stream", () =>
        Effect.gen(function* () {
          const stream = newStream()
          yield* append(stream, newEvents(3), ExpectedVersion.noStream)
          assert.strictEqual((yield* append(stream, newEvents(1), ExpectedVersion.exact(3))).version, 4)
          const ahead = yield* Effect.flip(append(stream, newEvents(1), ExpectedVersion.exact(5)))
          assert.deepStrictEqual(factsOf(ahead), concurrencyError(stream, ExpectedVersion.exact(5), 4))
          const behind = yield* Effect.flip(append(stream, newEvents(1), ExpectedVersion.exact(3)))
          assert.deepStrictEqual(factsOf(behind), concurrencyError(stream, ExpectedVersion.exact(3), 4))
        })
      )

      it.effect("a refused expectation writes nothing", () =>
        Effect.gen(function* () {
          const category = newCategory()
          const stream = newStream(category)
          const first = newEvents(2)
          yield* append(stream, first, ExpectedVersion.noStream)
          const refused = newEvents(3)
          yield* Effect.flip(append(stream, refused, ExpectedVersion.exact(1)))
          assert.deepStrictEqual(idsOf(yield* readStream(stream)), idsOf(first))
          assert.deepStrictEqual(idsOf(yield* readAll({ categories: [category] })), idsOf(first))
          assert.strictEqual(yield* EventStore.EventStore.use((store) => store.streamVersion(stream)), 2)
          // The refused ids were not kept either: they append as new events.
          assert.strictEqual((yield* append(stream, refused, ExpectedVersion.exact(2))).written, 3)
        })
      )
    })

    describe("validation and atomicity", () => {
      it.effect("an empty append is an InvalidAppend", () =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(append(newStream(), [], ExpectedVersion.any))
          assert.strictEqual(error._tag, "InvalidAppend")
        })
      )

      it.effect("an invalid stream name is an InvalidStreamName for append, readStream and streamVersion", () =>
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          for (const stream of ["", "nodash", "-id", "category-", `category-${"x".repeat(200)}`]) {
            const appended = yield* Effect.flip(store.append(stream, newEvents(1), ExpectedVersion.any))
            const read = yield* Effect.flip(Stream.runCollect(store.readStream(stream)))
            const version = yield* Effect.flip(store.streamVersion(stream))
            assert.deepStrictEqual(
              [appended._tag, read._tag, version._tag],
              ["InvalidStreamName", "InvalidStreamName", "InvalidStreamName"],
              JSON.stringify(stream)
            )
          }
        })
      )

      it.effect("a batch with an event id that is not a UUID is an InvalidAppend and writes nothing", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const good = newEvents(2)
          const error = yield* Effect.flip(
            append(stream, [good[0]!, { ...newEvent(), eventId: "not-a-uuid" }, good[1]!], ExpectedVersion.any)
          )
          assert.strictEqual(error._tag, "InvalidAppend")
          assert.deepStrictEqual(yield* readStream(stream), [])
          assert.strictEqual((yield* append(stream, good, ExpectedVersion.noStream)).written, 2)
        })
      )

      it.effect("an event id twice in one append is an InvalidAppend and writes nothing", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const event = newEvent()
          const error = yield* Effect.flip(append(stream, [event, newEvent(), event], ExpectedVersion.any))
          assert.strictEqual(error._tag, "InvalidAppend")
          assert.deepStrictEqual(yield* readStream(stream), [])
        })
      )

      it.effect(
        "an event over maxEventBytes (type, data and metadata) is TooLarge and writes nothing; one of exactly that size is stored",
        () =>
          Effect.gen(function* () {
            const stream = newStream()
            // The type "Large" (5 bytes), `{"blob":""}` (11) and metadata `{"m":"é"}` (10: é is 2 bytes in UTF-8).
            const sized = (bytes: number) => ({
              ...newEvent("Large", { blob: "x".repeat(bytes - 26) }),
              metadata: { m: "é" }
            })
            const error = yield* Effect.flip(
              append(stream, [newEvent(), sized(EventStore.maxEventBytes + 1)], ExpectedVersion.any)
            )
            assert.deepStrictEqual(refusalOf(error), {
              _tag: "InvalidAppend",
              reason: {
                _tag: "TooLarge",
                index: 1,
                bytes: EventStore.maxEventBytes + 1,
                limit: EventStore.maxEventBytes
              }
            })
            assert.deepStrictEqual(yield* readStream(stream), [])
            const largest = sized(EventStore.maxEventBytes)
            yield* append(stream, [largest], ExpectedVersion.noStream)
            assert.deepStrictEqual(
              (yield* readStream(stream)).map((event) => event.data),
              [largest.data]
            )
          })
      )

      it.effect("a missing metadata is stored as {}", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const { metadata: _, ...event } = newEvent()
          yield* append(stream, [event as Envelope.EventData], ExpectedVersion.noStream)
          assert.deepStrictEqual(
            (yield* readStream(stream)).map((read) => read.metadata),
            [{}]
          )
        })
      )

      it.effect("JSON nested maxJsonDepth levels deep is stored; one level more is NotJson", () =>
        Effect.gen(function* () {
          const nest = (levels: number): Schema.Json => (levels === 0 ? 1 : [nest(levels - 1)])
          const stream = newStream()
          yield* append(stream, [newEvent("Deep", nest(Storable.maxJsonDepth))], ExpectedVersion.noStream)
          assert.deepStrictEqual(
            (yield* readStream(stream)).map((read) => read.data),
            [nest(Storable.maxJsonDepth)]
          )
          const error = yield* Effect.flip(
            append(stream, [newEvent("Deep", nest(Storable.maxJsonDepth + 1))], ExpectedVersion.any)
          )
          assert.strictEqual(kindOf(error), "NotJson")
          assert.strictEqual(yield* EventStore.EventStore.use((store) => store.streamVersion(stream)), 1)
        })
      )

      it.effect("a plain number as the expected version is BadExpectedVersion, not an exact version", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const error = yield* Effect.flip(
            append(stream, newEvents(1), 7 as unknown as ExpectedVersion.ExpectedVersion)
          )
          assert.deepStrictEqual(refusalOf(error), {
            _tag: "InvalidAppend",
            reason: {
              _tag: "BadExpectedVersion",
              expected: "7",
              detail: "a plain number is not an expected version: pass ExpectedVersion.exact(7)"
            }
          })
          assert.deepStrictEqual(yield* readStream(stream), [])
        })
      )

      it.effect("an append past the last version (2^31 - 1) is StreamFull, before any I/O", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const limit = ExpectedVersion.maxVersion
          const error = yield* Effect.flip(append(stream, newEvents(2), ExpectedVersion.exact(limit - 1)))
          assert.deepStrictEqual(refusalOf(error), {
            _tag: "InvalidAppend",
            reason: { _tag: "StreamFull", version: limit - 1, events: 2, limit }
          })
          assert.include(error.message, `past its last version ${limit}`)
          assert.deepStrictEqual(yield* readStream(stream), [])
        })
      )

      it.effect("bad input of every class gets the same typed reason as in memory, and writes nothing (fuzz)", () =>
        holds(badSeed, 300, refusedAlike)
      )

      it.effect("Unicode text in stream names, types, data and metadata reads back exactly (fuzz)", () =>
        holds(validInput, 150, roundTrips)
      )
    })

    describe("locating events", () => {
      it.effect("locateEvent finds an event by id in any stream, in any case; none for an unknown or invalid id", () =>
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const stream = newStream()
          const events = newEvents(2)
          const written = yield* append(stream, events, ExpectedVersion.noStream)
          const found = yield* store.locateEvent(events[1]!.eventId.toUpperCase())
          assert.deepStrictEqual(found, Option.some({ stream, version: 2, position: written.position }))
          assert.isTrue(Option.isNone(yield* store.locateEvent(EventId.random())))
          assert.isTrue(Option.isNone(yield* store.locateEvent("not-a-uuid")))
        })
      )
    })

    describe("idempotent retries", () => {
      it.effect("appending the same events again writes nothing and reports the same version and position", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const events = newEvents(3)
          const first = yield* append(stream, events, ExpectedVersion.noStream)
          // The retry repeats the original call, expectation included, although the stream has moved on.
          const again = yield* append(stream, events, ExpectedVersion.noStream)
          assert.deepStrictEqual(resultOf(again), { ...resultOf(first), written: 0 })
          assert.deepStrictEqual(idsOf(yield* readStream(stream)), idsOf(events))
        })
      )

      it.effect("a retry after later appends still writes nothing and reports its own last event", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const early = newEvents(2)
          const late = newEvents(2)
          const first = yield* append(stream, early, ExpectedVersion.noStream)
          yield* append(stream, late, ExpectedVersion.exact(2))
          const again = yield* append(stream, early, ExpectedVersion.noStream)
          assert.deepStrictEqual(resultOf(again), { stream, version: 2, position: first.position, written: 0 })
          assert.deepStrictEqual(idsOf(yield* readStream(stream)), idsOf([...early, ...late]))
        })
      )

      it.effect("an append of which only some ids are stored is an InvalidAppend and writes nothing", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const stored = newEvents(2)
          yield* append(stream, stored, ExpectedVersion.noStream)
          const error = yield* Effect.flip(append(stream, [stored[0]!, newEvent()], ExpectedVersion.any))
          assert.strictEqual(error._tag, "InvalidAppend")
          assert.deepStrictEqual(idsOf(yield* readStream(stream)), idsOf(stored))
        })
      )

      it.effect("an id stored in another stream is an InvalidAppend and writes nothing", () =>
        Effect.gen(function* () {
          const category = newCategory()
          const [one, other] = [newStream(category), newStream(category)]
          const events = newEvents(1)
          yield* append(one, events, ExpectedVersion.noStream)
          const error = yield* Effect.flip(append(other, events, ExpectedVersion.any))
          assert.strictEqual(error._tag, "InvalidAppend")
          assert.deepStrictEqual(yield* readStream(other), [])
          assert.deepStrictEqual(idsOf(yield* readAll({ categories: [category] })), idsOf(events))
        })
      )
    })

    describe("reading", () => {
      it.effect("events are read back as they were appended", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const events: ReadonlyArray<Envelope.EventData> = [
            {
              eventId: EventId.random(),
              type: "Detailed",
              schemaVersion: 2,
              data: {
                text: "héllo ✓ 😀",
                number: 1.5,
                big: 9007199254740991,
                none: null,
                flag: false,
                list: [1, "a", { b: [] }]
              },
              metadata: { correlationId: "correlation-1", causationId: "cause-1", tenant: "acme", nested: { a: [1] } }
            },
            { ...newEvent("Plain", {}), metadata: {} }
          ]
          const written = yield* append(stream, events, ExpectedVersion.noStream)
          const read = yield* readStream(stream)
          assert.deepStrictEqual(
            read.map(({ eventId, type, schemaVersion, data, metadata }) => ({
              eventId,
              type,
              schemaVersion,
              data,
              metadata
            })),
            events
          )
          assert.deepStrictEqual(
            read.map((event) => [event.stream, event.version]),
            [
              [stream, 1],
              [stream, 2]
            ]
          )
          assert.isTrue(read.every((event) => event.recordedAt instanceof Date))
          assert.strictEqual(written.position, read[1]!.position)
          assert.strictEqual(yield* EventStore.EventStore.use((store) => store.streamVersion(stream)), 2)
        })
      )

      it.effect("stream versions run from 1 without gaps, and readStream reads from a version", () =>
        Effect.gen(function* () {
          const stream = newStream()
          for (const count of [2, 3, 1]) yield* append(stream, newEvents(count), ExpectedVersion.any)
          assert.deepStrictEqual(versionsOf(yield* readStream(stream)), range(1, 6))
          assert.deepStrictEqual(versionsOf(yield* readStream(stream, { from: 4 })), range(4, 6))
          assert.deepStrictEqual(yield* readStream(stream, { from: 7 }), [])
          assert.deepStrictEqual(yield* readStream(newStream()), [])
          assert.strictEqual(yield* EventStore.EventStore.use((store) => store.streamVersion(newStream())), 0)
        })
      )

      it.effect("reading a stream in small pages gives the same events", () =>
        Effect.gen(function* () {
          const stream = newStream()
          yield* append(stream, newEvents(7), ExpectedVersion.noStream)
          const whole = idsOf(yield* readStream(stream))
          for (const pageSize of [1, 2, 3, 7, 8]) {
            assert.deepStrictEqual(idsOf(yield* readStream(stream, { pageSize })), whole, `page size ${pageSize}`)
            assert.deepStrictEqual(idsOf(yield* readStream(stream, { from: 2, pageSize })), whole.slice(1))
          }
        })
      )

      it.effect("a stream reads up to a version, and backward (newest first), in any page size", () =>
        Effect.gen(function* () {
          const stream = newStream()
          yield* append(stream, newEvents(7), ExpectedVersion.noStream)
          const whole = idsOf(yield* readStream(stream))
          // No page size: one streamed read where the store has one.
          for (const paging of [{}, ...[1, 2, 3, 7, 8].map((pageSize) => ({ pageSize }))] as const) {
            assert.deepStrictEqual(idsOf(yield* readStream(stream, { to: 4, ...paging })), whole.slice(0, 4))
            assert.deepStrictEqual(
              idsOf(yield* readStream(stream, { direction: "backward", ...paging })),
              whole.toReversed(),
              `paging ${JSON.stringify(paging)}`
            )
            assert.deepStrictEqual(
              versionsOf(yield* readStream(stream, { from: 2, to: 5, direction: "backward", ...paging })),
              [5, 4, 3, 2]
            )
          }
          assert.deepStrictEqual(
            versionsOf(yield* readStream(stream, { to: 9, direction: "backward", pageSize: 2 })),
            [7, 6, 5, 4, 3, 2, 1]
          )
          assert.deepStrictEqual(yield* readStream(stream, { to: 0 }), [])
          assert.deepStrictEqual(yield* readStream(newStream(), { direction: "backward" }), [])
        })
      )

      it.effect("readAll returns events in the order appended, with increasing positions", () =>
        Effect.gen(function* () {
          const category = newCategory()
          const streams = [newStream(category), newStream(category), newStream(category)]
          const head = yield* EventStore.EventStore.use((store) => store.head)
          const appended: Array<Envelope.EventData> = []
          for (const [index, stream] of [...streams, ...streams].entries()) {
            const events = newEvents(1 + (index % 2))
            yield* append(stream, events, ExpectedVersion.any)
            appended.push(...events)
          }
          const mine = yield* readAll({ categories: [category] })
          assert.deepStrictEqual(idsOf(mine), idsOf(appended))
          assertIncreasing(mine)
          const everything = yield* readAll({ after: head })
          assertIncreasing(everything)
          assert.isTrue(everything.every((event) => event.position > head))
          const ours = new Set(idsOf(appended))
          assert.deepStrictEqual(idsOf(everything.filter((event) => ours.has(event.eventId))), idsOf(appended))
        })
      )

      it.effect("readAll in small pages gives the same events", () =>
        Effect.gen(function* () {
          const category = newCategory()
          for (const stream of [newStream(category), newStream(category)]) {
            yield* append(stream, newEvents(4), ExpectedVersion.noStream)
          }
          const whole = idsOf(yield* readAll({ categories: [category] }))
          assert.strictEqual(whole.length, 8)
          for (const pageSize of [1, 3, 8, 9]) {
            assert.deepStrictEqual(
              idsOf(yield* readAll({ categories: [category], pageSize })),
              whole,
              `page size ${pageSize}`
            )
          }
        })
      )

      it.effect("readAll filters by category, exactly (a category is not a prefix match)", () =>
        Effect.gen(function* () {
          const category = newCategory()
          const longer = `${category}x`
          const other = newCategory()
          const byCategory = new Map<string, Array<string>>([
            [category, []],
            [longer, []],
            [other, []]
          ])
          const inLogOrder: Array<string> = []
          for (const name of [category, longer, other, category, other, longer, category]) {
            const events = newEvents(1)
            yield* append(newStream(name), events, ExpectedVersion.noStream)
            byCategory.get(name)!.push(...idsOf(events))
            if (name !== longer) inLogOrder.push(...idsOf(events))
          }
          assert.deepStrictEqual(idsOf(yield* readAll({ categories: [category] })), byCategory.get(category))
          // Several categories merge in log order, across page boundaries too.
          assert.deepStrictEqual(idsOf(yield* readAll({ categories: [category, other] })), inLogOrder)
          assert.deepStrictEqual(
            idsOf(yield* readAll({ categories: [other, category, other], pageSize: 2 })),
            inLogOrder
          )
        })
      )

      it.effect(
        "readAll filters by partition: each stream in exactly the partition Partition.of names, in log order",
        () =>
          Effect.gen(function* () {
            const category = newCategory()
            const head = yield* EventStore.EventStore.use((store) => store.head)
            const streams = Array.from({ length: 24 }, () => newStream(category))
            const inLogOrder: Array<{ readonly stream: string; readonly eventId: string }> = []
            for (let round = 0; round < 3; round++) {
              for (const [i, stream] of streams.entries()) {
                if ((i + round) % 3 === 0) continue
                const events = newEvents(1 + (i % 2))
                yield* append(stream, events, ExpectedVersion.any)
                inLogOrder.push(...events.map((event) => ({ stream, eventId: event.eventId })))
              }
            }
            for (const count of [1, 3, 8]) {
              const seen = new Set<string>()
              for (const partition of Partition.all(count)) {
                const expected = inLogOrder
                  .filter((event) => Partition.of(event.stream, count) === partition.index)
                  .map((event) => event.eventId)
                for (const id of expected) seen.add(id)
                assert.deepStrictEqual(idsOf(yield* readAll({ categories: [category], partition })), expected)
                assert.deepStrictEqual(
                  idsOf(yield* readAll({ categories: [category], partition, pageSize: 2 })),
                  expected
                )
                // Without a category the partition alone filters (the store may hold other tests' events too).
                const whole = yield* readAll({ after: head, partition, pageSize: 7 })
                assert.isTrue(whole.every((event) => Partition.contains(partition, event.stream)))
                assertIncreasing(whole)
                assert.deepStrictEqual(
                  idsOf(whole.filter((event) => event.stream.startsWith(`${category}-`))),
                  expected
                )
              }
              assert.strictEqual(seen.size, inLogOrder.length)
            }
            assert.deepStrictEqual(yield* readAll({ categories: [category], partition: { count: 3, index: 3 } }), [])
          })
      )

      it.effect("readAll filters by type, alone and with a category", () =>
        Effect.gen(function* () {
          const category = newCategory()
          const stream = newStream(category)
          const events = [newEvent("A"), newEvent("B"), newEvent("C"), newEvent("A"), newEvent("B")]
          yield* append(stream, events, ExpectedVersion.noStream)
          const elsewhere = newEvent("A")
          yield* append(newStream(), [elsewhere], ExpectedVersion.noStream)
          const ofTypes = (types: ReadonlyArray<string>) => idsOf(events.filter((event) => types.includes(event.type)))
          assert.deepStrictEqual(idsOf(yield* readAll({ categories: [category], types: ["A"] })), ofTypes(["A"]))
          assert.deepStrictEqual(
            idsOf(yield* readAll({ categories: [category], types: ["A", "C"] })),
            ofTypes(["A", "C"])
          )
          const anyCategory = yield* readAll({ types: ["A"] })
          assert.isTrue(anyCategory.every((event) => event.type === "A"))
          const found = new Set(idsOf(anyCategory))
          assert.isTrue([...ofTypes(["A"]), elsewhere.eventId].every((id) => found.has(id)))
        })
      )

      it.effect("readAll reads after a position, exclusively", () =>
        Effect.gen(function* () {
          const category = newCategory()
          yield* append(newStream(category), newEvents(5), ExpectedVersion.noStream)
          const all = yield* readAll({ categories: [category] })
          assert.deepStrictEqual(
            idsOf(yield* readAll({ categories: [category], after: all[1]!.position })),
            idsOf(all.slice(2))
          )
          assert.deepStrictEqual(yield* readAll({ categories: [category], after: all[4]!.position }), [])
        })
      )

      it.effect("head is at least the last append's position, and nothing of ours lies after it", () =>
        Effect.gen(function* () {
          const category = newCategory()
          const written = yield* append(newStream(category), newEvents(3), ExpectedVersion.noStream)
          const head = yield* EventStore.EventStore.use((store) => store.head)
          assert.isTrue(head >= written.position, `head ${head} is behind the append at ${written.position}`)
          const committed = yield* EventStore.EventStore.use((store) => store.lastCommitted)
          assert.isTrue(committed >= head, `lastCommitted ${committed} is behind head ${head}`)
          assert.deepStrictEqual(yield* readAll({ categories: [category], after: head }), [])
        })
      )
    })

    describe("subscriptions", () => {
      it.effect("a subscription catches up, then receives events appended later, in order", () =>
        Effect.gen(function* () {
          const category = newCategory()
          const stream = newStream(category)
          const before = newEvents(3)
          yield* append(stream, before, ExpectedVersion.noStream)
          const caughtUp = yield* Deferred.make<void>()
          const subscriber = yield* takeLive({ categories: [category] }, 6, (event) =>
            event.eventId === before[2]!.eventId ? Deferred.succeed(caughtUp, undefined) : Effect.void
          ).pipe(Effect.forkChild)
          yield* Deferred.await(caughtUp).pipe(Effect.timeout("30 seconds"))
          const after = newEvents(3)
          yield* append(stream, after.slice(0, 2), ExpectedVersion.exact(3))
          yield* append(stream, after.slice(2), ExpectedVersion.exact(5))
          const received = yield* Fiber.join(subscriber)
          assert.deepStrictEqual(idsOf(received), idsOf([...before, ...after]))
          assert.deepStrictEqual(versionsOf(received), range(1, 6))
          assertIncreasing(received)
        })
      )

      it.effect("a subscription applies its filters to live events", () =>
        Effect.gen(function* () {
          const category = newCategory()
          const stream = newStream(category)
          const first = newEvent("Wanted")
          yield* append(stream, [first], ExpectedVersion.noStream)
          const caughtUp = yield* Deferred.make<void>()
          const subscriber = yield* takeLive({ categories: [category], types: ["Wanted"] }, 3, () =>
            Deferred.succeed(caughtUp, undefined)
          ).pipe(Effect.forkChild)
          yield* Deferred.await(caughtUp).pipe(Effect.timeout("30 seconds"))
          // Unwanted events go first, so a filter that lets one through puts it among the first three delivered.
          const wanted = [newEvent("Wanted"), newEvent("Wanted")]
          for (const event of wanted) {
            yield* append(newStream(), [newEvent("Wanted")], ExpectedVersion.noStream)
            yield* append(stream, [newEvent("Unwanted")], ExpectedVersion.any)
            yield* append(stream, [event], ExpectedVersion.any)
          }
          assert.deepStrictEqual(idsOf(yield* Fiber.join(subscriber)), idsOf([first, ...wanted]))
        })
      )

      it.effect("a subscription starts after the position it is given", () =>
        Effect.gen(function* () {
          const category = newCategory()
          const events = newEvents(4)
          yield* append(newStream(category), events, ExpectedVersion.noStream)
          const all = yield* readAll({ categories: [category] })
          const received = yield* takeLive({ categories: [category], after: all[1]!.position }, 2)
          assert.deepStrictEqual(idsOf(received), idsOf(events.slice(2)))
        })
      )
    })

    describe("concurrency", () => {
      it.effect("concurrent writers to one stream: exactly one wins each version and every event is stored once", () =>
        Effect.gen(function* () {
          const stream = newStream()
          const writers = Array.from({ length: 50 }, () => EventId.random())
          const results = yield* Effect.forEach(writers, (id) => appendAtCurrentVersion(stream, claiming([id])), {
            concurrency: "unbounded"
          })
          assert.deepStrictEqual(
            results.map((result) => result.version).sort((a, b) => a - b),
            range(1, 50)
          )
          const stored = yield* readStream(stream)
          assert.deepStrictEqual(versionsOf(stored), range(1, 50))
          assert.sameMembers(idsOf(stored), writers)
          assertClaimsHold(stored)
          assertIncreasing(stored)
          // Each writer's result names the version its own event holds.
          results.forEach((result, index) => {
            assert.strictEqual(stored[result.version - 1]!.eventId, writers[index])
          })
        })
      )

      it.effect(
        "2,000 concurrent any and streamExists appends to one stream are all stored, versions without gaps",
        () =>
          Effect.gen(function* () {
            const stream = newStream()
            const first = newEvent()
            yield* append(stream, [first], ExpectedVersion.noStream)
            const events = newEvents(2_000)
            yield* Effect.forEach(
              events,
              (event, index) =>
                append(stream, [event], index % 4 === 0 ? ExpectedVersion.streamExists : ExpectedVersion.any),
              { concurrency: "unbounded", discard: true }
            )
            const stored = yield* readStream(stream)
            assert.deepStrictEqual(versionsOf(stored), range(1, 2_001))
            assert.sameMembers(idsOf(stored), idsOf([first, ...events]))
          })
      )

      it.effect(
        "concurrent writers to many streams and a concurrent subscriber that sees every event once, in order",
        () =>
          Effect.gen(function* () {
            const category = newCategory()
            const streams = Array.from({ length: 10 }, () => newStream(category))
            const batches = Array.from({ length: 100 }, (_, index) => ({
              stream: streams[index % streams.length]!,
              ids: Array.from({ length: 1 + (index % 3) }, () => EventId.random())
            }))
            const total = batches.reduce((sum, batch) => sum + batch.ids.length, 0)
            const subscriber = yield* takeLive({ categories: [category] }, total).pipe(Effect.forkChild)
            yield* Effect.forEach(batches, ({ stream, ids }) => appendAtCurrentVersion(stream, claiming(ids)), {
              concurrency: "unbounded",
              discard: true
            })
            const received = yield* Fiber.join(subscriber)
            assert.strictEqual(new Set(idsOf(received)).size, total, "every event exactly once")
            assert.sameMembers(
              idsOf(received),
              batches.flatMap((batch) => batch.ids)
            )
            assertIncreasing(received)
            assertClaimsHold(received)
            for (const stream of streams) {
              const ofStream = received.filter((event) => event.stream === stream)
              assert.deepStrictEqual(versionsOf(ofStream), range(1, ofStream.length), stream)
            }
            assert.deepStrictEqual(idsOf(yield* readAll({ categories: [category] })), idsOf(received))
          })
      )
    })
  })
