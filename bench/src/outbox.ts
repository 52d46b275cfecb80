/**
 * The outbox to a local `nats-server -js`: the publication rate of the outbox (read from Postgres, publish, wait for
 * JetStream's acknowledgements, advance the checkpoint) beside `NatsPublisher` alone publishing the same events, held
 * in memory, in the same batches; and the latency from `append` to a JetStream consumer (median and p99) beside
 * publish-to-consumer through JetStream alone. Every repetition publishes into a stream of its own, so JetStream's
 * duplicate window never drops a message. Skipped, with the reason, when `nats-server` is not installed.
 */
import { CheckpointStore, type Envelope, EventStore, ExpectedVersion, Outbox } from "@chronicle/core"
import { NatsConsumer, NatsMessage, NatsPublisher } from "@chronicle/nats"
import { PgCheckpointStore, PgEventStore, PgLease, PgMigrations } from "@chronicle/postgres"
import { NatsServer } from "@chronicle/testing"
import { Console, Effect, Layer, Schedule, Stream } from "effect"
import * as Bench from "./Bench.ts"

const batchSize = 500

const event = (i: number): Envelope.EventData => ({
  eventId: crypto.randomUUID(),
  type: "Ticked",
  schemaVersion: 1,
  data: { n: i },
  metadata: { correlationId: `bench-${i}` }
})

/** The publisher options for JetStream stream `name`, which captures the subjects `name.>`. */
const publishing = (url: string, name: string): NatsPublisher.Options => ({
  servers: url,
  subject: (recorded) => NatsMessage.subject(recorded, name),
  stream: { name, subjects: [`${name}.>`] }
})

/** Starts outbox `name` for one category, publishing into its own JetStream stream; it stops with the scope. */
const startOutbox = (url: string, name: string, category: string) =>
  Layer.build(
    Outbox.layer({ name, categories: [category], batchSize }).pipe(
      Layer.provide(NatsPublisher.layer(publishing(url, name)))
    )
  )

const checkpointReached = (name: string, position: bigint) =>
  CheckpointStore.CheckpointStore.use((checkpoints) => checkpoints.load(name)).pipe(
    Effect.repeat({ schedule: Schedule.spaced("2 millis"), until: (at) => at >= position })
  )

const percentile = (samples: ReadonlyArray<number>, p: number): number => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/** Waits for the next delivery, acknowledges it, and returns the time it arrived. */
const receive = (consumer: NatsConsumer.Service) =>
  Effect.flatMap(consumer.next, (delivery) => Effect.as(delivery.ack, performance.now()))

const run = (context: Bench.Context) =>
  Effect.gen(function* () {
    if (!NatsServer.isInstalled()) {
      yield* Console.log(`  skipped: nats-server is not installed (${NatsServer.installCommand})`)
      return []
    }
    const server = yield* NatsServer.scoped
    const store = yield* EventStore.EventStore
    const count = context.quick ? 5_000 : 50_000
    const reps = context.quick ? 1 : 3

    yield* Effect.forEach(
      Array.from({ length: count / batchSize }, (_, s) => s),
      (s) =>
        store.append(
          `rate-${s}`,
          Array.from({ length: batchSize }, (_, i) => event(s * batchSize + i)),
          ExpectedVersion.noStream
        ),
      { concurrency: 8, discard: true }
    )
    const events = yield* Stream.runCollect(store.readAll({ categories: ["rate"] }))
    const last = events.at(-1)!.position
    let rep = 0
    const rate = yield* Bench.interleave({
      label: "publication",
      measure: Bench.eventsPerSecond,
      reps,
      ours: Effect.scoped(
        Effect.gen(function* () {
          const name = `outbox_${rep++}`
          const started = performance.now()
          yield* startOutbox(server.url, name, "rate")
          yield* checkpointReached(name, last)
          return (count * 1000) / (performance.now() - started)
        })
      ),
      raw: Effect.scoped(
        Effect.gen(function* () {
          const publisher = yield* NatsPublisher.make(publishing(server.url, `raw_${rep++}`))
          const started = performance.now()
          for (let start = 0; start < events.length; start += batchSize) {
            yield* publisher.publish(events.slice(start, start + batchSize))
          }
          return (count * 1000) / (performance.now() - started)
        })
      )
    })

    // Latency: one event at a time, each waited for at the consumer before the next is sent.
    const samples = context.quick ? 200 : 1_000
    const ours: Array<number> = []
    yield* Effect.scoped(
      Effect.gen(function* () {
        yield* startOutbox(server.url, "latency", "latency")
        const warmup = yield* store.append("latency-0", [event(0)], ExpectedVersion.any)
        yield* checkpointReached("latency", warmup.position)
        const consumer = yield* NatsConsumer.make({ servers: server.url, stream: "latency", consumer: "bench" })
        yield* receive(consumer)
        for (let i = 1; i <= samples; i++) {
          const started = performance.now()
          yield* store.append(`latency-${i % 10}`, [event(i)], ExpectedVersion.any)
          ours.push((yield* receive(consumer)) - started)
        }
      })
    )
    const raw: Array<number> = []
    yield* Effect.scoped(
      Effect.gen(function* () {
        const publisher = yield* NatsPublisher.make(publishing(server.url, "latency_raw"))
        yield* publisher.publish([events[0]!])
        const consumer = yield* NatsConsumer.make({ servers: server.url, stream: "latency_raw", consumer: "bench" })
        yield* receive(consumer)
        for (let i = 1; i <= samples; i++) {
          const started = performance.now()
          yield* publisher.publish([events[i]!])
          raw.push((yield* receive(consumer)) - started)
        }
      })
    )

    return [
      Bench.row({
        figure: `outbox publication of ${count.toLocaleString("en-US")} events to NATS JetStream`,
        measure: Bench.eventsPerSecond,
        ours: rate.ours,
        baseline: "NatsPublisher alone, the same events from memory",
        raw: rate.raw,
        ratio: rate.ratio,
        note: "outbox = read from Postgres + publish with 256 acks in flight + checkpoint per batch of 500"
      }),
      Bench.row({
        figure: "append → JetStream consumer latency, median",
        measure: Bench.milliseconds,
        ours: percentile(ours, 50),
        baseline: "publish → consumer through JetStream alone",
        raw: percentile(raw, 50),
        note: "append → consumer includes the append's own commit (fsync on), the outbox's wake-up and its checkpoint"
      }),
      Bench.row({
        figure: "append → JetStream consumer latency, p99",
        measure: Bench.milliseconds,
        ours: percentile(ours, 99),
        baseline: "publish → consumer through JetStream alone",
        raw: percentile(raw, 99)
      })
    ]
  }).pipe(
    Effect.scoped,
    Effect.provide(
      Layer.mergeAll(PgEventStore.layer(), PgCheckpointStore.layer, PgLease.layer()).pipe(
        Layer.provideMerge(PgMigrations.layer),
        Layer.provideMerge(Bench.pgClient(context.databaseUrl))
      )
    )
  )

/** The outbox section. */
export const sections: ReadonlyArray<Bench.Section> = [
  { name: "outbox", title: "Outbox: publication rate and append → consumer latency on NATS JetStream", run }
]
