import { CheckpointStore, EventId, EventStore, ExpectedVersion, Lease, Outbox, Publisher } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Ref, Schedule, Scope, Stream } from "effect"

const event = (n: number) => ({
  eventId: EventId.random(),
  type: "Counted",
  schemaVersion: 1,
  data: { n },
  metadata: {}
})

const append = (stream: string, count: number) =>
  EventStore.EventStore.use((store) =>
    store.append(
      stream,
      Array.from({ length: count }, (_, n) => event(n)),
      ExpectedVersion.any
    )
  )

/** Waits until `condition` holds, looking every 10 ms, for at most 10 seconds. */
const eventually = <R>(condition: Effect.Effect<boolean, never, R>) =>
  Effect.repeat(condition, { schedule: Schedule.spaced("10 millis"), until: (held) => held }).pipe(
    Effect.timeout("10 seconds")
  )

/** How many publications failed. */
class Failures extends Context.Service<Failures, Ref.Ref<number>>()("test/Failures") {}

/** The memory publisher, counting its failures. */
const CountingPublisher = Layer.effect(
  Publisher.Publisher,
  Effect.gen(function* () {
    const memory = yield* Publisher.MemoryPublisher
    const failures = yield* Failures
    return {
      publish: (events) => memory.publish(events).pipe(Effect.tapError(() => Ref.update(failures, (n) => n + 1)))
    }
  })
)

const Live = Layer.mergeAll(
  EventStore.layerMemory,
  CheckpointStore.layerMemory,
  Lease.layerMemory,
  CountingPublisher
).pipe(
  Layer.provideMerge(Layer.effect(Publisher.MemoryPublisher, Publisher.makeMemory)),
  Layer.provideMerge(Layer.effect(Failures, Ref.make(0)))
)

const options = { batchSize: 7, minBackoff: "5 millis", maxBackoff: "20 millis" } as const

const published = Effect.flatMap(Publisher.MemoryPublisher, (memory) => memory.published)
const publishedCount = (n: number) => Effect.map(published, (events) => events.length === n)

const checkpointAt = (position: bigint) =>
  Effect.flatMap(CheckpointStore.CheckpointStore, (checkpoints) =>
    Effect.map(Effect.orDie(checkpoints.load("outbox")), (saved) => saved === position)
  )

describe("Outbox", () => {
  it.live("publishes every event once, in log order, and advances its checkpoint to the head", () =>
    Effect.gen(function* () {
      for (let round = 0; round < 10; round++) {
        for (const stream of ["a-1", "b-2", "c-3"]) yield* append(stream, 5)
      }
      yield* Layer.build(Outbox.layer(options))
      yield* eventually(publishedCount(150))
      const store = yield* EventStore.EventStore
      const log = yield* Stream.runCollect(store.readAll())
      assert.deepStrictEqual(
        (yield* published).map((e) => e.eventId),
        log.map((e) => e.eventId)
      )
      yield* eventually(checkpointAt(yield* store.head))
    }).pipe(Effect.provide(Live))
  )

  it.live("while the publisher is down it backs off, keeps its checkpoint, then publishes everything", () =>
    Effect.gen(function* () {
      const memory = yield* Publisher.MemoryPublisher
      yield* memory.setDown(true)
      yield* Layer.build(Outbox.layer(options))
      yield* append("a-1", 20)
      yield* eventually(Effect.map(Effect.flatMap(Failures, Ref.get<number>), (n) => n >= 3))
      assert.strictEqual((yield* published).length, 0)
      assert.isTrue(yield* checkpointAt(0n))
      yield* memory.setDown(false)
      yield* eventually(publishedCount(20))
      yield* eventually(checkpointAt(yield* EventStore.EventStore.use((store) => store.head)))
    }).pipe(Effect.provide(Live))
  )

  it.live("two instances under one lease publish each event once; the second takes over when the first stops", () =>
    Effect.gen(function* () {
      const first = yield* Scope.make()
      yield* Layer.buildWithScope(Outbox.layer(options), first)
      yield* append("a-1", 30)
      yield* eventually(publishedCount(30))
      yield* Layer.build(Outbox.layer(options))
      yield* append("b-1", 30)
      yield* eventually(publishedCount(60))
      yield* Scope.close(first, Exit.void)
      yield* append("c-1", 30)
      yield* eventually(publishedCount(90))
      assert.strictEqual(yield* Effect.flatMap(Publisher.MemoryPublisher, (memory) => memory.duplicates), 0)
    }).pipe(Effect.provide(Live))
  )

  it.live("shows its status and lag like a projection, and awaitCaughtUp waits for the head of the log", () =>
    Effect.gen(function* () {
      yield* append("a-1", 20)
      const outbox = yield* Outbox.start(options)
      yield* outbox.awaitCaughtUp
      assert.strictEqual((yield* published).length, 20)
      const head = yield* EventStore.EventStore.use((store) => store.head)
      assert.deepInclude(yield* outbox.status, { name: "outbox", state: "running", checkpoint: head, lag: 0n })
      yield* append("b-1", 5)
      yield* outbox.awaitCaughtUp
      assert.strictEqual((yield* published).length, 25)
    }).pipe(Effect.scoped, Effect.provide(Live))
  )

  it.live("closing its scope stops the outbox and frees its lease", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Outbox.layer(options), scope)
      yield* append("a-1", 3)
      yield* eventually(publishedCount(3))
      yield* Scope.close(scope, Exit.void)
      yield* Effect.scoped(Lease.Lease.use((leases) => leases.acquire("outbox"))).pipe(Effect.timeout("5 seconds"))
    }).pipe(Effect.provide(Live))
  )
})
