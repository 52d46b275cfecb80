/**
 * Group commit (internal/GroupCommit through PgEventStore): many concurrent appends that mix good ones, conflicts,
 * repeats, ids taken by another append of the same batch and values the server refuses share round trips, and each
 * caller gets exactly its own result; the database holds exactly the good appends, and some transactions did carry
 * several appends. Rounds (internal/GroupCommit directly, with lone statements the tests control): an append that finds
 * nothing in flight runs its statement in the submitting call, in the caller's fiber; those that arrive meanwhile,
 * and a caller that appends again as soon as it is answered, go together in the next round; with two round trips in flight a batch goes
 * beside a lone append and a stream in flight waits its turn. Appends still waiting when the store's scope closes
 * (queued behind a lone one held by a lock) fail at once with a typed error, and so does any append after it closed;
 * the lone one runs in its caller's fiber and ends as its statement does.
 */
import { EventId, EventStore, ExpectedVersion } from "@chronicle/core"
import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { PgTest } from "@chronicle/testing"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Result, Schedule, Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"
import * as GroupCommit from "../src/internal/GroupCommit.ts"

const StoreLive = PgEventStore.layer().pipe(
  Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer, { maxConnections: 24 }))
)

const event = (data: unknown = { n: 1 }, eventId: string = EventId.random()) => ({
  eventId,
  type: "Happened",
  schemaVersion: 1,
  data: data as never,
  metadata: {}
})

/** What one append should end with. */
type Expect =
  | { readonly _tag: "Written"; readonly version: number; readonly written: number }
  | { readonly _tag: "Repeat"; readonly version: number }
  | { readonly _tag: "Conflict"; readonly actual: number }
  | { readonly _tag: "Refused" }

interface Case {
  readonly stream: string
  readonly events: ReadonlyArray<ReturnType<typeof event>>
  readonly expected: ExpectedVersion.ExpectedVersion
  readonly expect: Expect
}

layer(StoreLive, { excludeTestServices: true })("group commit", (it) => {
  it.effect(
    "concurrent appends mixing conflicts, repeats and good appends each get exactly their own result",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const sql = yield* SqlClient.SqlClient
        const run = `gc${crypto.randomUUID().slice(0, 8)}`
        const stream = (kind: string, i: number) => `${run}-${kind}${i}`

        // Streams that already hold two events, for conflicts and repeats.
        const existing = Array.from({ length: 20 }, (_, i) => ({
          stream: stream("old", i),
          events: [event({ i, k: 1 }), event({ i, k: 2 })]
        }))
        for (const { stream, events } of existing) yield* store.append(stream, events, ExpectedVersion.noStream)

        // Two rounds of concurrent appends: 200 with every kind but a refused value, which would fail the batch it
        // lands in as a whole (it lands in the one that carries nearly all of them); then 40 more with one of those.
        const mixed = (from: number, count: number, refused: number) => {
          const cases: Array<Case> = []
          for (let i = from; i < from + count; i++) {
            const old = existing[i % existing.length]!
            switch (i % 10) {
              case 0: // a stale exact version
                cases.push({
                  stream: old.stream,
                  events: [event()],
                  expected: ExpectedVersion.exact(1),
                  expect: { _tag: "Conflict", actual: 2 }
                })
                break
              case 1: // a new stream expected, but it exists
                cases.push({
                  stream: old.stream,
                  events: [event()],
                  expected: ExpectedVersion.noStream,
                  expect: { _tag: "Conflict", actual: 2 }
                })
                break
              case 2: // the first append again: a repeat, nothing written
                cases.push({
                  stream: old.stream,
                  events: old.events,
                  expected: ExpectedVersion.noStream,
                  expect: { _tag: "Repeat", version: 2 }
                })
                break
              case 3: // an id another stream holds
                cases.push({
                  stream: stream("stolen", i),
                  events: [event(), event(undefined, old.events[0]!.eventId)],
                  expected: ExpectedVersion.noStream,
                  expect: { _tag: "Refused" }
                })
                break
              case 4: // once: a value Postgres refuses (jsonb has no \u0000), which fails its whole batch
                if (i !== refused) {
                  cases.push({
                    stream: stream("new", i),
                    events: [event()],
                    expected: ExpectedVersion.noStream,
                    expect: { _tag: "Written", version: 1, written: 1 }
                  })
                  break
                }
                cases.push({
                  stream: stream("nul", i),
                  events: [event({ text: "a\u0000b" })],
                  expected: ExpectedVersion.noStream,
                  expect: { _tag: "Refused" }
                })
                break
              case 5: // an exact version past the stream's end
                cases.push({
                  stream: stream("ahead", i),
                  events: [event()],
                  expected: ExpectedVersion.exact(3),
                  expect: { _tag: "Conflict", actual: 0 }
                })
                break
              default: // good appends of one to three events to new streams
                cases.push({
                  stream: stream("new", i),
                  events: Array.from({ length: (i % 3) + 1 }, (_, k) => event({ i, k })),
                  expected: ExpectedVersion.noStream,
                  expect: { _tag: "Written", version: (i % 3) + 1, written: (i % 3) + 1 }
                })
            }
          }
          return cases
        }
        const cases = [...mixed(0, 200, -1), ...mixed(200, 40, 204)]
        const appendAll = (cases: ReadonlyArray<Case>) =>
          Effect.forEach(cases, ({ stream, events, expected }) => Effect.exit(store.append(stream, events, expected)), {
            concurrency: "unbounded"
          })
        const outcomes = [...(yield* appendAll(cases.slice(0, 200))), ...(yield* appendAll(cases.slice(200)))]

        for (const [i, outcome] of outcomes.entries()) {
          const { stream, expect, events } = cases[i]!
          const label = `case ${i} (${stream}, ${expect._tag})`
          switch (expect._tag) {
            case "Written":
            case "Repeat": {
              assert.isTrue(Exit.isSuccess(outcome), label)
              if (!Exit.isSuccess(outcome)) break
              assert.strictEqual(outcome.value.stream, stream, label)
              assert.strictEqual(outcome.value.version, expect.version, label)
              assert.strictEqual(outcome.value.written, expect._tag === "Written" ? expect.written : 0, label)
              const stored = yield* Stream.runCollect(store.readStream(stream))
              if (expect._tag === "Written") {
                assert.deepStrictEqual(
                  stored.map((e) => e.eventId),
                  events.map((e) => e.eventId),
                  label
                )
                assert.strictEqual(stored.at(-1)!.position, outcome.value.position, label)
              }
              break
            }
            case "Conflict": {
              assert.isTrue(Exit.isFailure(outcome), label)
              const error = yield* Effect.flip(outcome)
              assert.strictEqual(error._tag, "ConcurrencyError", label)
              if (error._tag === "ConcurrencyError") assert.strictEqual(error.actual, expect.actual, label)
              break
            }
            case "Refused": {
              assert.isTrue(Exit.isFailure(outcome), label)
              assert.strictEqual(yield* store.streamVersion(stream), 0, label)
            }
          }
        }
        // The streams that existed before are untouched by the conflicts and repeats.
        for (const { stream, events } of existing) {
          const stored = yield* Stream.runCollect(store.readStream(stream))
          assert.deepStrictEqual(
            stored.map((e) => e.eventId),
            events.map((e) => e.eventId)
          )
        }
        // And the appends did share transactions: some transaction wrote to more than one stream.
        const [shared] = yield* sql<{ n: number }>`
          SELECT count(*)::int4 AS n FROM (
            SELECT global_position >> 20 FROM chronicle_events WHERE stream_id LIKE ${`${run}-%`}
            GROUP BY global_position >> 20 HAVING count(DISTINCT stream_id) > 1) t`
        assert.isAbove(shared?.n ?? 0, 0)
      }),
    { timeout: 60_000 }
  )

  /** An append of `count` new events to `stream` (a new stream), whose lone statement is `alone`. */
  const submission = (
    stream: string,
    alone: Effect.Effect<ReadonlyArray<GroupCommit.Row>>,
    count = 1
  ): GroupCommit.Append => {
    const prepared = EventStore.prepareAppend(
      stream,
      Array.from({ length: count }, (_, k) => event({ k })),
      ExpectedVersion.noStream
    )
    if (Result.isFailure(prepared)) throw new Error(`bad test append: ${prepared.failure.message}`)
    return { stream, category: stream.split("-")[0]!, expected: 0, events: prepared.success.events, alone }
  }
  const notAlone = Effect.die("this append was to share a round trip, not go alone")

  /** `append` with every event's data replaced by `dataJson`. */
  const withDataJson = (append: GroupCommit.Append, dataJson: string): GroupCommit.Append => ({
    ...append,
    events: append.events.map((prepared) => ({ ...prepared, dataJson }))
  })

  /**
   * Submits `appends` while a lone append is held in flight, then lets it go: they wait and go in the rounds after it.
   * Returns each one's rows.
   */
  const behindLoneAppend = (
    commits: GroupCommit.GroupCommit,
    run: string,
    appends: ReadonlyArray<GroupCommit.Append>
  ) =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.forkChild(
        commits.submit(submission(`${run}-first`, Effect.as(Deferred.await(gate), []))),
        { startImmediately: true }
      )
      const waiting = yield* Effect.forEach(appends, (append) =>
        Effect.forkChild(commits.submit(append), { startImmediately: true })
      )
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      return yield* Effect.forEach(waiting, Fiber.join)
    })

  it.effect("an append that finds nothing in flight runs its own statement at once, in the caller's fiber", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const commits = yield* GroupCommit.make(sql)
      let started = false
      let ranOn: Fiber.Fiber<unknown, unknown> | undefined
      const alone = Effect.withFiber((fiber) => {
        started = true
        ranOn = fiber
        return Effect.succeed<ReadonlyArray<GroupCommit.Row>>([])
      })
      const fiber = yield* Effect.forkChild(
        commits.submit(submission(`lone${crypto.randomUUID().slice(0, 8)}-1`, alone)),
        {
          startImmediately: true
        }
      )
      // Nothing has yielded since the fork: the statement started in the submitting call itself.
      assert.isTrue(started)
      assert.strictEqual(ranOn, fiber)
      assert.deepStrictEqual(yield* Fiber.join(fiber), [])
    })
  )

  it.effect(
    "appends that arrive while one is in flight wait, and the next round carries them all in one statement",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EventStore.EventStore
        const commits = yield* GroupCommit.make(sql)
        const run = `next${crypto.randomUUID().slice(0, 8)}`
        // The first append is in flight until the gate opens.
        const gate = yield* Deferred.make<void>()
        const first = yield* Effect.forkChild(
          commits.submit(submission(`${run}-first`, Effect.as(Deferred.await(gate), []))),
          { startImmediately: true }
        )
        const streams = Array.from({ length: 5 }, (_, i) => `${run}-${i}`)
        const waiting = yield* Effect.forEach(streams, (stream, i) =>
          Effect.forkChild(commits.submit(submission(stream, notAlone, i + 1)), { startImmediately: true })
        )
        // While the first is in flight nothing else is sent.
        for (const stream of streams) assert.strictEqual(yield* store.streamVersion(stream), 0)
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(yield* Fiber.join(first), [])
        const answers = yield* Effect.forEach(waiting, Fiber.join)
        // Each caller gets exactly its own rows, and all of them were written by one transaction.
        assert.deepStrictEqual(
          answers.map((rows) => rows.map(({ version }) => version)),
          streams.map((_, i) => Array.from({ length: i + 1 }, (_, k) => k + 1))
        )
        const transactions = new Set(
          answers.flatMap((rows) => rows.map(({ global_position }) => global_position >> 20n))
        )
        assert.strictEqual(transactions.size, 1)
      })
  )

  it.effect("a batch stops where its JSON would pass the limit, and the rest goes in the next round", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const run = `json${crypto.randomUUID().slice(0, 8)}`
      // Each append carries 100 + 2 characters of JSON: two fit under 250, three do not, so four go two by two.
      const commits = yield* GroupCommit.make(sql, { maxJsonChars: 250 })
      const appends = [0, 1, 2, 3].map((i) => withDataJson(submission(`${run}-${i}`, notAlone), `"${"x".repeat(98)}"`))
      const transactions = (yield* behindLoneAppend(commits, run, appends)).map(
        (rows) => rows[0]!.global_position >> 20n
      )
      assert.strictEqual(transactions[0], transactions[1])
      assert.strictEqual(transactions[2], transactions[3])
      assert.notStrictEqual(transactions[1], transactions[2])
    })
  )

  it.effect("a batch keeps JSON null data as null, beside other appends in the same transaction", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const store = yield* EventStore.EventStore
      const commits = yield* GroupCommit.make(sql)
      const run = `null${crypto.randomUUID().slice(0, 8)}`
      const data = [null, { n: 1 }, "text"]
      const appends = data.map((value, i) => withDataJson(submission(`${run}-${i}`, notAlone), JSON.stringify(value)))
      const rows = yield* behindLoneAppend(commits, run, appends)
      assert.deepStrictEqual(
        rows.map((written) => written.length),
        [1, 1, 1]
      )
      assert.strictEqual(new Set(rows.map((written) => written[0]!.global_position >> 20n)).size, 1)
      const stored = yield* Effect.forEach([0, 1, 2], (i) =>
        Stream.runCollect(store.readStream(`${run}-${i}`)).pipe(Effect.map((events) => events[0]!.data))
      )
      assert.deepStrictEqual(stored, data)
    })
  )

  it.effect("the batch statement's generic plan, made on an empty table, probes the indexes", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const name = `chronicle_plan_${crypto.randomUUID().slice(0, 8)}`
      const [appends, events, data, metadata] = GroupCommit.batchParams([
        submission(`plan${crypto.randomUUID().slice(0, 8)}-1`, notAlone, 10)
      ]) as [string, string, Array<string>, Array<string>]
      const quoted = (text: string) => `'${text.replaceAll("'", "''")}'`
      const texts = (values: ReadonlyArray<string>) => `ARRAY[${values.map(quoted).join(", ")}]::text[]`
      // An empty copy of the table, seen first inside this transaction, and the plan Postgres would cache and reuse.
      const plan = yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`CREATE TEMP TABLE chronicle_events (LIKE public.chronicle_events INCLUDING ALL) ON COMMIT DROP`
          yield* sql`SET LOCAL plan_cache_mode = force_generic_plan`
          yield* sql.unsafe(`PREPARE ${name} (jsonb, jsonb, text[], text[]) AS ${GroupCommit.batchStatement}`)
          const rows = yield* sql.unsafe<{ "QUERY PLAN": string }>(
            `EXPLAIN EXECUTE ${name}(${quoted(appends)}, ${quoted(events)}, ${texts(data)}, ${texts(metadata)})`
          )
          yield* sql.unsafe(`DEALLOCATE ${name}`)
          return rows.map((row) => row["QUERY PLAN"]).join("\n")
        })
      )
      assert.include(plan, "Index")
      assert.notInclude(plan, "Seq Scan on chronicle_events")
    })
  )

  it.effect("a caller that appends again as soon as it is answered goes in the next round with those waiting", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const commits = yield* GroupCommit.make(sql)
      const run = `again${crypto.randomUUID().slice(0, 8)}`
      const gate = yield* Deferred.make<void>()
      // The first caller's append is in flight until the gate opens; then it appends again at once.
      const caller = yield* Effect.forkChild(
        Effect.andThen(
          commits.submit(submission(`${run}-a`, Effect.as(Deferred.await(gate), []))),
          commits.submit(submission(`${run}-again`, notAlone))
        ),
        { startImmediately: true }
      )
      const others = yield* Effect.forEach([`${run}-b`, `${run}-c`], (stream) =>
        Effect.forkChild(commits.submit(submission(stream, notAlone)), { startImmediately: true })
      )
      yield* Deferred.succeed(gate, undefined)
      const rows = [yield* Fiber.join(caller), ...(yield* Effect.forEach(others, Fiber.join))]
      assert.deepStrictEqual(
        rows.map((written) => written.length),
        [1, 1, 1]
      )
      assert.strictEqual(new Set(rows.flat().map(({ global_position }) => global_position >> 20n)).size, 1)
    })
  )

  it.effect(
    "with two round trips in flight, a batch goes beside a lone append, and a stream in flight waits its turn",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EventStore.EventStore
        const commits = yield* GroupCommit.make(sql, { inFlight: 2, splitFrom: 4 })
        const run = `two${crypto.randomUUID().slice(0, 8)}`
        const submit = (append: GroupCommit.Append) =>
          Effect.forkChild(commits.submit(append), { startImmediately: true })
        // Two lone appends in flight until their gates open: both started at once.
        const gates = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
        let started = 0
        const held = (gate: Deferred.Deferred<void>) =>
          Effect.andThen(
            Effect.sync(() => started++),
            Effect.as(Deferred.await(gate), [])
          )
        // Each of 4 events: as many as `splitFrom`, so the second may start beside the first.
        const first = yield* submit(submission(`${run}-a`, held(gates[0]!), 4))
        const second = yield* submit(submission(`${run}-b`, held(gates[1]!), 4))
        assert.strictEqual(started, 2)
        // Three more wait: two new streams, and the stream of the second append, still in flight.
        const marker: ReadonlyArray<GroupCommit.Row> = [{ global_position: -1n, version: 99 }]
        const batched = yield* Effect.forEach([`${run}-c`, `${run}-d`], (stream) =>
          submit(submission(stream, notAlone, 2))
        )
        const sameStream = yield* submit(submission(`${run}-b`, Effect.succeed(marker)))
        // The first round trip ends: the next round carries the two new streams while the second is still in flight.
        yield* Deferred.succeed(gates[0]!, undefined)
        assert.deepStrictEqual(yield* Fiber.join(first), [])
        const answers = yield* Effect.forEach(batched, Fiber.join)
        assert.deepStrictEqual(
          answers.map((rows) => rows.map(({ version }) => version)),
          [
            [1, 2],
            [1, 2]
          ]
        )
        const positions = answers.flat().map(({ global_position }) => global_position)
        assert.deepStrictEqual(
          positions,
          [...positions].sort((x, y) => (x < y ? -1 : 1))
        )
        assert.strictEqual(new Set(positions.map((position) => position >> 20n)).size, 1)
        assert.strictEqual(yield* store.streamVersion(`${run}-b`), 0)
        assert.isUndefined(sameStream.pollUnsafe())
        // Only when its stream's round trip ends does the waiting append go (alone, as it is the only one left).
        yield* Deferred.succeed(gates[1]!, undefined)
        assert.deepStrictEqual(yield* Fiber.join(second), [])
        assert.deepStrictEqual(yield* Fiber.join(sameStream), marker)
      })
  )

  it.effect("a round trip starts beside one in flight only once `splitFrom` events wait", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const store = yield* EventStore.EventStore
      const commits = yield* GroupCommit.make(sql, { inFlight: 2, splitFrom: 4 })
      const run = `split${crypto.randomUUID().slice(0, 8)}`
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.forkChild(
        commits.submit(submission(`${run}-first`, Effect.as(Deferred.await(gate), []))),
        { startImmediately: true }
      )
      // Two events wait: too few for a second round trip, so nothing is written while the first is in flight.
      const x = yield* Effect.forkChild(commits.submit(submission(`${run}-x`, notAlone, 2)), { startImmediately: true })
      assert.strictEqual(yield* store.streamVersion(`${run}-x`), 0)
      // Four wait: a round carrying both goes beside the first, which is still in flight.
      const y = yield* Effect.forkChild(commits.submit(submission(`${run}-y`, notAlone, 2)), { startImmediately: true })
      const rows = [yield* Fiber.join(x), yield* Fiber.join(y)]
      assert.isUndefined(first.pollUnsafe())
      assert.deepStrictEqual(
        rows.map((written) => written.map(({ version }) => version)),
        [
          [1, 2],
          [1, 2]
        ]
      )
      assert.strictEqual(new Set(rows.flat().map(({ global_position }) => global_position >> 20n)).size, 1)
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Fiber.join(first), [])
    })
  )

  it.effect("a round that starts beside another carries an even share of the events waiting and in flight", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const commits = yield* GroupCommit.make(sql, { inFlight: 2, splitFrom: 2 })
      const run = `share${crypto.randomUUID().slice(0, 8)}`
      const gates = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      const held = yield* Effect.forEach(gates, (gate, i) =>
        Effect.forkChild(commits.submit(submission(`${run}-held${i}`, Effect.as(Deferred.await(gate), []), 2)), {
          startImmediately: true
        })
      )
      // Both round trips are held: four appends of two events wait.
      const alone: Array<number> = []
      const waiting = yield* Effect.forEach([0, 1, 2, 3], (i) =>
        Effect.forkChild(
          commits.submit(
            submission(
              `${run}-${i}`,
              Effect.sync(() => {
                alone.push(i)
                return []
              }),
              2
            )
          ),
          { startImmediately: true }
        )
      )
      // One ends: with 8 events waiting and 2 in flight, a round carries at most 5, so the first two go together; the
      // next rounds carry at most 3, so the others go one by one (each as a lone append, with its own statement).
      yield* Deferred.succeed(gates[0]!, undefined)
      const answers = yield* Effect.forEach(waiting, Fiber.join)
      assert.deepStrictEqual(
        answers.map((rows) => rows.length),
        [2, 2, 0, 0]
      )
      assert.strictEqual(new Set(answers.flat().map(({ global_position }) => global_position >> 20n)).size, 1)
      assert.deepStrictEqual(alone, [2, 3])
      assert.isUndefined(held[1]!.pollUnsafe())
      yield* Deferred.succeed(gates[1]!, undefined)
      yield* Effect.forEach(held, Fiber.join)
    })
  )

  it.effect(
    "appends waiting when the store's scope closes fail at once with a typed error; a lone one in flight ends as its statement does",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const holderStore = yield* EventStore.EventStore
        const run = `close${crypto.randomUUID().slice(0, 8)}`
        const scope = yield* Scope.make()
        const store = yield* PgEventStore.make().pipe(Scope.provide(scope))

        // A caller's transaction holds an event id without committing: an append of the same id waits on the unique
        // index until that transaction ends, so it stays in flight for as long as the test needs.
        const held = event()
        const holding = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* sql
          .withTransaction(
            holderStore
              .append(`${run}-holder`, [held], ExpectedVersion.noStream)
              .pipe(
                Effect.andThen(Deferred.succeed(holding, undefined)),
                Effect.andThen(Deferred.await(release)),
                Effect.andThen(Effect.fail("roll back" as const))
              )
          )
          .pipe(Effect.exit, Effect.forkChild)
        yield* Deferred.await(holding)

        const appendTo = (name: string, events: ReadonlyArray<ReturnType<typeof event>>) =>
          Effect.forkChild(store.append(`${run}-${name}`, events, ExpectedVersion.noStream), { startImmediately: true })
        const inFlight = yield* appendTo("first", [event(undefined, held.eventId)])
        const blocked = sql<{ n: number }>`
          SELECT count(*)::int4 AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO chronicle_events%'`
        yield* blocked.pipe(
          Effect.repeat({ until: ([row]) => (row?.n ?? 0) > 0, schedule: Schedule.spaced("10 millis") })
        )
        // These find a round trip in flight, so they wait in the queue for the next one.
        const queued = yield* Effect.forEach(
          Array.from({ length: 5 }, (_, i) => i),
          (i) => appendTo(`queued${i}`, [event()])
        )

        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        const outcomes = yield* Effect.forEach(queued, Fiber.await)
        const after = yield* Effect.exit(store.append(`${run}-after`, [event()], ExpectedVersion.noStream))
        for (const outcome of [...outcomes, after]) {
          assert.isTrue(Exit.isFailure(outcome))
          const error = yield* Effect.flip(outcome)
          assert.strictEqual(error._tag, "EventStoreError")
          if (error._tag === "EventStoreError") {
            assert.isTrue(error.retryMayHelp)
            assert.include(error.message, "closed")
          }
        }

        // The lone append in flight runs in its caller's fiber and ends as its statement does: once the holder rolls
        // back, it writes.
        assert.isUndefined(inFlight.pollUnsafe())
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.await(holder)
        assert.strictEqual((yield* Fiber.join(inFlight)).written, 1)
        yield* Fiber.join(closing)
      }),
    { timeout: 30_000 }
  )
})
