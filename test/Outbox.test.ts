/**
 * The outbox end to end: events appended to Postgres reach a real `nats-server -js` through the outbox fiber, across
 * a broker outage, a crash between publication and checkpoint, two competing instances, and 10,000 events in order.
 */
import { CheckpointStore, EventId, EventStore, ExpectedVersion, Inbox, Outbox, Publisher } from "@chronicle/core"
import { NatsConsumer, NatsMessage, NatsPublisher } from "@chronicle/nats"
import { PgCheckpointStore, PgEventStore, PgInbox, PgLease, PgMigrations } from "@chronicle/postgres"
import { NatsServer, PgTest } from "@chronicle/testing"
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Ref, Schedule, Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"

/** The NATS server of this file. */
class Nats extends Context.Service<Nats, NatsServer.Server>()("test/Nats") {}

const Live = Layer.mergeAll(
  PgEventStore.layer({ pollInterval: "100 millis" }),
  PgCheckpointStore.layer,
  PgLease.layer({ retryInterval: "50 millis", heartbeatInterval: "200 millis" }),
  PgInbox.layer,
  Layer.effect(Nats, NatsServer.scoped)
).pipe(Layer.provideMerge(PgTest.layerMigrated(PgMigrations.layer)))

/** What one outbox instance's publisher did. */
interface Counts {
  readonly published: Ref.Ref<number>
  readonly failures: Ref.Ref<number>
}

const makeCounts = Effect.all({ published: Ref.make(0), failures: Ref.make(0) })

/**
 * An outbox instance publishing category `name` to the JetStream stream `name` (subjects `name.>`), counting what its
 * publisher does; `checkpoints` replaces the Postgres checkpoint store.
 */
const outbox = (name: string, counts: Counts, checkpoints?: CheckpointStore.Service) => {
  const publisher = Layer.effect(
    Publisher.Publisher,
    Effect.gen(function* () {
      const server = yield* Nats
      const nats = yield* NatsPublisher.make({
        servers: server.url,
        subject: (event) => NatsMessage.subject(event, name),
        stream: { name, subjects: [`${name}.>`] },
        ackTimeout: "1 second"
      })
      return {
        publish: (events) =>
          nats.publish(events).pipe(
            Effect.tap(() => Ref.update(counts.published, (n) => n + events.length)),
            Effect.tapError(() => Ref.update(counts.failures, (n) => n + 1))
          )
      }
    })
  )
  const layer = Outbox.layer({ name, categories: [name], minBackoff: "20 millis", maxBackoff: "500 millis" }).pipe(
    Layer.provide(publisher)
  )
  return checkpoints === undefined
    ? layer
    : layer.pipe(Layer.provide(Layer.succeed(CheckpointStore.CheckpointStore, checkpoints)))
}

/** Starts an outbox instance in a scope of its own, so a test can stop it (a crash, as far as others can tell). */
const start = <E, R>(instance: Layer.Layer<never, E, R>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    yield* Layer.buildWithScope(instance, scope)
    return scope
  })

const append = (stream: string, count: number) =>
  EventStore.EventStore.use((store) =>
    store.append(
      stream,
      Array.from({ length: count }, (_, n) => ({
        eventId: EventId.random(),
        type: "Counted",
        schemaVersion: 1,
        data: { n },
        metadata: { correlationId: `c-${stream}`, causationId: `cause-${n}` }
      })),
      ExpectedVersion.any
    )
  )

/** Waits until `condition` holds, looking every 20 ms, for at most 60 seconds. */
const eventually = <R>(condition: Effect.Effect<boolean, unknown, R>) =>
  Effect.repeat(Effect.orDie(condition), { schedule: Schedule.spaced("20 millis"), until: (held) => held }).pipe(
    Effect.timeout("60 seconds")
  )

/** Waits until outbox `name` has checkpointed everything up to `position`. */
const checkpointed = (name: string, position: bigint) =>
  eventually(
    CheckpointStore.CheckpointStore.use((checkpoints) => checkpoints.load(name)).pipe(
      Effect.map((at) => at >= position)
    )
  )

/**
 * Reads the first `count` messages of the JetStream stream `name` through a fresh durable consumer, and checks that
 * the stream holds no more (so no repeat was stored).
 */
const readAll = (name: string, count: number) =>
  Effect.gen(function* () {
    const server = yield* Nats
    const consumer = yield* NatsConsumer.make({
      servers: server.url,
      stream: name,
      consumer: `reader-${EventId.random()}`
    })
    const deliveries: Array<NatsConsumer.Delivery> = []
    while (deliveries.length < count) {
      const delivery = yield* consumer.next
      yield* delivery.ack
      deliveries.push(delivery)
    }
    const last = deliveries.at(-1)
    assert.deepStrictEqual(
      [last?.sequence, last?.pending],
      [count, 0],
      `stream ${name} holds exactly ${count} messages`
    )
    return deliveries.map((delivery) => delivery.event)
  }).pipe(Effect.scoped, Effect.timeout("60 seconds"))

/** The events of category `name` in the log, in order. */
const logged = (name: string) =>
  EventStore.EventStore.use((store) => Stream.runCollect(store.readAll({ categories: [name] })))

/** The position of the last event in the log (the tests of this file append one after another). */
const head = EventStore.EventStore.use((store) => store.head)

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe.skipIf(NatsServer.skip())("Outbox to NATS JetStream", () => {
  layer(Live, { excludeTestServices: true })("on Postgres", (it) => {
    it.effect("broker down then up: nothing is lost", () =>
      Effect.gen(function* () {
        const name = "outage"
        const server = yield* Nats
        const counts = yield* makeCounts
        yield* start(outbox(name, counts))
        const before = yield* append(`${name}-1`, 50)
        yield* checkpointed(name, before.position)
        yield* Effect.promise(server.pause)
        const during = yield* append(`${name}-1`, 50)
        yield* eventually(Effect.map(Ref.get(counts.failures), (failures) => failures >= 2))
        assert.isTrue((yield* CheckpointStore.CheckpointStore.use((c) => c.load(name))) < during.position)
        yield* Effect.promise(server.resume)
        yield* checkpointed(name, during.position)
        const received = yield* readAll(name, 100)
        assert.deepStrictEqual(
          received.map((event) => event.eventId),
          (yield* logged(name)).map((event) => event.eventId)
        )
        assert.deepStrictEqual(received[7]?.metadata, { correlationId: "c-outage-1", causationId: "cause-7" })
      })
    )

    it.effect("a crash between publication and checkpoint: JetStream and the inbox drop the repeats", () =>
      Effect.gen(function* () {
        const name = "crash"
        const checkpoints = yield* CheckpointStore.CheckpointStore
        // This instance publishes and then dies before every checkpoint write.
        const crashing = yield* makeCounts
        const crashed = yield* start(outbox(name, crashing, { ...checkpoints, advance: () => Effect.void }))
        const last = yield* append(`${name}-1`, 40)
        yield* eventually(Effect.map(Ref.get(crashing.published), (n) => n >= 40))
        yield* Scope.close(crashed, Exit.void)
        assert.strictEqual(yield* checkpoints.load(name), 0n)

        const restarted = yield* makeCounts
        yield* start(outbox(name, restarted))
        yield* checkpointed(name, last.position)
        assert.strictEqual(yield* Ref.get(restarted.published), 40, "the restarted instance publishes everything again")
        yield* readAll(name, 40) // JetStream dropped every repeat by its message id

        // A consumer that handles each event through the inbox and crashes before acking its first delivery.
        const sql = yield* SqlClient.SqlClient
        const inbox = yield* Inbox.Inbox
        yield* sql`CREATE TABLE crash_received (event_id uuid PRIMARY KEY, stream text, version int)`
        const server = yield* Nats
        const consumer = yield* NatsConsumer.make({ servers: server.url, stream: name, consumer: "billing" })
        const outcomes = { handled: 0, ignored: 0, acked: 0 }
        while (outcomes.acked < 40) {
          const { event, deliveryCount, ack, nak } = yield* consumer.next
          const outcome = yield* inbox.handle(
            "billing",
            event.eventId,
            sql`INSERT INTO crash_received VALUES (${event.eventId}::uuid, ${event.stream}, ${event.version})`
          )
          outcomes[outcome._tag === "Some" ? "handled" : "ignored"]++
          if (deliveryCount === 1) yield* nak
          else {
            yield* ack
            outcomes.acked++
          }
        }
        assert.deepStrictEqual(outcomes, { handled: 40, ignored: 40, acked: 40 })
        const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM crash_received`
        assert.strictEqual(row?.n, 40)
      })
    )

    it.effect("two instances: one publishes, the other takes over when it stops, nothing is published twice", () =>
      Effect.gen(function* () {
        const name = "pair"
        const first = yield* makeCounts
        const second = yield* makeCounts
        const firstScope = yield* start(outbox(name, first))
        const warmup = yield* append(`${name}-0`, 10)
        yield* checkpointed(name, warmup.position)
        yield* start(outbox(name, second))
        yield* Effect.forEach(range(8), (stream) => Effect.forEach(range(10), () => append(`${name}-${stream}`, 5)), {
          concurrency: 8
        })
        yield* checkpointed(name, yield* head)
        assert.deepStrictEqual([yield* Ref.get(first.published), yield* Ref.get(second.published)], [410, 0])

        yield* Scope.close(firstScope, Exit.void)
        const after = yield* append(`${name}-9`, 50)
        yield* checkpointed(name, after.position)
        assert.isAtLeast(yield* Ref.get(second.published), 50)
        const received = yield* readAll(name, 460)
        assert.deepStrictEqual(
          received.map((event) => event.eventId),
          (yield* logged(name)).map((event) => event.eventId)
        )
      })
    )

    it.effect("10,000 events from 20 concurrent streams reach the consumer in order within each stream", () =>
      Effect.gen(function* () {
        const name = "bulk"
        yield* start(outbox(name, yield* makeCounts))
        yield* Effect.forEach(range(20), (stream) => Effect.forEach(range(10), () => append(`${name}-${stream}`, 50)), {
          concurrency: 20
        })
        const received = yield* readAll(name, 10_000)
        const versions = new Map<string, Array<number>>()
        for (const event of received) versions.set(event.stream, [...(versions.get(event.stream) ?? []), event.version])
        assert.strictEqual(versions.size, 20)
        for (const [stream, seen] of versions) {
          assert.deepStrictEqual(
            seen,
            range(500).map((i) => i + 1),
            `${stream} arrived out of order`
          )
        }
        assert.strictEqual(new Set(received.map((event) => event.eventId)).size, 10_000)
      })
    )
  })
})
