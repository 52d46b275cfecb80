import {
  CheckpointStore,
  DeadLetters,
  EventCodec,
  EventId,
  EventStore,
  ExpectedVersion,
  Lease,
  LogFollower,
  Outbox,
  Projection,
  ProjectionRunner,
  Publisher
} from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Metric, Ref, Schema, Stream } from "effect"

const Live = Layer.mergeAll(
  EventStore.layerMemory,
  CheckpointStore.layerMemory,
  DeadLetters.layerMemory,
  Lease.layerMemory
)

const event = (type: string, n: number | string) => ({
  eventId: EventId.random(),
  type,
  schemaVersion: 1,
  data: { n },
  metadata: {}
})

const appendMany = (stream: string, events: ReadonlyArray<ReturnType<typeof event>>) =>
  EventStore.EventStore.use((store) => store.append(stream, events, ExpectedVersion.any))

/**
 * A fold of the `n` of `Added` events of category `counter`, by position (so a batch applied twice, as at-least-once
 * delivery allows, counts once); `poison` makes the handler fail on that n, `throwing` makes it throw.
 */
const summing = (
  applied: Ref.Ref<ReadonlyMap<bigint, number>>,
  options: { poison?: number; throwing?: number; onFailure?: Projection.FailurePolicy } = {}
) =>
  Projection.make({
    name: "sum",
    categories: ["counter"],
    decode: Projection.recorded,
    batchSize: 7,
    retries: 1,
    onFailure: options.onFailure ?? "stop",
    reset: Ref.set(applied, new Map()),
    handle: (events) =>
      events.pipe(
        Stream.filter((e) => e.type === "Added"),
        Stream.map((e) => [e.position, (e.data as { n: number }).n] as const),
        Stream.grouped(3),
        Stream.runForEach((group) =>
          group.some(([, n]) => n === options.poison)
            ? Effect.fail(new Error(`cannot add ${options.poison}`))
            : Effect.suspend(() => {
                if (group.some(([, n]) => n === options.throwing)) throw new Error(`threw on ${options.throwing}`)
                return Ref.update(applied, (all) => new Map([...all, ...group]))
              })
        )
      )
  })

const sumOf = (applied: Ref.Ref<ReadonlyMap<bigint, number>>) =>
  Effect.map(Ref.get(applied), (all) => [...all.values()].reduce((a, b) => a + b, 0))

const eventually = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    while (!(yield* check)) yield* Effect.sleep("10 millis")
  }).pipe(Effect.timeout("10 seconds"))

describe("ProjectionRunner", () => {
  it.live("catches up, follows the live log, and ends at the head with no lag", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      for (let i = 1; i <= 30; i++) yield* appendMany(`counter-${i % 4}`, [event("Added", i), event("Noted", 1000)])
      yield* appendMany("other-1", [event("Added", 1000)])
      const runner = yield* ProjectionRunner.start(summing(total))
      yield* eventually(Effect.map(sumOf(total), (t) => t === 465))
      for (let i = 31; i <= 40; i++) yield* appendMany(`counter-${i % 4}`, [event("Added", i)])
      yield* eventually(Effect.map(sumOf(total), (t) => t === 820))
      yield* eventually(Effect.map(runner.status, (s) => s.lag === 0n))
      const status = yield* runner.status
      assert.strictEqual(status.state, "running")
      const head = yield* EventStore.EventStore.use((store) => store.head)
      assert.strictEqual(status.checkpoint, head)
      yield* eventually(
        Effect.map(Metric.value(Metric.withAttributes(LogFollower.lag, { follower: "sum" })), (v) => v.value === 0n)
      )
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.live("lag is the distance to the head while behind, observable before the runner starts", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      for (let i = 1; i <= 5; i++) yield* appendMany(`counter-${i}`, [event("Added", i)])
      const before = yield* ProjectionRunner.status(summing(total))
      assert.strictEqual(before.checkpoint, 0n)
      assert.strictEqual(before.lag, 5n)
      const runner = yield* ProjectionRunner.start(summing(total))
      yield* eventually(Effect.map(runner.status, (s) => s.lag === 0n && s.checkpoint === 5n))
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.live("a poison event under the stop policy stops the projection with an error naming it", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      for (let i = 1; i <= 20; i++) yield* appendMany(`counter-${i}`, [event("Added", i)])
      const runner = yield* ProjectionRunner.start(summing(total, { poison: 12 }))
      const error = yield* runner.await.pipe(Effect.flip, Effect.timeout("10 seconds"))
      assert.deepInclude(error, { _tag: "ProjectionFailed", projection: "sum", stream: "counter-12", version: 1 })
      assert.match(error.message, /counter-12@1.*cannot add 12/)
      // Every event before the poison one is applied exactly once; nothing after it.
      assert.strictEqual(yield* sumOf(total), 66)
      assert.strictEqual((yield* runner.status).state, "stopped")
      assert.strictEqual(yield* CheckpointStore.CheckpointStore.use((c) => c.load("sum")), 11n)
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.live("a poison event under the park policy is parked and the projection goes on", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      for (let i = 1; i <= 20; i++) yield* appendMany(`counter-${i}`, [event("Added", i)])
      const runner = yield* ProjectionRunner.start(summing(total, { poison: 12, onFailure: "park" }))
      yield* eventually(Effect.map(runner.status, (s) => s.checkpoint === 20n))
      assert.strictEqual(yield* sumOf(total), 210 - 12)
      const parked = yield* DeadLetters.DeadLetters.use((d) => d.list("sum"))
      assert.strictEqual(parked.length, 1)
      assert.deepInclude(parked[0], { stream: "counter-12", version: 1, position: 12n, type: "Added" })
      assert.match(parked[0]!.error, /cannot add 12/)
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.live("a handler that throws is a failing event too: parked under the park policy, and the rest goes on", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      for (let i = 1; i <= 20; i++) yield* appendMany(`counter-${i}`, [event("Added", i)])
      const runner = yield* ProjectionRunner.start(summing(total, { throwing: 7, onFailure: "park" }))
      yield* eventually(Effect.map(runner.status, (s) => s.checkpoint === 20n))
      assert.strictEqual(yield* sumOf(total), 210 - 7)
      const parked = yield* DeadLetters.DeadLetters.use((d) => d.list("sum"))
      assert.deepStrictEqual(
        parked.map((p) => [p.stream, p.position]),
        [["counter-7", 7n]]
      )
      assert.match(parked[0]!.error, /threw on 7/)
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.live("an event that does not decode is parked with the decode error's facts", () =>
    Effect.gen(function* () {
      const seen = yield* Ref.make<ReadonlyArray<number>>([])
      for (let i = 1; i <= 4; i++) yield* appendMany(`counter-${i}`, [event("Added", i)])
      yield* appendMany("counter-9", [event("Added", "not a number")])
      yield* appendMany("counter-10", [event("Added", 5)])
      const Added = Schema.TaggedStruct("Added", { n: Schema.Number })
      const decode = Projection.decodeWith(EventCodec.make<typeof Added.Type>(Added))
      const decoding = Projection.make({
        name: "decoding",
        categories: ["counter"],
        onFailure: "park",
        decode,
        handle: (events) => events.pipe(Stream.runForEach((e) => Ref.update(seen, (s) => [...s, e.event.n])))
      })
      const runner = yield* ProjectionRunner.start(decoding)
      yield* eventually(Effect.map(runner.status, (s) => s.checkpoint === 6n))
      assert.deepStrictEqual(yield* Ref.get(seen), [1, 2, 3, 4, 5])
      const [parked] = yield* DeadLetters.DeadLetters.use((d) => d.list("decoding"))
      assert.deepInclude(parked, { stream: "counter-9", version: 1, position: 5n, type: "Added" })
      assert.match(parked!.error, /EventDecodeError: cannot decode Added v1 at counter-9@1 \(position 5\)/)
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.live("a checkpoint store outage restarts the projection; it blames no event", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      for (let i = 1; i <= 5; i++) yield* appendMany(`counter-${i}`, [event("Added", i)])
      const failures = yield* Ref.make(4) // more than a batch's retries and then an event's
      const flaky = Layer.effect(
        CheckpointStore.CheckpointStore,
        Effect.map(CheckpointStore.makeMemory, (memory) => ({
          ...memory,
          advance: (projection: string, from: bigint, to: bigint) =>
            Effect.flatMap(
              Ref.getAndUpdate(failures, (n) => n - 1),
              (left) =>
                left > 0
                  ? Effect.fail(new CheckpointStore.CheckpointError({ projection, cause: new Error("unreachable") }))
                  : memory.advance(projection, from, to)
            )
        }))
      )
      const runner = yield* ProjectionRunner.start(summing(total)).pipe(Effect.provide(flaky))
      yield* Effect.raceFirst(eventually(Effect.map(runner.status, (s) => s.checkpoint === 5n)), runner.await)
      assert.strictEqual(yield* sumOf(total), 15)
      assert.strictEqual((yield* runner.status).state, "running")
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.effect("status in standby fails with CheckpointError when the checkpoint cannot be read", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      const held = yield* Deferred.make<void>()
      yield* Effect.forkScoped(
        Lease.withLease("projection:sum", Effect.andThen(Deferred.succeed(held, undefined), Effect.never))
      )
      yield* Deferred.await(held)
      const unreadable = Layer.effect(
        CheckpointStore.CheckpointStore,
        Effect.map(CheckpointStore.makeMemory, (memory) => ({
          ...memory,
          load: (projection: string) =>
            Effect.fail(new CheckpointStore.CheckpointError({ projection, cause: new Error("unreachable") }))
        }))
      )
      const runner = yield* ProjectionRunner.start(summing(total)).pipe(Effect.provide(unreadable))
      const error = yield* Effect.flip(runner.status)
      assert.strictEqual(error._tag, "CheckpointError")
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.live("a rebuild resets the model and replays to the same state, reporting progress", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      for (let i = 1; i <= 30; i++) yield* appendMany(`counter-${i}`, [event("Added", i)])
      yield* ProjectionRunner.catchUp(summing(total))
      const incremental = yield* sumOf(total)
      yield* Ref.set(total, new Map([[1n, -999]])) // a corrupted model
      const progress: Array<LogFollower.Progress> = []
      yield* ProjectionRunner.rebuild(summing(total), { onProgress: (p) => Effect.sync(() => void progress.push(p)) })
      assert.strictEqual(yield* sumOf(total), incremental)
      assert.strictEqual(progress.at(-1)?.done, 30)
      assert.strictEqual(progress.at(-1)?.total, 30)
      assert.strictEqual(progress.length, 5) // batches of 7
    }).pipe(Effect.provide(Live))
  )

  it.live("a caller catches each failure of a catch-up by its tag", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      for (let i = 1; i <= 3; i++) yield* appendMany(`counter-${i}`, [event("Added", i)])
      const cause = new Error("unreachable")
      const failing = (overrides: {
        readonly store?: Partial<EventStore.Service>
        readonly checkpoints?: Partial<CheckpointStore.Service>
        readonly deadLetters?: Partial<DeadLetters.Service>
      }) =>
        Layer.mergeAll(
          Layer.effect(
            EventStore.EventStore,
            Effect.map(EventStore.EventStore, (store) => ({ ...store, ...overrides.store }))
          ),
          Layer.effect(
            CheckpointStore.CheckpointStore,
            Effect.map(CheckpointStore.makeMemory, (memory) => ({ ...memory, ...overrides.checkpoints }))
          ),
          Layer.effect(
            DeadLetters.DeadLetters,
            Effect.map(DeadLetters.makeMemory, (memory) => ({ ...memory, ...overrides.deadLetters }))
          )
        )
      const caught = (
        projection: Projection.Projection<any, any, any>,
        layer: Layer.Layer<
          EventStore.EventStore | CheckpointStore.CheckpointStore | DeadLetters.DeadLetters,
          never,
          EventStore.EventStore
        >,
        options: ProjectionRunner.Options = {}
      ) =>
        ProjectionRunner.catchUp(projection, options).pipe(
          Effect.as("caught up"),
          Effect.catchTags({
            ProjectionFailed: (error) => Effect.succeed(`${error._tag} ${error.stream}`),
            CheckpointError: (error) => Effect.succeed(error._tag),
            CheckpointMoved: (error) => Effect.succeed(error._tag),
            EventStoreError: (error) => Effect.succeed(error._tag),
            DeadLetterError: (error) => Effect.succeed(error._tag),
            TransactionError: (error) => Effect.succeed(error._tag)
          }),
          Effect.provide(layer)
        )
      const none = failing({})
      assert.strictEqual(yield* caught(summing(total, { poison: 2 }), none), "ProjectionFailed counter-2")
      assert.strictEqual(
        yield* caught(
          summing(total),
          failing({ store: { head: Effect.fail(new EventStore.EventStoreError({ operation: "head", cause })) } })
        ),
        "EventStoreError"
      )
      assert.strictEqual(
        yield* caught(
          summing(total),
          failing({
            checkpoints: {
              load: (projection) => Effect.fail(new CheckpointStore.CheckpointError({ projection, cause }))
            }
          })
        ),
        "CheckpointError"
      )
      assert.strictEqual(
        yield* caught(
          summing(total),
          failing({
            checkpoints: {
              advance: (projection, expected) =>
                Effect.fail(new CheckpointStore.CheckpointMoved({ projection, expected, actual: 99n }))
            }
          })
        ),
        "CheckpointMoved"
      )
      assert.strictEqual(
        yield* caught(
          summing(total, { poison: 2, onFailure: "park" }),
          failing({
            deadLetters: {
              park: (letter) => Effect.fail(new DeadLetters.DeadLetterError({ projection: letter.projection, cause }))
            }
          })
        ),
        "DeadLetterError"
      )
      assert.strictEqual(
        yield* caught(summing(total), none, {
          transaction: () => Effect.fail(new LogFollower.TransactionError({ cause }))
        }),
        "TransactionError"
      )
    }).pipe(Effect.provide(Live))
  )

  it.live("under the retry policy a failing batch is retried until it passes; nothing is parked or skipped", () =>
    Effect.gen(function* () {
      const total = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
      for (let i = 1; i <= 5; i++) yield* appendMany(`counter-${i}`, [event("Added", i)])
      const failures = yield* Ref.make(4) // more than any bounded policy's retries here
      const flaky = summing(total, { onFailure: "retry" })
      const runner = yield* ProjectionRunner.start({
        ...flaky,
        handle: (events) =>
          Effect.flatMap(
            Ref.getAndUpdate(failures, (n) => n - 1),
            (left) => (left > 0 ? Effect.fail(new Error("not yet")) : flaky.handle(events))
          )
      })
      yield* runner.awaitCaughtUp
      assert.strictEqual(yield* sumOf(total), 15)
      assert.deepInclude(yield* runner.status, { state: "running", checkpoint: 5n, lag: 0n, restarts: 0 })
      assert.deepStrictEqual(yield* DeadLetters.DeadLetters.use((d) => d.list("sum")), [])
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.effect(
    "a name no store can hold (empty, NUL, lone surrogate) is refused at start and catch-up, never retried",
    () =>
      Effect.gen(function* () {
        const applied = yield* Ref.make<ReadonlyMap<bigint, number>>(new Map())
        const named = (name: string) => ({ ...summing(applied), name })
        const refusal = (error: LogFollower.InvalidFollowerName) => ({ field: error.field, detail: error.detail })
        assert.deepStrictEqual(refusal(yield* Effect.flip(ProjectionRunner.start(named("")))), {
          field: "name",
          detail: "is empty"
        })
        assert.deepStrictEqual(refusal(yield* Effect.flip(ProjectionRunner.start(named("sum\u0000")))), {
          field: "name",
          detail: "contains a NUL character"
        })
        const surrogate = yield* Effect.flip(ProjectionRunner.catchUp(named("sum"), { checkpoint: "sum-\ud800" }))
        assert.strictEqual(surrogate._tag, "InvalidFollowerName")
        assert.include(surrogate.message, "its checkpoint contains a lone UTF-16 surrogate")
        const lease = yield* Effect.flip(
          LogFollower.start({ ...ProjectionRunner.follower(named("sum")), lease: "lease\u0000" })
        )
        assert.deepStrictEqual(refusal(lease), { field: "lease", detail: "contains a NUL character" })
        const outbox = yield* Effect.flip(
          Outbox.start({ name: "outbox\u0000" }).pipe(Effect.provide(Publisher.layerMemory))
        )
        assert.deepStrictEqual(refusal(outbox), { field: "name", detail: "contains a NUL character" })
      }).pipe(Effect.scoped, Effect.provide(Live))
  )
})
