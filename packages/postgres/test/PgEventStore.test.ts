import { EventId, EventStore, ExpectedVersion, Metrics, Partition } from "@chronicle/core"
import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { PgTest } from "@chronicle/testing"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Logger, Metric, Option, Redacted, Schedule, Schema, Stream } from "effect"
import { SqlClient, Statement } from "effect/sql"

const StoreLive = PgEventStore.layer().pipe(Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer)))

const event = (type = "Happened", data: unknown = { n: 1 }) => ({
  eventId: EventId.random(),
  type,
  schemaVersion: 1,
  data: data as never,
  metadata: {}
})
const streamOf = (category = "pg") => `${category}-${crypto.randomUUID()}`

/** Appends to a new stream of `category` in a transaction held open (readers wait behind it) until `release`. */
const holdOpen = (store: EventStore.Service, category: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const opened = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const holder = yield* sql
      .withTransaction(
        Effect.gen(function* () {
          yield* store.append(streamOf(category), [event()], ExpectedVersion.noStream)
          yield* Deferred.succeed(opened, undefined)
          yield* Deferred.await(release)
        })
      )
      .pipe(Effect.forkChild)
    yield* Deferred.await(opened)
    return { release, holder }
  })

layer(StoreLive, { excludeTestServices: true })("PgEventStore", (it) => {
  it.effect("bad input fails with a typed error and writes nothing", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const stream = streamOf()
      const head = yield* store.head
      const invalidName = yield* store.append("nodash", [event()], ExpectedVersion.any).pipe(Effect.flip)
      assert.strictEqual(invalidName._tag, "InvalidStreamName")
      const empty = yield* store.append(stream, [], ExpectedVersion.any).pipe(Effect.flip)
      assert.strictEqual(empty._tag, "InvalidAppend")
      const big = "x".repeat(EventStore.maxEventBytes + 1)
      const oversize = yield* store
        .append(stream, [event(), event("Big", { big })], ExpectedVersion.any)
        .pipe(Effect.flip)
      assert.deepStrictEqual(oversize._tag === "InvalidAppend" ? oversize.reason._tag : oversize._tag, "TooLarge")
      assert.include(oversize.message, "event 1 is")
      assert.strictEqual(yield* store.streamVersion(stream), 0)
      assert.strictEqual(yield* store.head, head)
    })
  )

  it.effect("an event id stored in another stream is refused, a repeat in the same stream is a no-op", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const [a, b] = [streamOf(), streamOf()]
      const first = event()
      const written = yield* store.append(a, [first, event()], ExpectedVersion.noStream)
      const repeat = yield* store.append(a, [first], ExpectedVersion.noStream)
      assert.deepStrictEqual(repeat, { stream: a, version: 1, position: repeat.position, written: 0 })
      assert.isTrue(repeat.position < written.position)
      const stolen = yield* store.append(b, [first], ExpectedVersion.any).pipe(Effect.flip)
      assert.strictEqual(stolen._tag, "InvalidAppend")
      assert.include(stolen.message, a)
      assert.strictEqual(yield* store.streamVersion(b), 0)
    })
  )

  it.effect("an Any or StreamExists append past the last version is StreamFull, as in memory", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const sql = yield* SqlClient.SqlClient
      const stream = streamOf("full")
      const limit = ExpectedVersion.maxVersion
      yield* sql`
        INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
        VALUES ((pg_current_xact_id()::text::bigint << 20) + 1, ${stream}, 'full', ${limit - 1}, ${EventId.random()}::uuid,
                'Happened', 1, '{}', '{}')`
      const reasonOf = (error: EventStore.AppendError) => (error._tag === "InvalidAppend" ? error.reason : error)
      const two = yield* store.append(stream, [event(), event()], ExpectedVersion.any).pipe(Effect.flip)
      assert.deepStrictEqual(reasonOf(two), { _tag: "StreamFull", version: limit - 1, events: 2, limit })
      const last = yield* store.append(stream, [event()], ExpectedVersion.streamExists)
      assert.strictEqual(last.version, limit)
      const more = yield* store.append(stream, [event()], ExpectedVersion.streamExists).pipe(Effect.flip)
      assert.deepStrictEqual(reasonOf(more), { _tag: "StreamFull", version: limit, events: 1, limit })
      assert.strictEqual(yield* store.streamVersion(stream), limit)
    })
  )

  it.effect("concurrent Any appends to one stream all succeed with contiguous versions", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const stream = streamOf()
      yield* Effect.forEach(
        Array.from({ length: 40 }, () => event()),
        (e) => store.append(stream, [e], ExpectedVersion.any),
        { concurrency: 16, discard: true }
      )
      const versions = (yield* Stream.runCollect(store.readStream(stream))).map((e) => e.version)
      assert.deepStrictEqual(
        versions,
        Array.from({ length: 40 }, (_, i) => i + 1)
      )
    })
  )

  it.effect("appends inside a transaction commit or roll back with it, and keep distinct ordered positions", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const sql = yield* SqlClient.SqlClient
      const [kept, dropped] = [streamOf(), streamOf()]
      const positions = yield* sql.withTransaction(
        Effect.gen(function* () {
          const one = yield* store.append(kept, [event(), event()], ExpectedVersion.noStream)
          const two = yield* store.append(kept, [event()], ExpectedVersion.exact(2))
          return [one.position, two.position]
        })
      )
      assert.isTrue(positions[1]! > positions[0]!)
      yield* sql
        .withTransaction(
          Effect.andThen(store.append(dropped, [event()], ExpectedVersion.noStream), Effect.fail("abort"))
        )
        .pipe(Effect.flip)
      assert.strictEqual(yield* store.streamVersion(kept), 3)
      assert.strictEqual(yield* store.streamVersion(dropped), 0)
    })
  )

  it.effect("an append in a caller's transaction wakes subscribers when it commits, not before", () =>
    Effect.gen(function* () {
      // Polling an hour apart: only the wake-up can deliver the event in time.
      const store = yield* PgEventStore.make({ pollInterval: "1 hour" })
      const sql = yield* SqlClient.SqlClient
      const category = `tx${crypto.randomUUID().slice(0, 8)}`
      const received = yield* store
        .subscribe({ categories: [category] })
        .pipe(Stream.take(1), Stream.runCollect, Effect.timeout("30 seconds"), Effect.forkChild)
      const stream = streamOf(category)
      yield* sql.withTransaction(
        Effect.andThen(store.append(stream, [event()], ExpectedVersion.noStream), Effect.sleep("500 millis"))
      )
      assert.deepStrictEqual(
        (yield* Fiber.join(received)).map((e) => e.stream),
        [stream]
      )
    })
  )

  it.effect("lastCommitted includes an event committed behind an older open transaction; head does not", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const { release, holder } = yield* holdOpen(store, "older")
      const later = yield* store.append(streamOf("later"), [event()], ExpectedVersion.noStream)
      assert.isTrue((yield* store.head) < later.position, "head passed the open transaction")
      assert.isTrue((yield* store.lastCommitted) >= later.position, "lastCommitted is behind a committed append")
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      assert.isTrue((yield* store.head) >= later.position, "head is behind after the transaction ended")
    })
  )

  it.effect("while something subscribes, the store samples the horizon's age into its gauge", () =>
    Effect.gen(function* () {
      const store = yield* PgEventStore.make({ horizonInterval: "20 millis" })
      const { release, holder } = yield* holdOpen(store, "hzgauge")
      const age = Effect.map(Metric.value(Metrics.horizonAge), (gauge) => gauge.value)
      assert.strictEqual(yield* age, 0)
      yield* store.subscribe({ categories: ["hzgauge"] }).pipe(Stream.runDrain, Effect.forkChild)
      const seen = yield* age.pipe(
        Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (seconds) => seconds > 0 }),
        Effect.timeout("20 seconds")
      )
      assert.isAbove(seen, 0)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("a transaction left open holds readers back without making them skip, and the horizon names it", () =>
    Effect.gen(function* () {
      const horizon = PgEventStore.horizonNow
      const store = yield* EventStore.EventStore
      const sql = yield* SqlClient.SqlClient
      const category = `hz${crypto.randomUUID().slice(0, 8)}`
      const opened = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            yield* store.append(streamOf(category), [event("Early")], ExpectedVersion.noStream)
            yield* Deferred.succeed(opened, undefined)
            yield* Deferred.await(release)
          })
        )
        .pipe(Effect.forkChild)
      yield* Deferred.await(opened)
      yield* store.append(streamOf(category), [event("Late")], ExpectedVersion.noStream)
      const whileOpen = yield* Stream.runCollect(store.readAll({ categories: [category] }))
      const report = yield* horizon
      assert.deepStrictEqual(whileOpen, [])
      assert.isTrue(Option.isSome(report.holder))
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      const afterCommit = yield* Stream.runCollect(store.readAll({ categories: [category] }))
      assert.deepStrictEqual(
        afterCommit.map((e) => e.type),
        ["Early", "Late"]
      )
    })
  )
})

/** How many sessions of this database are listening (their last statement was a LISTEN). */
const listeners = SqlClient.SqlClient.use(
  (sql) => sql<{ n: number }>`
    SELECT count(*)::int4 AS n FROM pg_stat_activity
    WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`
).pipe(Effect.map(([row]) => row?.n ?? 0))

layer(PgMigrations.layer.pipe(Layer.provideMerge(PgTest.layer({ maxConnections: 1 }))), {
  excludeTestServices: true
})("PgEventStore on a pool of one connection", (it) => {
  it.effect("LISTEN takes its own connection only while something subscribes, and appends keep the whole pool", () =>
    Effect.gen(function* () {
      // Polling an hour apart: only a NOTIFY from the other store, heard on the LISTEN connection, delivers in time.
      const subscriber = yield* PgEventStore.make({ pollInterval: "1 hour" })
      const writer = yield* PgEventStore.make()
      assert.strictEqual(yield* listeners, 0)
      const category = `listen${crypto.randomUUID().slice(0, 8)}`
      const listening = yield* Deferred.make<void>()
      const received = yield* subscriber
        .subscribe({ categories: [category] })
        .pipe(
          Stream.onStart(Deferred.succeed(listening, undefined)),
          Stream.take(1),
          Stream.runCollect,
          Effect.timeout("30 seconds"),
          Effect.forkChild
        )
      yield* Deferred.await(listening)
      // The listener connects in the background: wait until the server shows it.
      yield* listeners.pipe(Effect.repeat({ until: (n) => n === 1, schedule: Schedule.spaced("20 millis") }))
      const stream = streamOf(category)
      yield* writer.append(stream, [event()], ExpectedVersion.noStream).pipe(Effect.timeout("10 seconds"))
      assert.deepStrictEqual(
        (yield* Fiber.join(received)).map((e) => e.stream),
        [stream]
      )
      // The subscription ended, so the listener let its connection go.
      yield* listeners.pipe(Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("20 millis") }))
    }).pipe(Effect.timeout("60 seconds"))
  )
})

describe("PgEventStore when the database restarts", () => {
  it.live("a subscription ends with EventStoreError when waiting cannot help (no events table)", () =>
    Effect.gen(function* () {
      const url = yield* PgTest.database
      const failure = yield* Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        return yield* store.subscribe().pipe(Stream.runDrain, Effect.flip, Effect.timeout("30 seconds"))
      }).pipe(Effect.provide(PgEventStore.layer().pipe(Layer.provide(PgClient.layer({ url: Redacted.make(url) })))))
      assert.strictEqual(failure._tag, "EventStoreError")
      assert.include(failure.message, "chronicle_events")
      assert.isFalse(failure.retryMayHelp)
    })
  )

  it.live(
    "appends fail with EventStoreError while it is down, nothing is half-written, and a subscription carries on",
    () =>
      Effect.gen(function* () {
        const server = yield* Effect.acquireRelease(
          Effect.promise(() => EmbeddedPostgres.start()),
          (s) => Effect.promise(() => s.stop())
        )
        const client = PgClient.layer({
          url: Redacted.make(server.url),
          maxConnections: 8,
          connectTimeout: "2 seconds"
        })
        yield* Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const category = "restart"
          const seen = yield* store.subscribe({ categories: [category] }).pipe(
            Stream.takeUntil((e) => e.stream === `${category}-101` && e.version === 5),
            Stream.runCollect,
            Effect.timeout("60 seconds"),
            Effect.forkChild
          )
          const batch = (n: number) => Array.from({ length: 5 }, (_, k) => event("Batch", { n, k }))
          for (let n = 0; n < 2; n++) yield* store.append(`${category}-${n}`, batch(n), ExpectedVersion.noStream)

          // Appends racing the shutdown: each one is all-or-nothing, whatever the outcome the client saw.
          const racing = yield* Effect.forEach(
            Array.from({ length: 30 }, (_, n) => n + 2),
            (n) => Effect.result(store.append(`${category}-${n}`, batch(n), ExpectedVersion.noStream)),
            { concurrency: 4 }
          ).pipe(Effect.forkChild)
          let down: EventStore.EventStoreError | undefined
          yield* Effect.promise(() =>
            server.restart({
              downFor: async () => {
                down = await Effect.runPromise(
                  store.append(`${category}-down`, batch(-1), ExpectedVersion.noStream).pipe(Effect.flip) as never
                )
              }
            })
          )
          yield* Fiber.join(racing)
          assert.strictEqual(down?._tag, "EventStoreError")
          assert.strictEqual(down?.stream, `${category}-down`)
          assert.isTrue(down?.retryMayHelp)

          const all = yield* Stream.runCollect(store.readAll({ categories: [category] }))
          const perStream = new Map<string, number>()
          for (const e of all) perStream.set(e.stream, (perStream.get(e.stream) ?? 0) + 1)
          for (const [stream, count] of perStream) assert.strictEqual(count, 5, `${stream} holds a whole batch`)

          for (let n = 100; n < 102; n++) yield* store.append(`${category}-${n}`, batch(n), ExpectedVersion.noStream)
          const received = yield* Fiber.join(seen)
          const log = yield* Stream.runCollect(store.readAll({ categories: [category] }))
          assert.deepStrictEqual(
            received.map((e) => e.eventId),
            log.map((e) => e.eventId)
          )
        }).pipe(
          Effect.provide(
            PgEventStore.layer({ pollInterval: "200 millis" }).pipe(
              Layer.provideMerge(PgMigrations.layer),
              Layer.provideMerge(client)
            )
          )
        )
      }),
    120_000
  )
})

layer(StoreLive, { excludeTestServices: true })("PgEventStore stream reads", (it) => {
  it.effect(
    "a stream read without a page size is one streamed statement: whole, from a version, or cut short",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const stream = streamOf("long")
        const events = Array.from({ length: 3_000 }, (_, n) => event("Happened", { n }))
        for (let from = 0; from < events.length; from += 500) {
          yield* store.append(stream, events.slice(from, from + 500), ExpectedVersion.exact(from))
        }
        const whole = yield* Stream.runCollect(store.readStream(stream))
        assert.deepStrictEqual(
          whole.map((e) => e.eventId),
          events.map((e) => e.eventId)
        )
        const paged = yield* Stream.runCollect(store.readStream(stream, { pageSize: 700 }))
        assert.deepStrictEqual(paged, whole)
        const tail = yield* Stream.runCollect(store.readStream(stream, { from: 2_990 }))
        assert.deepStrictEqual(
          tail.map((e) => e.version),
          Array.from({ length: 11 }, (_, i) => 2_990 + i)
        )
        // Reads cut short give their connections back in working order: more of them than the pool holds, then a
        // whole read again.
        yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          () => Stream.runCollect(Stream.take(store.readStream(stream), 5)),
          { concurrency: 4, discard: true }
        )
        assert.strictEqual((yield* Stream.runCollect(store.readStream(stream))).length, 3_000)
      }),
    60_000
  )
})

/** Runs `effect`, keeping every statement the store sends meanwhile, with its parameters. */
const sending = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const sent: Array<readonly [string, ReadonlyArray<unknown>]> = []
    const result = yield* effect.pipe(
      Effect.provideService(Statement.CurrentTransformer, (statement) =>
        Effect.sync(() => {
          sent.push(statement.compile())
          return statement
        })
      )
    )
    return [result, sent] as const
  })

/** The plan Postgres picks for a statement the store sent, as text. */
const planOf = ([text, params]: readonly [string, ReadonlyArray<unknown>]) =>
  Effect.flatMap(PgClient.PgClient, (sql) =>
    sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN ${text}`, params as Array<unknown>)
  ).pipe(Effect.map((rows) => rows.map((row) => row["QUERY PLAN"]).join("\n")))

layer(StoreLive, { excludeTestServices: true })("PgEventStore partition reads", (it) => {
  it.effect.prop(
    "give the same events with and without the partition index, which they use when it exists",
    [
      Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 11 }))),
      Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 16 })),
      Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 5 }))
    ],
    ([order, count, pageSize]) =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        yield* sql`DROP INDEX IF EXISTS chronicle_events_stream_bucket`
        // A log of some size first, so the planner weighs the index against scans as it would in an app.
        const [filled] = yield* sql<{
          n: number
        }>`SELECT count(*)::int AS n FROM chronicle_events WHERE global_position <= 20000`
        if (filled?.n === 0) {
          yield* sql`
            INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
            SELECT g, 'base-' || (g % 2000), 'base', g / 2000 + 1, gen_random_uuid(), 'Happened', 1, '{}', '{}'
            FROM generate_series(1, 20000) g`
          yield* sql`ANALYZE chronicle_events`
        }
        const head = yield* EventStore.EventStore.use((store) => store.head)
        const streams = Array.from({ length: 12 }, () => streamOf("part"))
        const appended: Array<{ readonly stream: string; readonly eventId: string }> = []
        for (const i of order) {
          const one = event()
          yield* EventStore.EventStore.use((store) => store.append(streams[i]!, [one], ExpectedVersion.any))
          appended.push({ stream: streams[i]!, eventId: one.eventId })
        }
        // A fresh store per side: a store that has seen the index remembers it.
        const readEvery = Effect.gen(function* () {
          const store = yield* PgEventStore.make()
          return yield* Effect.forEach(Partition.all(count), (partition) =>
            Effect.gen(function* () {
              const [events, sent] = yield* sending(
                Stream.runCollect(store.readAll({ after: head, partition, pageSize }))
              )
              // The plan of its last page, while the index is as it was for the read.
              const plan = yield* planOf(sent.findLast(([text]) => text.includes("FROM chronicle_events"))!)
              return [events, plan] as const
            })
          )
        })
        const warnings: Array<string> = []
        const without = yield* readEvery.pipe(
          Effect.provide(Logger.layer([Logger.make(({ message }) => warnings.push(String(message)))]))
        )
        yield* PgMigrations.partitionIndex
        const withIndex = yield* readEvery
        for (const partition of Partition.all(count)) {
          const expected = appended.filter((one) => Partition.contains(partition, one.stream)).map((one) => one.eventId)
          const [unindexed, planWithout] = without[partition.index]!
          const [indexed, planWith] = withIndex[partition.index]!
          assert.deepStrictEqual(
            unindexed.map((one) => one.eventId),
            expected
          )
          assert.deepStrictEqual(
            indexed.map((one) => one.eventId),
            expected
          )
          // A count of 1 is the whole log: it reads without buckets.
          assert.notInclude(planWithout, "chronicle_events_stream_bucket")
          if (count > 1) assert.include(planWithout, "md5(stream_id)", planWithout)
          if (count > 1) assert.include(planWith, "chronicle_events_stream_bucket")
        }
        // The store warns once that it reads partitions without the index, not for every page.
        assert.strictEqual(warnings.filter((warning) => warning.includes("partition index")).length, count > 1 ? 1 : 0)
      }),
    { timeout: 120_000, arbitrary: { runs: 12 } }
  )
})
