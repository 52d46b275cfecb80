/**
 * The stream browser: an HTTP server with one web page (plain HTML, CSS and JS, no build step) that shows why a
 * state is what it is. It lists categories and streams, pages through a stream's timeline newest first, shows the
 * aggregate's state after any version with what changed, tails the global log over server-sent events, shows
 * projections (checkpoint, lag, state, dead letters) and the read horizon, and serves `/metrics` for Prometheus.
 *
 * **Security.** It binds 127.0.0.1 unless told otherwise. Every server has a token (given, or generated and printed
 * in its URL). A request carries it as `Authorization: Bearer <token>` or `?token=`. Binding another host refuses
 * every request without it. Without the token, personal values stay sealed. Writes (retry or discard a dead letter,
 * rebuild a projection) need `allowWrites` and the token.
 *
 * **Gotchas:** stream and category counts come from an index the server keeps in memory, brought up to date from
 * the global log before each search, so the first search over a large log reads all of it once.
 */
import { randomBytes, timingSafeEqual } from "node:crypto"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import {
  type Aggregate,
  AggregateLoader,
  CryptoShredding,
  DeadLetters,
  type Envelope,
  EventStore,
  KeyStore,
  type LogFollower,
  PersonalData,
  type Projection,
  ProjectionRunner,
  StreamName,
  Upcasting
} from "@chronicle/core"
import { NodeHttpServer } from "@effect/platform-node"
import { Array as Arr, Cause, Context, Effect, Layer, Option, Schema, Semaphore, Stream } from "effect"
import { HttpServer, type HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"

/** Who holds the read horizon back (as `PgEventStore.horizonNow` reports it). */
export interface Horizon {
  readonly position: bigint
  readonly holder: Option.Option<{ readonly pid: number; readonly query: string; readonly ageMs: number }>
}

/** A request the API refuses, with its HTTP status and a short message for the page. */
export class Refused extends Schema.TaggedError<Refused>()("Refused", {
  status: Schema.Int,
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/** What the page shows of one projection. */
export interface ProjectionView {
  readonly name: string
  /** The position of the last event it handled. */
  readonly checkpoint: bigint
  /** How far behind the head it is, in `lagUnit`. */
  readonly lag: bigint
  readonly lagUnit: "events" | "positions"
  /** What is known of it: `running`, `standby`, `stopped`, `idle` (no runner holds its lease), `caught up`, `behind`. */
  readonly state: string
  /** Why it stopped, or who runs it. */
  readonly detail?: string
  readonly deadLetters: ReadonlyArray<DeadLetters.DeadLetter>
}

/**
 * How the browser sees and tends projections: `inProcess` builds it for projections of this process, the
 * `chronicle ui` command for Postgres read models. Each operation fails with a `Refused` for the page.
 */
export interface Projections {
  readonly list: Effect.Effect<ReadonlyArray<ProjectionView>, Refused>
  /** Hands the event parked at `position` to the projection again; the letter goes when it is handled. */
  readonly retry: (name: string, position: bigint) => Effect.Effect<void, Refused>
  /** Removes the letter parked at `position`; false when there was none. */
  readonly discard: (name: string, position: bigint) => Effect.Effect<boolean, Refused>
  /** Rebuilds the projection from the start of the log; its new checkpoint. */
  readonly rebuild: (name: string) => Effect.Effect<bigint, Refused>
}

/** What the browser serves and how; every field but the app's parts has a default. */
export interface Options {
  /** The interface to bind; 127.0.0.1 unless set. Any other host requires the token on every request. */
  readonly host?: string
  /** The port; 0 (any free port) unless set. */
  readonly port?: number
  /** The token requests carry; a random one unless set. */
  readonly token?: string
  /** Whether retry, discard and rebuild are allowed (each still needs the token); false unless set. */
  readonly allowWrites?: boolean
  /**
   * The app's aggregates: their states are shown "as of" any version, their events upcast, and their personal values
   * opened with the `KeyStore` in context.
   */
  readonly aggregates?: ReadonlyArray<Aggregate.Any>
  /** Event schemas the app appends outside any aggregate (as in `CryptoShredding.Options`). */
  readonly events?: CryptoShredding.Options["events"]
  /** A text rendering of a category's state (a chess board...), shown above the state. */
  readonly renderers?: Readonly<Record<string, (state: any) => string>>
  /** The app's projections, shown with checkpoint, lag, state and dead letters. */
  readonly projections?: Projections
  /** Reports the read horizon (`PgEventStore.horizonNow`, provided with its client). */
  readonly horizon?: Effect.Effect<Horizon, EventStore.EventStoreError>
}

/** A running browser: where it listens and the token that opens it fully. */
export interface Running {
  readonly url: string
  readonly token: string
  /** The URL with the token: the page opened from it shows personal values and may write. */
  readonly urlWithToken: string
}

/** The running stream browser. */
export class StreamBrowser extends Context.Service<StreamBrowser, Running>()("@chronicle/ui/StreamBrowser") {}

// `page/` sits beside `src/` and `dist/`, so this resolves from the sources and from the build.
const page = readFileSync(new URL("../page/index.html", import.meta.url), "utf8")
const loopback = new Set(["127.0.0.1", "::1", "localhost"])

// Any failure of an operation, as a refusal with `status` and the failure's message.
const refusing =
  (status: number, prefix = "") =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Refused, R> =>
    Effect.catchCause(effect, (cause) => {
      const error = Cause.squash(cause)
      if (error instanceof Refused) return Effect.fail(error)
      const text = error instanceof Error ? error.message : String(error)
      return Effect.fail(new Refused({ status, reason: `${prefix}${text}` }))
    })

/**
 * The projections of this process, for the page: checkpoint and lag from the stores; state from their
 * `handles` (`ProjectionRunner.start`), else "caught up" or "behind"; retry, discard and rebuild run here, on the
 * `EventStore` in context (the app's, with its upcasting and shredding).
 */
export const inProcess = <R>(
  projections: ReadonlyArray<Projection.Projection<any, any, R>>,
  options: { readonly handles?: ReadonlyArray<LogFollower.Handle> } = {}
): Effect.Effect<Projections, never, ProjectionRunner.Requirements<R>> =>
  Effect.gen(function* () {
    const context = yield* Effect.context<ProjectionRunner.Requirements<R>>()
    const named = (name: string) => {
      const found = projections.find((projection) => projection.name === name)
      return found === undefined
        ? Effect.fail(new Refused({ status: 404, reason: `no projection ${name}` }))
        : Effect.succeed(found)
    }
    const letters = (name: string) => DeadLetters.DeadLetters.use((store) => store.list(name))
    const list = Effect.gen(function* () {
      const running = new Map<string, LogFollower.Status>()
      for (const handle of options.handles ?? []) {
        const status = yield* handle.status
        running.set(status.name, status)
      }
      return yield* Effect.forEach(projections, (projection) =>
        Effect.gen(function* () {
          const status = yield* ProjectionRunner.status(projection)
          const handled = running.get(projection.name)
          const view: ProjectionView = {
            name: projection.name,
            checkpoint: status.checkpoint,
            lag: status.lag,
            lagUnit: "positions",
            state: handled?.state ?? (status.lag === 0n ? "caught up" : "behind"),
            ...(handled?.error === undefined ? {} : { detail: handled.error.message }),
            deadLetters: yield* letters(projection.name)
          }
          return view
        })
      )
    })
    const retry = (name: string, position: bigint) =>
      Effect.gen(function* () {
        const projection = yield* named(name)
        if (!(yield* letters(name)).some((letter) => letter.position === position)) {
          return yield* new Refused({ status: 404, reason: `${name} has no dead letter at position ${position}` })
        }
        const store = yield* EventStore.EventStore
        const [event] = yield* Stream.runCollect(
          store.readAll({ after: position - 1n, pageSize: 1 }).pipe(Stream.take(1))
        )
        if (event === undefined || event.position !== position) {
          return yield* new Refused({ status: 404, reason: `no event at position ${position}` })
        }
        const decoded = projection.decode(event)
        if (decoded._tag === "Failure") return yield* new Refused({ status: 409, reason: decoded.failure.message })
        yield* projection.handle(Stream.make(decoded.success)).pipe(refusing(409, "still fails: "))
        yield* DeadLetters.DeadLetters.use((store) => store.discard(name, position))
      })
    const discard = (name: string, position: bigint) =>
      Effect.andThen(
        named(name),
        DeadLetters.DeadLetters.use((store) => store.discard(name, position))
      )
    const rebuild = (name: string) =>
      Effect.flatMap(named(name), (projection) =>
        ProjectionRunner.rebuild(projection).pipe(refusing(500, "rebuild failed: "))
      )
    const here = <A, E>(effect: Effect.Effect<A, E, ProjectionRunner.Requirements<R>>) =>
      effect.pipe(refusing(500), Effect.provideContext(context))
    return {
      list: here(list),
      retry: (name, position) => here(retry(name, position)),
      discard: (name, position) => here(discard(name, position)),
      rebuild: (name) => here(rebuild(name))
    }
  })

/** The version of each stream, and the position of the last event counted. */
interface Index {
  readonly streams: Map<string, number>
  head: bigint
}

// JSON for the page: bigints as strings, Maps as entry lists.
const toJson = (value: unknown): unknown => {
  if (typeof value === "bigint") return value.toString()
  if (value instanceof Map) return [...value].map(([k, v]) => [toJson(k), toJson(v)])
  if (value instanceof Set) return [...value].map(toJson)
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) return value.map(toJson)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]))
  }
  return value
}

// Stored data as the page shows it without a key: each sealed value as `{ $sealed: true }`, the seal left out.
const sealedView = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(sealedView)
  if (typeof value !== "object" || value === null) return value
  if ("$sealed" in value) return { $sealed: true }
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => key !== PersonalData.sealedKey)
      .map(([key, inner]) => [key, sealedView(inner)])
  )
}

const eventJson = (event: Envelope.RecordedEvent) =>
  toJson({
    stream: event.stream,
    version: event.version,
    position: event.position,
    recordedAt: event.recordedAt,
    type: event.type,
    schemaVersion: event.schemaVersion,
    eventId: event.eventId,
    data: event.data,
    metadata: event.metadata
  })

/** The paths (`a.b.0`) at which two JSON values differ. */
export const changedPaths = (before: unknown, after: unknown, path = ""): ReadonlyArray<string> => {
  if (JSON.stringify(before) === JSON.stringify(after)) return []
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null
  if (!isObject(before) || !isObject(after) || Array.isArray(before) !== Array.isArray(after)) return [path]
  const keys = new Set([...Object.keys(before), ...Object.keys(after)])
  return [...keys].flatMap((key) => changedPaths(before[key], after[key], path === "" ? key : `${path}.${key}`))
}

const json = (body: unknown, status = 200) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json" })

const wholeNumber = (name: string, text: string | undefined, fallback: number) => {
  if (text === undefined || text === "") return Effect.succeed(fallback)
  const n = Number(text)
  return Number.isSafeInteger(n) && n >= 0
    ? Effect.succeed(n)
    : Effect.fail(new Refused({ status: 400, reason: `${name} must be a whole number, not ${JSON.stringify(text)}` }))
}

const sameToken = (given: string, token: string) =>
  given.length === token.length && timingSafeEqual(Buffer.from(given), Buffer.from(token))

// A key store that has no keys: every sealed value opens as its redaction marker.
const noKeys = KeyStore.KeyStore.of({
  keysFor: () => Effect.succeed(new Map()),
  find: () => Effect.succeed(new Map()),
  forget: () => Effect.void
})

/**
 * Builds the browser's request handler over the `EventStore` in context (the store as written, without decorators):
 * what the server serves, for tests that call it without a socket.
 */
export const makeHandler = (options: Options & { readonly token: string }) =>
  Effect.gen(function* () {
    const raw = yield* EventStore.EventStore
    const keys = yield* Effect.serviceOption(KeyStore.KeyStore)
    const host = options.host ?? "127.0.0.1"
    const shredding: CryptoShredding.Options = {
      aggregates: options.aggregates ?? [],
      ...(options.events === undefined ? {} : { events: options.events })
    }
    const registry = CryptoShredding.registryOf(shredding)

    // Three views of the log: opened with the key store (the token's), redacted (states without the token), and as
    // stored (events without the token: sealed values shown as sealed).
    const opening = (keyStore: KeyStore.Service) =>
      CryptoShredding.make(raw, shredding).pipe(
        Effect.map((store) => Upcasting.make(store, registry)),
        Effect.provideService(KeyStore.KeyStore, keyStore)
      )
    const redacted = yield* opening(noKeys)
    const opened = Option.isSome(keys) ? yield* opening(keys.value) : undefined

    // Without a key: sealed values as sealed, or as their redaction markers once `forget` recorded the subject.
    const forgotten = (subject: string) =>
      raw.streamVersion(StreamName.make(CryptoShredding.forgottenCategory, subject)).pipe(
        Effect.map((version) => version > 0),
        Effect.catchTag("InvalidStreamName", () => Effect.succeed(false))
      )
    const asSealed = (events: Arr.NonEmptyReadonlyArray<Envelope.RecordedEvent>) =>
      Effect.gen(function* () {
        const subjects = new Map<string, boolean>()
        for (const event of events) {
          const subject = PersonalData.sealedValuesOf(event.data)?.subject
          if (subject !== undefined && !subjects.has(subject)) subjects.set(subject, yield* forgotten(subject))
        }
        return Arr.map(events, (event): unknown => {
          const subject = PersonalData.sealedValuesOf(event.data)?.subject
          const markers =
            subject !== undefined && subjects.get(subject) === true
              ? PersonalData.open(event.data, event.eventId, undefined)
              : undefined
          const data = markers?._tag === "Success" ? markers.success : sealedView(event.data)
          return { ...(eventJson(event) as object), data }
        })
      })
    // Events as the asker may see them: opened with the token (and a key store), else as stored with seals shown.
    const view = <E>(
      personal: boolean,
      read: (store: EventStore.Service) => Stream.Stream<Envelope.RecordedEvent, E>
    ): Stream.Stream<unknown, E | EventStore.EventStoreError> =>
      personal && opened !== undefined
        ? Stream.mapArray(read(opened), (events) => Arr.map(events, eventJson))
        : Stream.mapArrayEffect(read(raw), asSealed)

    // Brought up to date before each answer that needs it: reads only the events appended since the last time.
    const index: Index = { streams: new Map(), head: 0n }
    const indexing = yield* Semaphore.make(1)
    const refresh = indexing.withPermits(1)(
      Stream.runForEachArray(raw.readAll({ after: index.head }), (events) =>
        Effect.sync(() => {
          for (const event of events) {
            index.streams.set(event.stream, event.version)
            index.head = event.position
          }
        })
      )
    )

    const aggregateOf = (stream: string) => {
      const category = StreamName.category(stream)
      return options.aggregates?.find((aggregate) => aggregate.category === category)
    }

    const knownStream = (stream: string) =>
      Effect.gen(function* () {
        const valid = StreamName.validate(stream)
        if (valid._tag === "Failure") return yield* new Refused({ status: 400, reason: valid.failure.message })
        const version = yield* raw.streamVersion(stream)
        if (version === 0) return yield* new Refused({ status: 404, reason: `no stream ${stream}` })
        return version
      })

    const categories = Effect.map(refresh, () => {
      const counts = new Map<string, { streams: number; events: number }>()
      for (const [stream, version] of index.streams) {
        const category = StreamName.category(stream)
        const count = counts.get(category) ?? { streams: 0, events: 0 }
        counts.set(category, { streams: count.streams + 1, events: count.events + version })
      }
      return json(
        [...counts]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([category, count]) => ({ category, ...count, aggregate: aggregateOf(`${category}-x`) !== undefined }))
      )
    })

    const streams = (url: URL) =>
      Effect.gen(function* () {
        yield* refresh
        const prefix = url.searchParams.get("prefix") ?? ""
        const limit = Math.min(200, yield* wholeNumber("limit", url.searchParams.get("limit") ?? undefined, 50))
        const found: Array<{ stream: string; version: number }> = []
        for (const [stream, version] of index.streams) {
          if (stream.startsWith(prefix)) found.push({ stream, version })
        }
        found.sort((a, b) => a.stream.localeCompare(b.stream))
        return json({ streams: found.slice(0, limit), total: found.length })
      })

    const timeline = (stream: string, url: URL, personal: boolean) =>
      Effect.gen(function* () {
        const version = yield* knownStream(stream)
        const before = yield* wholeNumber("before", url.searchParams.get("before") ?? undefined, version + 1)
        const limit = Math.max(
          1,
          Math.min(500, yield* wholeNumber("limit", url.searchParams.get("limit") ?? undefined, 50))
        )
        const events = yield* Stream.runCollect(
          view(personal, (store) =>
            store.readStream(stream, { to: before - 1, direction: "backward", pageSize: limit })
          ).pipe(Stream.take(limit))
        )
        const oldest = (events.at(-1) as { version?: number } | undefined)?.version ?? 1
        return json({
          stream,
          version,
          aggregate: aggregateOf(stream) !== undefined,
          events,
          next: oldest > 1 ? oldest : null
        })
      })

    const stateAt = (stream: string, url: URL, personal: boolean) =>
      Effect.gen(function* () {
        const last = yield* knownStream(stream)
        const text = url.searchParams.get("version") ?? undefined
        const version = yield* wholeNumber("version", text, last)
        if (version > last) {
          return yield* new Refused({ status: 400, reason: `${stream} has ${last} events, not ${version}` })
        }
        const aggregate = aggregateOf(stream)
        if (aggregate === undefined) {
          return yield* new Refused({
            status: 404,
            reason: `no aggregate is registered for category ${StreamName.category(stream)}`
          })
        }
        const id = StreamName.id(stream)
        const render = options.renderers?.[aggregate.category]
        const load = (at: number) =>
          AggregateLoader.loadAsOf(aggregate, id, at).pipe(
            Effect.provideService(EventStore.EventStore, personal && opened !== undefined ? opened : redacted),
            Effect.map((loaded) => ({
              json: toJson(
                aggregate.state === undefined ? loaded.state : Schema.encodeSync(aggregate.state)(loaded.state)
              ),
              rendered: render === undefined ? null : render(loaded.state)
            }))
          )
        const state = yield* load(version)
        const previous = version === 0 ? null : yield* load(version - 1)
        return json({
          stream,
          version,
          last,
          state: state.json,
          rendered: state.rendered,
          previous: previous?.json ?? null,
          changed: changedPaths(previous?.json ?? null, state.json)
        })
      })

    const tail = (personal: boolean) => {
      const encoder = new TextEncoder()
      return Effect.map(raw.head, (head) =>
        HttpServerResponse.stream(
          Stream.concat(
            Stream.make(encoder.encode(`: tail after ${head}\n\n`)),
            view(personal, (store) => store.subscribe({ after: head, pageSize: 200 })).pipe(
              Stream.mapArray((events) => [encoder.encode(`data: ${JSON.stringify(events)}\n\n`)])
            )
          ),
          {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
          }
        )
      )
    }

    const projections = (admin: Projections | undefined) =>
      admin === undefined
        ? Effect.succeed(json({ projections: [], configured: false }))
        : Effect.map(admin.list, (all) => json({ projections: all.map(toJson), configured: true }))

    const letterPosition = (text: string) =>
      /^\d+$/.test(text)
        ? Effect.succeed(BigInt(text))
        : Effect.fail(new Refused({ status: 400, reason: `position must be a whole number, not ${text}` }))

    const deadLetter = (name: string, positionText: string, action: "retry" | "discard") =>
      Effect.gen(function* () {
        const admin = yield* configured
        const position = yield* letterPosition(positionText)
        if (action === "retry") yield* admin.retry(name, position)
        else if (!(yield* admin.discard(name, position))) {
          return yield* new Refused({ status: 404, reason: `${name} has no dead letter at position ${position}` })
        }
        return json({
          projection: name,
          position: position.toString(),
          [action === "retry" ? "retried" : "discarded"]: true
        })
      })

    const configured =
      options.projections === undefined
        ? Effect.fail(new Refused({ status: 404, reason: "no projections are configured" }))
        : Effect.succeed(options.projections)

    const rebuild = (name: string) =>
      Effect.gen(function* () {
        const checkpoint = yield* (yield* configured).rebuild(name)
        return json({ projection: name, checkpoint: checkpoint.toString() })
      })

    const horizon =
      options.horizon === undefined
        ? Effect.succeed(json({ available: false }))
        : Effect.map(options.horizon, (found) =>
            json(
              toJson({
                available: true,
                position: found.position,
                holder: Option.getOrNull(found.holder)
              })
            )
          )

    const metrics = Effect.map(PrometheusMetrics.format(), (text) =>
      HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
    )

    // Who is asking: refused without the token on a non-loopback host; personal and writing only with it.
    const authorise = (request: HttpServerRequest.HttpServerRequest, url: URL) => {
      const header = request.headers.authorization
      const given = header?.startsWith("Bearer ") ? header.slice(7) : (url.searchParams.get("token") ?? undefined)
      if (given !== undefined && !sameToken(given, options.token)) {
        return Effect.fail(new Refused({ status: 401, reason: "wrong token" }))
      }
      if (given === undefined && !loopback.has(host)) {
        return Effect.fail(new Refused({ status: 401, reason: "this server needs its token" }))
      }
      return Effect.succeed({ personal: given !== undefined })
    }

    const writable = (personal: boolean) =>
      options.allowWrites !== true
        ? Effect.fail(new Refused({ status: 403, reason: "read-only: start the browser with --allow-writes" }))
        : personal
          ? Effect.void
          : Effect.fail(new Refused({ status: 401, reason: "writing needs the token" }))

    const route = (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function* () {
        const url = new URL(request.url, "http://browser")
        const path = url.pathname
        if (request.method === "GET" && (path === "/" || path === "/index.html")) {
          if (!loopback.has(host)) yield* authorise(request, url)
          return HttpServerResponse.html(page)
        }
        const { personal } = yield* authorise(request, url)
        const parts = path.split("/").slice(1).map(decodeURIComponent)
        if (request.method === "GET") {
          if (path === "/api/info") {
            return json({
              personal,
              keys: opened !== undefined,
              writes: options.allowWrites === true && personal,
              aggregates: (options.aggregates ?? []).map((aggregate) => aggregate.category),
              head: (yield* raw.head).toString()
            })
          }
          if (path === "/api/categories") return yield* categories
          if (path === "/api/streams") return yield* streams(url)
          if (parts[0] === "api" && parts[1] === "streams" && parts.length === 4 && parts[3] === "events") {
            return yield* timeline(parts[2]!, url, personal)
          }
          if (parts[0] === "api" && parts[1] === "streams" && parts.length === 4 && parts[3] === "state") {
            return yield* stateAt(parts[2]!, url, personal)
          }
          if (path === "/api/tail") return yield* tail(personal)
          if (path === "/api/projections") return yield* projections(options.projections)
          if (path === "/api/horizon") return yield* horizon
          if (path === "/metrics") return yield* metrics
        }
        if (request.method === "POST" && parts[0] === "api" && parts[1] === "projections") {
          if (parts.length === 4 && parts[3] === "rebuild") {
            yield* writable(personal)
            return yield* rebuild(parts[2]!)
          }
          if (parts.length === 6 && parts[3] === "dead-letters" && (parts[5] === "retry" || parts[5] === "discard")) {
            yield* writable(personal)
            return yield* deadLetter(parts[2]!, parts[4]!, parts[5])
          }
        }
        return yield* new Refused({ status: 404, reason: `no such page: ${request.method} ${path}` })
      }).pipe(
        Effect.catchTags({
          Refused: (refused) => Effect.succeed(json({ error: refused.reason }, refused.status)),
          InvalidStreamName: (error) => Effect.succeed(json({ error: error.message }, 400))
        }),
        Effect.catch((error) => Effect.succeed(json({ error: error.message }, 500)))
      )

    return Effect.flatMap(HttpServerRequest.HttpServerRequest, route)
  })

/**
 * Serves the browser on the `EventStore` in context (as written: no upcasting or shredding layer) until the scope
 * closes; the `KeyStore`, when in context, opens personal values for a page with the token.
 */
export const layer = (
  options: Options = {}
): Layer.Layer<StreamBrowser, HttpServerError.ServeError | CryptoShredding.UnsupportedMark, EventStore.EventStore> => {
  const host = options.host ?? "127.0.0.1"
  const token = options.token ?? randomBytes(18).toString("base64url")
  const served = Layer.effect(
    StreamBrowser,
    Effect.gen(function* () {
      const handler = yield* makeHandler({ ...options, token })
      yield* Layer.build(HttpServer.serve()(handler))
      const address = (yield* HttpServer.HttpServer).address
      const port = address._tag === "UnixPathAddress" ? 0 : address.port
      const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}/`
      return { url, token, urlWithToken: `${url}?token=${encodeURIComponent(token)}` }
    })
  )
  return served.pipe(Layer.provide(NodeHttpServer.layer(() => createServer(), { host, port: options.port ?? 0 })))
}
