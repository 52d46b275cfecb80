/**
 * The cost of observability on the append hot path: appends of one event to new streams at concurrency 8 with
 * tracing and metrics on (the instrumented store, spans exported over OTLP to a collector in this process, metrics
 * recorded) beside the same appends with them off (the bare store, Effect's tracer disabled so the SQL client makes
 * no spans either), on the same pool, interleaved. The design asks for at least 0.95. A second row isolates the CPU
 * cost of a span and the metric updates: the same comparison on the in-memory store, where nothing else costs time,
 * with the time they add per append in microseconds.
 */
import { createServer } from "node:http"
import { EventStore, ExpectedVersion, Instrumentation } from "@chronicle/core"
import { Telemetry } from "@chronicle/observability"
import { Effect, Layer } from "effect"
import * as Bench from "./Bench.ts"
import { events, newStream, setup, sizes } from "./eventStore.ts"

/** An OTLP/HTTP collector that accepts everything and keeps nothing, listening on a free port until the scope ends. */
const collector = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ url: string; close: () => void }>((resolve) => {
        const server = createServer((request, response) => {
          request.resume().on("end", () => response.writeHead(200).end("{}"))
        })
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          const port = typeof address === "object" && address !== null ? address.port : 0
          resolve({ url: `http://127.0.0.1:${port}`, close: () => server.close() })
        })
      })
  ),
  (server) => Effect.sync(server.close)
)

const appendOn: Bench.Section = {
  name: "observability.append",
  title: "Observability: appends with tracing and metrics on beside the same appends with them off",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { reps, seconds } = sizes(quick)
      const { store } = yield* setup
      const instrumented = Instrumentation.eventStore(store, { system: "postgresql", collection: "chronicle_events" })
      const { url } = yield* collector
      const telemetry = yield* Layer.build(
        Telemetry.layer({ serviceName: "chronicle-bench", otlp: { url, exportInterval: "1 second" } })
      )
      const on = Bench.throughput(8, seconds, () =>
        Effect.as(instrumented.append(newStream("on"), events(1), ExpectedVersion.noStream), 1)
      ).pipe(Effect.provideContext(telemetry))
      const off = Bench.throughput(8, seconds, () =>
        Effect.as(store.append(newStream("off"), events(1), ExpectedVersion.noStream), 1)
      ).pipe(Effect.withTracerEnabled(false))
      // Warm-up: opens the pool's connections and prepares the statements on them.
      yield* on
      yield* off
      const result = yield* Bench.interleave({
        label: "observability on/off, concurrency 8",
        measure: Bench.eventsPerSecond,
        reps,
        ours: on,
        raw: off
      })
      // The same with `spanLevel: "Info"`: the append spans are made but not exported (what an app exporting only its
      // commands' spans pays), with the metrics.
      const infoTelemetry = yield* Layer.build(
        Telemetry.layer({
          serviceName: "chronicle-bench",
          otlp: { url, exportInterval: "1 second" },
          spanLevel: "Info"
        })
      )
      const info = Bench.throughput(8, seconds, () =>
        Effect.as(instrumented.append(newStream("info"), events(1), ExpectedVersion.noStream), 1)
      ).pipe(Effect.provideContext(infoTelemetry))
      yield* info
      const infoResult = yield* Bench.interleave({
        label: "observability spanLevel Info/off, concurrency 8",
        measure: Bench.eventsPerSecond,
        reps,
        ours: info,
        raw: off
      })
      const memory = yield* EventStore.makeMemory
      const memoryInstrumented = Instrumentation.eventStore(memory)
      const memoryOn = Bench.throughput(8, seconds, () =>
        Effect.as(memoryInstrumented.append(newStream("on"), events(1), ExpectedVersion.noStream), 1)
      ).pipe(Effect.provideContext(telemetry))
      const memoryOff = Bench.throughput(8, seconds, () =>
        Effect.as(memory.append(newStream("off"), events(1), ExpectedVersion.noStream), 1)
      ).pipe(Effect.withTracerEnabled(false))
      yield* memoryOn
      yield* memoryOff
      const inMemory = yield* Bench.interleave({
        label: "observability on/off, in memory, concurrency 8",
        measure: Bench.eventsPerSecond,
        reps,
        ours: memoryOn,
        raw: memoryOff
      })
      const microseconds = (1 / inMemory.ours - 1 / inMemory.raw) * 1e6
      return [
        Bench.row({
          figure: "append 1 event to a new stream, concurrency 8, tracing (OTLP) and metrics on",
          measure: Bench.eventsPerSecond,
          ...result,
          baseline: "the same appends with tracing and metrics off",
          target: 0.95
        }),
        Bench.row({
          figure:
            "append 1 event to a new stream, concurrency 8, metrics on, tracing with spanLevel Info (no append spans exported)",
          measure: Bench.eventsPerSecond,
          ...infoResult,
          baseline: "the same appends with tracing and metrics off"
        }),
        Bench.row({
          figure: "append 1 event to a new stream in memory, concurrency 8, tracing (OTLP) and metrics on",
          measure: Bench.eventsPerSecond,
          ...inMemory,
          baseline: "the same in-memory appends with tracing and metrics off",
          note: `in memory, tracing and metrics add ${microseconds.toFixed(1)} µs of wall time per append at concurrency 8`
        })
      ]
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}

/** The observability section. */
export const sections: ReadonlyArray<Bench.Section> = [appendOn]
