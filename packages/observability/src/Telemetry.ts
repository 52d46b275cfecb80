/**
 * Exports Chronicle's spans, metrics and logs in one layer: OTLP over HTTP (JSON) to a collector, and a Prometheus
 * scrape endpoint serving `Metrics` in the text format. Both use Effect's own exporters (`effect/observability`), no
 * OpenTelemetry SDK. Provide it once at the edge of the app:
 *
 * ```ts
 * const TelemetryLive = Telemetry.layer({
 *   serviceName: "cart",
 *   otlp: { url: "http://127.0.0.1:4318" },
 *   prometheus: { port: 9464 }
 * })
 * ```
 *
 * **Gotchas**: OTLP data is sent in batches (every 5 seconds by default, and when the layer's scope closes), so a
 * crash loses the last interval. The Prometheus endpoint serves the metrics of the registry it runs in: the process's
 * default one unless the app provides its own `MetricRegistry`.
 */

import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { type Duration, Layer, type LogLevel, Tracer } from "effect"
import { FetchHttpClient, type Headers, HttpRouter, type HttpServerError } from "effect/http"
import { Otlp, OtlpExporter, PrometheusMetrics } from "effect/observability"

/** Where the OTLP/HTTP collector listens and how often to send. */
export interface OtlpOptions {
  /** The collector's base URL, such as `"http://127.0.0.1:4318"`; data goes to `/v1/traces`, `/v1/metrics`, `/v1/logs`. */
  readonly url: string
  /** Headers sent with every request (an API key...). */
  readonly headers?: Headers.Input
  /** How often buffered spans, metrics and logs are sent; 5 seconds unless set. */
  readonly exportInterval?: Duration.Input
}

/** Where the Prometheus endpoint listens. */
export interface PrometheusOptions {
  /** The TCP port, such as 9464 (the port OpenTelemetry reserves for Prometheus exporters). */
  readonly port: number
  /** The interface to bind; `"127.0.0.1"` unless set. */
  readonly host?: string
  /** The path of the endpoint; `"/metrics"` unless set. */
  readonly path?: HttpRouter.PathInput
}

/** What to export and where; without `otlp` or `prometheus`, that exporter is not started. */
export interface Options {
  /** The service name every span, metric and log is reported under (`service.name`). */
  readonly serviceName: string
  /** The service's version (`service.version`). */
  readonly serviceVersion?: string
  readonly otlp?: OtlpOptions
  readonly prometheus?: PrometheusOptions
  /**
   * The lowest level of span exported (`Tracer.MinimumTraceLevel`); every span unless set. `"Info"` leaves out the
   * `EventStore.append` spans (level Debug), the hot path's largest tracing cost, and keeps the commands' spans.
   */
  readonly spanLevel?: LogLevel.LogLevel
}

/**
 * The OTLP exporter alone: traces, metrics and logs to a collector over HTTP, as JSON. Its `Flusher` sends what is
 * buffered at once (before a short-lived process exits).
 */
export const layerOtlp = (
  options: OtlpOptions & { readonly serviceName: string; readonly serviceVersion?: string }
): Layer.Layer<OtlpExporter.Flusher> =>
  Otlp.layerJson({
    baseUrl: options.url,
    resource: { serviceName: options.serviceName, serviceVersion: options.serviceVersion },
    headers: options.headers,
    loggerMergeWithExisting: true,
    ...(options.exportInterval === undefined
      ? {}
      : {
          tracerExportInterval: options.exportInterval,
          metricsExportInterval: options.exportInterval,
          loggerExportInterval: options.exportInterval
        })
  }).pipe(Layer.provide(FetchHttpClient.layer))

/** The Prometheus endpoint alone: an HTTP server answering `GET /metrics` with the metrics in the text format. */
export const layerPrometheus = (options: PrometheusOptions): Layer.Layer<never, HttpServerError.ServeError> =>
  HttpRouter.serve(PrometheusMetrics.layerHttp({ path: options.path ?? "/metrics" }), {
    disableLogger: true,
    disableListenLog: true
  }).pipe(Layer.provide(NodeHttpServer.layer(createServer, { port: options.port, host: options.host ?? "127.0.0.1" })))

/**
 * Exports spans, metrics and logs over OTLP and serves the metrics to Prometheus, as `options` asks. Its `Flusher`
 * sends buffered OTLP data at once; it does nothing without `otlp`.
 */
export const layer = (options: Options): Layer.Layer<OtlpExporter.Flusher, HttpServerError.ServeError> =>
  Layer.mergeAll(
    options.otlp === undefined ? OtlpExporter.layerFlusher : layerOtlp({ ...options, ...options.otlp }),
    options.prometheus === undefined ? Layer.empty : layerPrometheus(options.prometheus),
    options.spanLevel === undefined ? Layer.empty : Layer.succeed(Tracer.MinimumTraceLevel, options.spanLevel)
  )
