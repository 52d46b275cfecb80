import { readFileSync } from "node:fs"
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http"
import { EventId, EventStore, ExpectedVersion, Metrics } from "@chronicle/core"
import { Telemetry } from "@chronicle/observability"
import { FreePort } from "@chronicle/postgres/embedded"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { OtlpExporter } from "effect/observability"

/** An OTLP/HTTP collector in this process: it keeps the JSON body of every request, by path. */
const collector = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ url: string; received: Map<string, Array<any>>; close: () => void }>((resolve) => {
        const received = new Map<string, Array<any>>()
        const server = createHttpServer((request: IncomingMessage, response: ServerResponse) => {
          const chunks: Array<Buffer> = []
          request.on("data", (chunk: Buffer) => chunks.push(chunk))
          request.on("end", () => {
            const path = request.url ?? ""
            received.set(path, [...(received.get(path) ?? []), JSON.parse(Buffer.concat(chunks).toString("utf8"))])
            response.writeHead(200, { "content-type": "application/json" }).end("{}")
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          const port = typeof address === "object" && address !== null ? address.port : 0
          resolve({ url: `http://127.0.0.1:${port}`, received, close: () => server.close() })
        })
      })
  ),
  (server) => Effect.sync(server.close)
)

const event = () => ({ eventId: EventId.random(), type: "ItemAdded", schemaVersion: 1, data: {}, metadata: {} })

const appendSome = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  yield* store.append("cart-1", [event(), event()], ExpectedVersion.noStream)
  yield* Effect.logInfo("appended")
}).pipe(Effect.provide(EventStore.layerMemory))

describe("Telemetry", () => {
  it.live("with spanLevel Info, a command's span is exported and its appends' spans are not", () =>
    Effect.gen(function* () {
      const { url, received } = yield* collector
      yield* Effect.gen(function* () {
        yield* appendSome.pipe(Effect.withSpan("Command"))
        yield* (yield* OtlpExporter.Flusher).flush
      }).pipe(
        Effect.provide(Telemetry.layer({ serviceName: "cart-test", otlp: { url }, spanLevel: "Info" })),
        Effect.provideService(Metric.MetricRegistry, new Map())
      )
      const names = (received.get("/v1/traces") ?? []).flatMap((body) =>
        body.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans.map((span: any) => span.name)))
      )
      assert.deepStrictEqual(names, ["Command"])
    })
  )

  it.live("sends spans, metrics and logs to an OTLP/HTTP collector", () =>
    Effect.gen(function* () {
      const { url, received } = yield* collector
      yield* Effect.gen(function* () {
        yield* appendSome
        yield* (yield* OtlpExporter.Flusher).flush
      }).pipe(
        Effect.provide(Telemetry.layer({ serviceName: "cart-test", otlp: { url } })),
        Effect.provideService(Metric.MetricRegistry, new Map())
      )

      const spans = (received.get("/v1/traces") ?? []).flatMap((body) =>
        body.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans))
      )
      const append = spans.find((span: any) => span.name === "EventStore.append")
      assert.isDefined(append, "the append's span arrived")
      const attributes = Object.fromEntries(
        append.attributes.map((a: any) => [a.key, a.value.stringValue ?? Number(a.value.intValue)])
      )
      assert.strictEqual(attributes["chronicle.stream"], "cart-1")
      assert.strictEqual(attributes["chronicle.event_count"], 2)
      const service = received.get("/v1/traces")![0].resourceSpans[0].resource.attributes
      assert.deepInclude(service, { key: "service.name", value: { stringValue: "cart-test" } })

      const metrics = (received.get("/v1/metrics") ?? []).flatMap((body) =>
        body.resourceMetrics.flatMap((r: any) => r.scopeMetrics.flatMap((s: any) => s.metrics))
      )
      const names = metrics.map((metric: any) => metric.name)
      assert.includeMembers(names, ["chronicle_events_appended_total", "chronicle_append_duration_seconds"])
      const appended = metrics.find((metric: any) => metric.name === "chronicle_events_appended_total")
      const point = appended.sum.dataPoints.find((p: any) =>
        p.attributes.some((a: any) => a.key === "category" && a.value.stringValue === "cart")
      )
      assert.strictEqual(Number(point.asInt ?? point.asDouble), 2)

      const logs = (received.get("/v1/logs") ?? []).flatMap((body) =>
        body.resourceLogs.flatMap((r: any) => r.scopeLogs.flatMap((s: any) => s.logRecords))
      )
      assert.isTrue(
        logs.some((log: any) => JSON.stringify(log.body).includes("appended")),
        "the log line arrived"
      )
    })
  )

  it.live("serves the metrics to Prometheus in the text format", () =>
    Effect.gen(function* () {
      const port = yield* FreePort.pick
      const text = yield* Effect.gen(function* () {
        yield* appendSome
        return yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))
      }).pipe(
        Effect.provide(Telemetry.layer({ serviceName: "cart-test", prometheus: { port } })),
        Effect.provideService(Metric.MetricRegistry, new Map())
      )
      // Every line is a comment or `name{labels} value`, as the text format says.
      const sample =
        /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? [-+0-9.eE]+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (NaN|[+-]Inf)$/
      const samples = new Map<string, number>()
      for (const line of text.trimEnd().split("\n")) {
        if (line.startsWith("#")) continue
        assert.match(line, sample)
        samples.set(line.slice(0, line.lastIndexOf(" ")), Number(line.slice(line.lastIndexOf(" ") + 1)))
      }
      assert.strictEqual(samples.get('chronicle_events_appended_total{category="cart"}'), 2)
      assert.strictEqual(samples.get('chronicle_append_duration_seconds_count{category="cart"}'), 1)
      assert.include(text, "# TYPE chronicle_append_duration_seconds histogram")
    })
  )

  it("the Grafana dashboard charts every metric Chronicle defines, and no other", () => {
    const dashboard = JSON.parse(readFileSync(new URL("../../../docs/grafana/chronicle.json", import.meta.url), "utf8"))
    const queried = new Set<string>()
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        for (const [name] of String(target.expr).matchAll(/chronicle_[a-z_]+/g)) {
          queried.add(name.replace(/_(bucket|sum|count)$/, ""))
        }
      }
    }
    const defined = Object.values(Metrics).flatMap((value) => (Metric.isMetric(value) ? [value.id] : []))
    assert.sameMembers([...queried], defined)
  })
})
