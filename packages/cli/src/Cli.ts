/**
 * The `chronicle` command: operate a Chronicle store on Postgres from a shell. It reads the database from
 * `--database-url` or `DATABASE_URL`, and what is specific to one application (aggregates, read models, key store)
 * from its config module (see `AppConfig`). Every command has `--help` with an example, prints text for people or
 * one JSON document with `--json`, shows a progress bar on long jobs (plain lines when standard output is not a
 * terminal), and exits 0 on success, 1 on failure and 2 on bad usage, with one line saying why (the whole cause
 * with `--verbose`). Ctrl-C stops a long job cleanly: a rebuild leaves the live read model as it was, an export and
 * the event upgrade keep what they committed and go on from there when run again.
 */
import {
  type Aggregate,
  type CheckpointStore,
  CryptoShredding,
  DeadLetters,
  Decider,
  type Envelope,
  EventStore,
  type KeyStore,
  StreamName
} from "@chronicle/core"
import {
  PgDeadLetters,
  PgEventStore,
  PgEventUpgrade,
  PgKeyStore,
  PgMigrations,
  PgProjection
} from "@chronicle/postgres"
import { StreamBrowser } from "@chronicle/ui"
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Config, Console, Context, Effect, Exit, Layer, Logger, Option, Result, Schema, Stream } from "effect"
import { Argument, CliOutput, Command, Flag, GlobalFlag, Prompt, TerminalCapabilities } from "effect/cli"
import { SqlClient } from "effect/sql"
import * as AppConfig from "./AppConfig.ts"
import * as Export from "./Export.ts"
import * as Failure from "./Failure.ts"
import * as Database from "./internal/Database.ts"
import { emit, table, time, toJson } from "./internal/Output.ts"
import * as Progress from "./Progress.ts"

/** The version `--version` prints. */
export const version = "0.1.0"

// ── Global flags ── accepted anywhere on the command line.

/** `--database-url URL`, else `DATABASE_URL`. */
export const DatabaseUrl = GlobalFlag.Setting("database-url")({
  flag: Flag.String("database-url").pipe(
    Flag.withDescription("Postgres connection URL (default: $DATABASE_URL)"),
    Flag.withFallbackConfig(Config.String("DATABASE_URL")),
    Flag.optional
  )
})
/** `--config FILE`: the app's config module. */
export const ConfigFile = GlobalFlag.Setting("config")({
  flag: Flag.String("config").pipe(
    Flag.withDescription(`The app's config module (default: ./${AppConfig.defaultFileNames[0]} if present)`),
    Flag.optional
  )
})
/** `--json`: one JSON document on standard output instead of text, and no progress. */
export const Json = GlobalFlag.Setting("json")({
  flag: Flag.Boolean("json").pipe(
    Flag.withDescription("Print JSON for scripts instead of text"),
    Flag.withDefault(false)
  )
})
/** `--verbose`: the whole cause of a failure, with stack traces. */
export const Verbose = GlobalFlag.Setting("verbose")({
  flag: Flag.Boolean("verbose").pipe(
    Flag.withDescription("Print the whole cause of a failure"),
    Flag.withDefault(false)
  )
})

// ── Plumbing shared by the commands ──

/** The database URL, or a usage error saying how to give one. */
const databaseUrl = Effect.flatMap(DatabaseUrl, (url) =>
  Option.match(url, {
    onNone: () =>
      Effect.fail(new Failure.UsageError({ reason: "no database: set DATABASE_URL or pass --database-url" })),
    onSome: Effect.succeed
  })
)

const loadConfig = Effect.flatMap(ConfigFile, (path) => AppConfig.load(Option.getOrUndefined(path)))

/** Runs `program` on the database (with Chronicle's tables required unless `tables` is false). */
const onDatabase = <A, E, R>(program: Effect.Effect<A, E, R>, options: { readonly tables?: boolean } = {}) =>
  Effect.gen(function* () {
    const url = yield* databaseUrl
    const checked = options.tables === false ? program : Effect.andThen(Database.requireTables, program)
    return yield* Effect.scoped(checked).pipe(Effect.provide(Database.client(url)))
  })

const progressMode = Effect.flatMap(Json, Progress.modeFor)

/** Reports an interruption of a long job on standard error, saying what a new run does. */
const onInterrupt = (what: string) => Effect.onInterrupt(() => Console.error(`\ninterrupted: ${what}`))

const positionOf = (text: string, flag: string) =>
  Effect.try({
    try: () => {
      if (!/^\d+$/.test(text)) throw new Error()
      return BigInt(text)
    },
    catch: () => new Failure.UsageError({ reason: `${flag} must be a global position (a whole number), not "${text}"` })
  })

const withHelp =
  (description: string, examples: ReadonlyArray<Command.Command.Example>) =>
  <Name extends string, Input, E, R, CI>(command: Command.Command<Name, Input, CI, E, R>) =>
    command.pipe(Command.withDescription(description), Command.withExamples(examples))

// ── migrate ──

const migrationIds = Object.keys(PgMigrations.migrations).map((key) => {
  const [id, ...name] = key.split("_")
  return { id: Number(id), name: name.join("_") }
})

const migrate = Command.make(
  "migrate",
  {
    dryRun: Flag.Boolean("dry-run").pipe(Flag.withDescription("List what would run"), Flag.withDefault(false)),
    partitionIndex: Flag.Boolean("partition-index").pipe(
      Flag.withDescription("Then create the partition index if missing, for apps that read partitions"),
      Flag.withDefault(false)
    )
  },
  ({ dryRun, partitionIndex }) =>
    onDatabase(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const json = yield* Json
        if (dryRun) {
          const [table] = yield* sql<{
            present: boolean
          }>`SELECT to_regclass('chronicle_migrations') IS NOT NULL AS present`
          const applied =
            table?.present === true
              ? new Set(
                  (yield* sql<{ migration_id: number }>`SELECT migration_id FROM chronicle_migrations`).map(
                    (r) => r.migration_id
                  )
                )
              : new Set<number>()
          const pending = migrationIds.filter((m) => !applied.has(m.id))
          return yield* emit(json, { pending }, () =>
            pending.length === 0
              ? "the schema is current: nothing would run"
              : `would run:\n${pending.map((m) => `  ${m.id}_${m.name}`).join("\n")}`
          )
        }
        const ran = (yield* PgMigrations.run).map(([id, name]) => ({ id, name }))
        if (partitionIndex) yield* PgMigrations.partitionIndex
        return yield* emit(json, { applied: ran, ...(partitionIndex ? { partitionIndex: true } : {}) }, () =>
          [
            ran.length === 0
              ? "the schema is current: nothing to do"
              : `applied:\n${ran.map((m) => `  ${m.id}_${m.name}`).join("\n")}`,
            ...(partitionIndex ? ["the partition index is in place"] : [])
          ].join("\n")
        )
      }),
      { tables: false }
    )
).pipe(
  withHelp("Create or upgrade Chronicle's tables (safe to run again, and from several instances at once)", [
    { command: "chronicle migrate --dry-run", description: "List the migrations that would run" },
    { command: "chronicle migrate --partition-index", description: "Upgrade, then create the partition index" }
  ])
)

// ── status ──

/** A checkpoint row with its lag (events after it up to the head) and the lease holder, if a runner holds it. */
interface CheckpointStatus {
  readonly name: string
  readonly kind: "projection" | "outbox"
  readonly position: bigint
  /** When the checkpoint last moved; null for a read model of the config module that has none yet. */
  readonly updatedAt: Date | null
  readonly lag: number
  readonly state: string
  readonly heldBy: number | null
  readonly deadLetters: number
}

const leaseHolder = (lease: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ pid: number }>`
      SELECT pid FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND objsubid = 1
        AND ((classid::int8 << 32) | objid::int8) = hashtextextended(${lease}, 0)
      LIMIT 1`.pipe(Effect.map(([row]) => row?.pid ?? null))
  )

/** Events after `after` up to `head`, in the categories and types of `filter` when given. */
const eventsBetween = (
  after: bigint,
  head: bigint,
  filter?: {
    readonly categories?: ReadonlyArray<string> | undefined
    readonly types?: ReadonlyArray<string> | undefined
  }
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const conditions = [
      sql`global_position > ${after}`,
      sql`global_position <= ${head}`,
      ...(filter?.categories === undefined ? [] : [sql`category = ANY(${filter.categories})`]),
      ...(filter?.types === undefined ? [] : [sql`type = ANY(${filter.types})`])
    ]
    return sql<{ n: number }>`SELECT count(*)::int4 AS n FROM chronicle_events WHERE ${sql.and(conditions)}`.pipe(
      Effect.map(([row]) => row?.n ?? 0)
    )
  })

const checkpointStatuses = (config: AppConfig.AppConfig, head: bigint) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ projection: string; position: bigint; updated_at: Date | null }>`
      SELECT projection, position, updated_at FROM chronicle_checkpoints ORDER BY projection`
    const letters = new Map(
      (yield* sql<{ projection: string; n: number }>`
        SELECT projection, count(*)::int4 AS n FROM chronicle_dead_letters GROUP BY projection`).map((r) => [
        r.projection,
        r.n
      ])
    )
    const known = new Map(rows.map((row) => [row.projection, row] as const))
    for (const model of config.projections ?? []) {
      if (!known.has(model.name)) known.set(model.name, { projection: model.name, position: 0n, updated_at: null })
    }
    return yield* Effect.forEach([...known.values()], (row) =>
      Effect.gen(function* () {
        const model = AppConfig.projectionOf(config, row.projection)
        const asProjection = yield* leaseHolder(`projection:${row.projection}`)
        const asOutbox = asProjection === null ? yield* leaseHolder(row.projection) : null
        const heldBy = asProjection ?? asOutbox
        const kind: CheckpointStatus["kind"] =
          asOutbox !== null || (model === undefined && row.projection.includes("outbox")) ? "outbox" : "projection"
        const status: CheckpointStatus = {
          name: row.projection,
          kind,
          position: BigInt(row.position),
          updatedAt: row.updated_at,
          lag: yield* eventsBetween(BigInt(row.position), head, model),
          state: heldBy === null ? "idle" : "running",
          heldBy,
          deadLetters: letters.get(row.projection) ?? 0
        }
        return status
      })
    )
  })

const status = Command.make("status", {}, () =>
  onDatabase(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const json = yield* Json
      const config = yield* loadConfig
      const [server] = yield* sql<{ version: string; database: string }>`
        SELECT current_setting('server_version') AS version, current_database() AS database`
      const tables = yield* sql<{ name: string; bytes: number; rows: number }>`
        SELECT relname AS name, pg_total_relation_size(relid)::float8 AS bytes, n_live_tup::float8 AS rows
        FROM pg_stat_user_tables WHERE relname LIKE 'chronicle\\_%' AND schemaname = current_schema()
        ORDER BY relname`
      const [events] = yield* sql<{ n: number }>`SELECT count(*)::int8::float8 AS n FROM chronicle_events`
      const horizon = yield* PgEventStore.horizonNow
      const [headRow] = yield* sql<{ head: bigint | null }>`
        SELECT max(global_position) AS head FROM chronicle_events WHERE global_position < ${horizon.position}`
      const head = headRow?.head ?? 0n
      const checkpoints = yield* checkpointStatuses(config, head)
      const holder = Option.getOrNull(horizon.holder)
      const result = {
        server: { version: server?.version, database: server?.database },
        events: events?.n ?? 0,
        head,
        horizon: { position: horizon.position, heldBackBy: holder },
        tables,
        checkpoints
      }
      return yield* emit(json, result, () =>
        [
          `server     Postgres ${server?.version}, database ${server?.database}`,
          `events     ${(events?.n ?? 0).toLocaleString("en-US")}, head position ${head}`,
          holder === null
            ? "readers    nothing holds them back"
            : `readers    held back by backend ${holder.pid} for ${(holder.ageMs / 1000).toFixed(1)} s: ${holder.query.replace(/\s+/g, " ").slice(0, 80)}`,
          "",
          table([
            ["table", "rows (approx.)", "size"],
            ...tables.map((t) => [t.name, t.rows.toLocaleString("en-US"), `${(t.bytes / 1024).toFixed(0)} KiB`])
          ]),
          "",
          checkpoints.length === 0
            ? "no projections or outbox have a checkpoint yet"
            : table([
                ["name", "kind", "state", "checkpoint", "lag (events)", "dead letters"],
                ...checkpoints.map((c) => [
                  c.name,
                  c.kind,
                  c.heldBy === null ? c.state : `${c.state} (pid ${c.heldBy})`,
                  String(c.position),
                  String(c.lag),
                  String(c.deadLetters)
                ])
              ])
        ].join("\n")
      )
    })
  )
).pipe(
  withHelp(
    "Show the server, table sizes, the event count and head, what holds readers back, and each projection's and outbox's lag, state and dead letters",
    [{ command: "chronicle status --json", description: "The same, as JSON for a monitoring script" }]
  )
)

// ── streams ──

const streamsList = Command.make(
  "list",
  {
    category: Flag.String("category").pipe(Flag.withDescription("Only streams of this category"), Flag.optional),
    limit: Flag.Int("limit").pipe(Flag.withDescription("At most this many streams (default 50)"), Flag.withDefault(50))
  },
  ({ category, limit }) =>
    onDatabase(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const json = yield* Json
        if (limit < 1) return yield* new Failure.UsageError({ reason: `--limit must be at least 1, not ${limit}` })
        const where = Option.match(category, { onNone: () => sql`true`, onSome: (c) => sql`category = ${c}` })
        const rows = yield* sql<{ stream: string; version: number; last_position: bigint; updated_at: Date }>`
          SELECT stream_id AS stream, max(version) AS version, max(global_position) AS last_position,
            max(recorded_at) AS updated_at
          FROM chronicle_events WHERE ${where} GROUP BY stream_id ORDER BY last_position DESC LIMIT ${limit}`
        return yield* emit(
          json,
          rows.map((r) => ({
            stream: r.stream,
            version: r.version,
            lastPosition: r.last_position,
            updatedAt: r.updated_at
          })),
          () =>
            rows.length === 0
              ? "no streams"
              : table([
                  ["stream", "version", "last position", "updated"],
                  ...rows.map((r) => [r.stream, String(r.version), String(r.last_position), time(r.updated_at)])
                ])
        )
      })
    )
).pipe(
  withHelp("List streams, most recently written first", [
    { command: "chronicle streams list --category cart --limit 10", description: "The ten carts written last" }
  ])
)

/** A state as JSON: through the aggregate's state schema when it has one. */
const stateJson = (aggregate: Aggregate.Any, state: unknown): unknown => {
  const schema = aggregate.state
  if (schema === undefined) return JSON.parse(toJson(state))
  return Result.getOrElse(Schema.encodeUnknownResult(Schema.toCodecJson(schema))(state), () =>
    JSON.parse(toJson(state))
  )
}

const streamsShow = Command.make(
  "show",
  {
    stream: Argument.String("stream").pipe(Argument.withDescription("The stream, <category>-<id>")),
    from: Flag.Int("from").pipe(Flag.withDescription("The first version to show (default 1)"), Flag.optional)
  },
  ({ stream, from }) =>
    onDatabase(
      Effect.gen(function* () {
        const json = yield* Json
        const config = yield* loadConfig
        const name = yield* Effect.fromResult(StreamName.validate(stream)).pipe(
          Effect.mapError((error) => new Failure.UsageError({ reason: error.message }))
        )
        const aggregate = AppConfig.aggregateOf(config, StreamName.category(name))
        const store = yield* EventStore.EventStore
        const version = yield* store.streamVersion(name)
        if (version === 0) return yield* new Failure.UnknownStream({ stream: name })
        const first = Option.getOrElse(from, () => 1)
        // The state after an event needs the events before it, so the fold starts at version 1 whatever --from says.
        let state: unknown = aggregate?.decider.initialState
        let decodable = aggregate !== undefined
        const shown: Array<{
          readonly event: Envelope.RecordedEvent
          readonly state?: unknown
          readonly error?: string
        }> = []
        yield* store.readStream(name, aggregate === undefined ? { from: first } : {}).pipe(
          Stream.runForEach((event) =>
            Effect.sync(() => {
              let error: string | undefined
              if (aggregate !== undefined && decodable) {
                const decoded = aggregate.events.decode(event)
                if (Result.isSuccess(decoded)) state = Decider.fold(aggregate.decider, [decoded.success], state)
                else {
                  error = decoded.failure.message
                  decodable = false
                }
              }
              if (event.version < first) return
              shown.push({
                event,
                ...(aggregate !== undefined && decodable ? { state: stateJson(aggregate, state) } : {}),
                ...(error === undefined ? {} : { error })
              })
            })
          )
        )
        const result = {
          stream: name,
          version,
          decoded: aggregate !== undefined,
          events: shown.map(({ event, ...rest }) => ({
            position: event.position,
            version: event.version,
            type: event.type,
            schemaVersion: event.schemaVersion,
            eventId: event.eventId,
            recordedAt: event.recordedAt,
            data: event.data,
            metadata: event.metadata,
            ...rest
          }))
        }
        return yield* emit(json, result, () =>
          [
            `${name}: ${version} event(s)${aggregate === undefined ? " (as stored: no aggregate of this category in the config)" : ""}`,
            ...shown.flatMap(({ event, state: after, error }) => [
              `#${event.position}  v${event.version}  ${time(event.recordedAt)}  ${event.type} (schema v${event.schemaVersion})  ${toJson(event.data)}`,
              `    metadata ${toJson(event.metadata)}  id ${event.eventId}`,
              ...(error !== undefined ? [`    cannot decode: ${error}`] : []),
              ...(after !== undefined ? [`    state → ${toJson(after)}`] : [])
            ])
          ].join("\n")
        )
      }).pipe(Effect.provide(Layer.unwrap(Effect.map(loadConfig, Database.appStore))))
    )
).pipe(
  withHelp(
    "Show a stream's events with position, version, type, time and metadata; decoded, with the state after each event, when the config module has its aggregate",
    [
      {
        command: "chronicle streams show cart-42 --config chronicle.config.ts",
        description: "A cart's history and its state after each event"
      }
    ]
  )
)

const streams = Command.make("streams").pipe(
  Command.withSubcommands([streamsList, streamsShow]),
  withHelp("Look at streams", [{ command: "chronicle streams list", description: "The streams written last" }])
)

// ── projections ──

const knownProjections = (config: AppConfig.AppConfig) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const stored = yield* sql<{ name: string }>`
      SELECT projection AS name FROM chronicle_checkpoints
      UNION SELECT DISTINCT projection FROM chronicle_dead_letters`
    return [...new Set([...(config.projections ?? []).map((m) => m.name), ...stored.map((r) => r.name)])].sort()
  })

/** The config's read model named `name`, or a failure saying why the command needs one. */
const configuredModel = (config: AppConfig.AppConfig, name: string, command: string) =>
  Effect.gen(function* () {
    const model = AppConfig.projectionOf(config, name)
    if (model !== undefined) return model
    if (config.projections === undefined)
      return yield* new AppConfig.ConfigMissing({ command, needs: `the read model ${name}` })
    return yield* new Failure.UnknownProjection({ projection: name, known: config.projections.map((m) => m.name) })
  })

const headNow = Effect.flatMap(EventStore.EventStore, (store) => store.head)

const projectionsList = Command.make("list", {}, () =>
  onDatabase(
    Effect.gen(function* () {
      const json = yield* Json
      const config = yield* loadConfig
      const all = yield* checkpointStatuses(config, yield* headNow)
      return yield* emit(json, all, () =>
        all.length === 0
          ? "no projections: none in the config module, none with a checkpoint"
          : table([
              ["name", "kind", "state", "checkpoint", "lag (events)", "dead letters", "in config"],
              ...all.map((c) => [
                c.name,
                c.kind,
                c.state,
                String(c.position),
                String(c.lag),
                String(c.deadLetters),
                AppConfig.projectionOf(config, c.name) === undefined ? "no" : "yes"
              ])
            ])
      )
    }).pipe(Effect.provide(PgEventStore.layer()))
  )
).pipe(
  withHelp("List projections and outboxes: those of the config module and every stored checkpoint", [
    { command: "chronicle projections list --config chronicle.config.ts" }
  ])
)

const projectionName = Argument.String("name").pipe(Argument.withDescription("The projection's name"))

const projectionStatus = Command.make("status", { name: projectionName }, ({ name }) =>
  onDatabase(
    Effect.gen(function* () {
      const json = yield* Json
      const config = yield* loadConfig
      const all = yield* checkpointStatuses(config, yield* headNow)
      const found = all.find((c) => c.name === name)
      if (found === undefined)
        return yield* new Failure.UnknownProjection({ projection: name, known: all.map((c) => c.name) })
      const model = AppConfig.projectionOf(config, name)
      const result = { ...found, table: model?.table, categories: model?.categories, types: model?.types }
      return yield* emit(json, result, () =>
        [
          `${found.name} (${found.kind}${model === undefined ? "" : `, table ${model.table}`})`,
          `state         ${found.heldBy === null ? "idle: no runner holds its lease" : `running: backend ${found.heldBy} holds its lease`}`,
          `checkpoint    ${found.position} (updated ${time(found.updatedAt)})`,
          `lag           ${found.lag} event(s)`,
          `dead letters  ${found.deadLetters}`
        ].join("\n")
      )
    }).pipe(Effect.provide(PgEventStore.layer()))
  )
).pipe(
  withHelp("Show one projection's state, checkpoint, lag and dead letters", [
    { command: "chronicle projections status cart-summary" }
  ])
)

const projectionRebuild = Command.make("rebuild", { name: projectionName }, ({ name }) =>
  onDatabase(
    Effect.gen(function* () {
      const json = yield* Json
      const config = yield* loadConfig
      const model = yield* configuredModel(config, name, "projections rebuild")
      const reporter = yield* Progress.make(`rebuild ${name}`, { mode: yield* progressMode })
      const position = yield* PgProjection.rebuild(model, {
        onProgress: ({ done, total }) => reporter.update(done, total)
      }).pipe(onInterrupt(`${name} was not changed; run the rebuild again`))
      yield* reporter.finish
      return yield* emit(
        json,
        { projection: name, table: model.table, position },
        () => `rebuilt ${name} into ${model.table}, now at position ${position}`
      )
    }).pipe(
      Effect.provide(
        Layer.unwrap(
          Effect.map(loadConfig, (config) => Layer.merge(Database.appStore(config), Database.projectionServices))
        )
      )
    )
  )
).pipe(
  withHelp(
    "Rebuild a read model of the config module aside, with progress, and swap it in; readers see the old one until the swap. Interrupted, it changes nothing",
    [{ command: "chronicle projections rebuild cart-summary --config chronicle.config.ts" }]
  )
)

const projectionReset = Command.make("reset", { name: projectionName }, ({ name }) =>
  onDatabase(
    Effect.gen(function* () {
      const json = yield* Json
      const config = yield* loadConfig
      const model = yield* configuredModel(config, name, "projections reset")
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(
        Effect.andThen(
          PgProjection.projection(model).reset,
          sql`INSERT INTO chronicle_checkpoints (projection, position) VALUES (${name}, 0)
              ON CONFLICT (projection) DO UPDATE SET position = 0, updated_at = now()`
        )
      )
      return yield* emit(
        json,
        { projection: name, table: model.table, position: 0n },
        () => `reset ${name}: table ${model.table} is empty and the checkpoint is at 0; its runner replays the log`
      )
    }).pipe(Effect.provide(Layer.unwrap(Effect.map(loadConfig, Database.appStore))))
  )
).pipe(
  withHelp(
    "Empty a read model of the config module and set its checkpoint to the start, so its runner replays the log",
    [{ command: "chronicle projections reset cart-summary --config chronicle.config.ts" }]
  )
)

const projectionAdopt = Command.make("adopt", { name: projectionName }, ({ name }) =>
  onDatabase(
    Effect.gen(function* () {
      const json = yield* Json
      const model = yield* configuredModel(yield* loadConfig, name, "projections adopt")
      const adopted = yield* PgProjection.adopt(model)
      return yield* emit(json, { projection: name, table: model.table, adopted }, () =>
        adopted
          ? `adopted ${model.table} for ${name}: its columns are the model's, and rebuilds and resets may replace it now`
          : `${name} owns ${model.table} already: nothing to do`
      )
    })
  )
).pipe(
  withHelp(
    "Hand an existing table (made by hand, or before tables carried their owner) to a read model of the config module, once its columns match the model's",
    [{ command: "chronicle projections adopt cart-summary --config chronicle.config.ts" }]
  )
)

const projections = Command.make("projections").pipe(
  Command.withSubcommands([projectionsList, projectionStatus, projectionRebuild, projectionReset, projectionAdopt]),
  withHelp("See and fix projections", [{ command: "chronicle projections list" }])
)

// ── dead letters ──

interface LetterRow {
  readonly position: bigint
  readonly eventId: string
  readonly stream: string
  readonly version: number
  readonly type: string
  readonly error: string
  readonly parkedAt: Date
}

const lettersOf = (name: string, position?: bigint) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<LetterRow>`
      SELECT global_position AS position, event_id::text AS "eventId", stream_id AS stream, version, type, error,
        parked_at AS "parkedAt"
      FROM chronicle_dead_letters
      WHERE projection = ${name} ${position === undefined ? sql`` : sql`AND global_position = ${position}`}
      ORDER BY global_position`
  )

const requireKnown = (config: AppConfig.AppConfig, name: string) =>
  Effect.gen(function* () {
    const known = yield* knownProjections(config)
    if (!known.includes(name)) return yield* new Failure.UnknownProjection({ projection: name, known })
  })

const deadLettersList = Command.make("list", { name: projectionName }, ({ name }) =>
  onDatabase(
    Effect.gen(function* () {
      const json = yield* Json
      yield* requireKnown(yield* loadConfig, name)
      const letters = yield* lettersOf(name)
      return yield* emit(json, letters, () =>
        letters.length === 0
          ? `${name} has no dead letters`
          : table([
              ["position", "stream", "version", "type", "parked", "error"],
              ...letters.map((l) => [
                String(l.position),
                l.stream,
                String(l.version),
                l.type,
                time(l.parkedAt),
                l.error
              ])
            ])
      )
    })
  )
).pipe(
  withHelp("List the events a projection parked, with why", [
    { command: "chronicle dead-letters list account-balance" }
  ])
)

const letterPosition = Flag.String("position").pipe(Flag.withDescription("The parked event's global position"))

/**
 * Hands the event parked at `position` to `model` again and removes its dead letter, in one transaction: both
 * happen, or neither (and the failure says why).
 */
const replayLetter = (model: AppConfig.ReadModel, position: bigint) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const store = yield* EventStore.EventStore
    const letters = yield* DeadLetters.DeadLetters
    const event = yield* Stream.runHead(store.readAll({ after: position - 1n, pageSize: 1 }).pipe(Stream.take(1)))
    const replay = Effect.gen(function* () {
      if (Option.isNone(event) || event.value.position !== position) {
        return yield* Effect.fail(`the event at position ${position} is no longer in the log`)
      }
      const decoded = yield* Effect.fromResult(model.decode(event.value))
      yield* model.handle(model.table)(Stream.make(decoded))
      yield* letters.discard(model.name, position)
    })
    return yield* sql.withTransaction(replay)
  })

const deadLettersRetry = Command.make(
  "retry",
  { name: projectionName, position: letterPosition.pipe(Flag.optional) },
  ({ name, position }) =>
    onDatabase(
      Effect.gen(function* () {
        const json = yield* Json
        const config = yield* loadConfig
        const model = yield* configuredModel(config, name, "dead-letters retry")
        const at = Option.isSome(position) ? yield* positionOf(position.value, "--position") : undefined
        const letters = yield* lettersOf(name, at)
        if (at !== undefined && letters.length === 0)
          return yield* new Failure.NoSuchDeadLetter({ projection: name, position: at })
        const outcomes: Array<{ readonly position: bigint; readonly retried: boolean; readonly error?: string }> = []
        for (const letter of letters) {
          const outcome = yield* replayLetter(model, letter.position).pipe(Effect.result)
          outcomes.push(
            Result.isSuccess(outcome)
              ? { position: letter.position, retried: true }
              : { position: letter.position, retried: false, error: Failure.describe(outcome.failure) }
          )
        }
        const failed = outcomes.filter((o) => !o.retried)
        yield* emit(json, { projection: name, outcomes }, () =>
          outcomes.length === 0
            ? `${name} has no dead letters`
            : outcomes
                .map((o) =>
                  o.retried
                    ? `retried #${o.position}: handled, no longer parked`
                    : `#${o.position} still fails: ${o.error}`
                )
                .join("\n")
        )
        if (failed.length > 0) return yield* new Failure.RetryFailed({ projection: name, failed: failed.length })
      }).pipe(
        Effect.provide(
          Layer.unwrap(
            Effect.map(loadConfig, (config) => Layer.merge(Database.appStore(config), Database.projectionServices))
          )
        )
      )
    )
).pipe(
  withHelp(
    "Hand parked events to the projection's handler again (all, or the one at --position); handled ones leave the dead letters",
    [
      {
        command: "chronicle dead-letters retry account-balance --position 4423598866759680 --config chronicle.config.ts"
      }
    ]
  )
)

const deadLettersDiscard = Command.make(
  "discard",
  { name: projectionName, position: letterPosition },
  ({ name, position }) =>
    onDatabase(
      Effect.gen(function* () {
        const json = yield* Json
        const at = yield* positionOf(position, "--position")
        const removed = yield* DeadLetters.DeadLetters.use((letters) => letters.discard(name, at))
        if (!removed) return yield* new Failure.NoSuchDeadLetter({ projection: name, position: at })
        return yield* emit(
          json,
          { projection: name, discarded: at },
          () => `discarded the dead letter of ${name} at position ${at}`
        )
      }).pipe(Effect.provide(PgDeadLetters.layer))
    )
).pipe(
  withHelp("Drop one parked event for good: the projection never handles it", [
    { command: "chronicle dead-letters discard account-balance --position 4423598866759680" }
  ])
)

const deadLetters = Command.make("dead-letters").pipe(
  Command.withSubcommands([deadLettersList, deadLettersRetry, deadLettersDiscard]),
  withHelp("See, retry and discard the events projections parked", [
    { command: "chronicle dead-letters list account-balance" }
  ])
)

// ── events migrate ──

const eventsMigrate = Command.make(
  "migrate",
  {
    batchSize: Flag.Int("batch-size").pipe(
      Flag.withDescription("Events per transaction (default 500)"),
      Flag.withDefault(500)
    )
  },
  ({ batchSize }) =>
    onDatabase(
      Effect.gen(function* () {
        const json = yield* Json
        const config = yield* loadConfig
        if (batchSize < 1)
          return yield* new Failure.UsageError({ reason: `--batch-size must be at least 1, not ${batchSize}` })
        if (config.aggregates === undefined) {
          return yield* new AppConfig.ConfigMissing({
            command: "events migrate",
            needs: "the aggregates whose events to migrate"
          })
        }
        const registry = Database.registryOf(config)
        const reporter = yield* Progress.make("events migrate", { mode: yield* progressMode })
        const run = PgEventUpgrade.run(registry, {
          batchSize,
          onProgress: ({ done, total }) => reporter.update(done, total)
        })
        const tally = yield* (
          config.keyStore === undefined
            ? run
            : Effect.provide(run, config.keyStore as Layer.Layer<KeyStore.KeyStore, unknown, SqlClient.SqlClient>)
        ).pipe(onInterrupt("the batches committed so far stay migrated; run it again to go on"))
        yield* reporter.finish
        return yield* emit(json, tally, () =>
          tally.done === 0
            ? "every event is at its current version: nothing to migrate"
            : `migrated ${tally.done} event(s) to their current versions`
        )
      })
    )
).pipe(
  withHelp(
    "Rewrite stored events of old schema versions as their current version (PgEventUpgrade), in batches, keeping the originals in chronicle_events_archive. Resumable",
    [
      {
        command: "chronicle events migrate --config chronicle.config.ts",
        description: "Needs the aggregates in the config"
      }
    ]
  ),
  Command.withAlias("upgrade")
)

const events = Command.make("events").pipe(
  Command.withSubcommands([eventsMigrate]),
  withHelp("Work on stored events", [{ command: "chronicle events migrate --config chronicle.config.ts" }])
)

// ── forget ──

/** Asks on the terminal; without one, confirmation must be given with --yes. */
const confirm = (message: string, action: string) =>
  Effect.gen(function* () {
    const caps = yield* TerminalCapabilities.TerminalCapabilities
    if (!caps.canPrompt) {
      return yield* new Failure.UsageError({
        reason: `${action} asks for confirmation, which needs a terminal: pass --yes to confirm`
      })
    }
    const yes = yield* Prompt.run(Prompt.Confirm({ message, initial: false })).pipe(
      Effect.catchTag("QuitError", () => Effect.succeed(false))
    )
    if (!yes) return yield* new Failure.NotConfirmed({ action })
  })

const forget = Command.make(
  "forget",
  {
    subject: Argument.String("subject").pipe(
      Argument.withDescription("The subject (a customer id...) whose key to delete")
    ),
    yes: Flag.Boolean("yes").pipe(Flag.withDescription("Do not ask for confirmation"), Flag.withDefault(false))
  },
  ({ subject, yes }) =>
    onDatabase(
      Effect.gen(function* () {
        const json = yield* Json
        const config = yield* loadConfig
        const sql = yield* SqlClient.SqlClient
        const keys = Database.keyStore(config, "forget")
        const before = yield* sql<{ forgotten: boolean }>`
          SELECT forgotten_at IS NOT NULL AS forgotten FROM chronicle_keys WHERE subject = ${subject}`
        if (!yes && before[0]?.forgotten !== true) {
          yield* confirm(
            `Forget ${subject}? Their data key is deleted for good: their personal fields read as redacted from now on`,
            `forget ${subject}`
          )
        }
        const done = yield* CryptoShredding.forget(subject).pipe(
          Effect.provide(Layer.merge(keys, PgEventStore.layer()))
        )
        return yield* emit(json, { subject, forgotten: true, now: done.now, position: done.position.toString() }, () =>
          done.now
            ? `forgot ${subject}: recorded SubjectForgotten at position ${done.position} and deleted their data key; their personal fields now read as redacted, and no new key will be made for them`
            : `${subject} was already forgotten (SubjectForgotten at position ${done.position}): nothing to do`
        )
      })
    )
).pipe(
  withHelp("Forget a subject (crypto-shredding): delete their data key, asking first unless --yes", [
    { command: "chronicle forget cust-42 --yes --config chronicle.config.ts" }
  ])
)

// ── keys rotate ──

const keysRotate = Command.make(
  "rotate",
  {
    batchSize: Flag.Int("batch-size").pipe(
      Flag.withDescription("Data keys per transaction (default 500)"),
      Flag.withDefault(500)
    )
  },
  ({ batchSize }) =>
    onDatabase(
      Effect.gen(function* () {
        const json = yield* Json
        if (batchSize < 1)
          return yield* new Failure.UsageError({ reason: `--batch-size must be at least 1, not ${batchSize}` })
        const masterKeys = yield* PgKeyStore.config
        const reporter = yield* Progress.make("keys rotate", { mode: yield* progressMode, unit: "keys" })
        const tally = yield* PgKeyStore.rotate({
          ...masterKeys,
          batchSize,
          onProgress: ({ done, total }) => reporter.update(done, total)
        }).pipe(onInterrupt("the keys re-wrapped so far stay re-wrapped; run it again to go on"))
        yield* reporter.finish
        return yield* emit(json, tally, () =>
          tally.done === 0
            ? "every data key is wrapped under the current master key: nothing to rotate"
            : `re-wrapped ${tally.done} data key(s) under the current master key; drop CHRONICLE_PREVIOUS_MASTER_KEYS now`
        )
      })
    )
).pipe(
  withHelp(
    "Re-wrap every data key under the master key CHRONICLE_MASTER_KEY, unwrapping with CHRONICLE_PREVIOUS_MASTER_KEYS (PgKeyStore.rotate), in batches. Resumable",
    [
      {
        command: "chronicle keys rotate --batch-size 1000",
        description: "With the new key in CHRONICLE_MASTER_KEY and the old one in CHRONICLE_PREVIOUS_MASTER_KEYS"
      }
    ]
  )
)

const keys = Command.make("keys").pipe(
  Command.withSubcommands([keysRotate]),
  withHelp("Work on the data keys of crypto-shredding", [{ command: "chronicle keys rotate --json" }])
)

// ── export ──

const exportCommand = Command.make(
  "export",
  {
    file: Argument.String("file").pipe(Argument.withDescription("The file to write")),
    format: Flag.Literals("format", Export.formats).pipe(Flag.withDescription("ndjson or parquet")),
    category: Flag.String("category").pipe(
      Flag.withDescription("Only these categories (comma-separated)"),
      Flag.optional
    ),
    from: Flag.String("from").pipe(
      Flag.withDescription("The first global position to export (default: the start)"),
      Flag.optional
    )
  },
  ({ file, format, category, from }) =>
    onDatabase(
      Effect.gen(function* () {
        const json = yield* Json
        const start = Option.isSome(from) ? yield* positionOf(from.value, "--from") : undefined
        const categories = Option.map(category, (c) =>
          c
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s !== "")
        )
        const reporter = yield* Progress.make(`export ${file}`, { mode: yield* progressMode })
        const context = yield* Effect.context<SqlClient.SqlClient>()
        const result = yield* Export.run({
          file,
          format,
          ...(Option.isSome(categories) ? { categories: categories.value } : {}),
          ...(start === undefined ? {} : { from: start }),
          count: (after, until) =>
            eventsBetween(after, until, Option.isSome(categories) ? { categories: categories.value } : undefined).pipe(
              Effect.provideContext(context),
              Effect.mapError((error) => new Export.ExportError({ file, reason: Failure.describe(error) }))
            ),
          onProgress: ({ done, total }) => reporter.update(done, total)
        }).pipe(onInterrupt(`${file} was not written; run the same export again to go on from where it stopped`))
        yield* reporter.finish
        return yield* emit(
          json,
          result,
          () =>
            `exported ${result.events} event(s) to ${file} (${format}${result.resumed ? ", resumed" : ""}), up to position ${result.position}`
        )
      }).pipe(Effect.provide(PgEventStore.layer()))
    )
).pipe(
  withHelp(
    "Export the log as stored (sealed fields stay sealed) to NDJSON or Parquet, streamed with bounded memory. Interrupted, it goes on from where it stopped when run again",
    [
      {
        command: "chronicle export --format parquet --category cart cart.parquet",
        description: "Every cart event, for DuckDB"
      },
      { command: "chronicle export --format ndjson --from 4423598866759680 tail.ndjson" }
    ]
  )
)

// ── ui ──

type BrowserServices =
  | SqlClient.SqlClient
  | EventStore.EventStore
  | DeadLetters.DeadLetters
  | CheckpointStore.CheckpointStore

/** The read models and outboxes of `config` on Postgres, for the stream browser, with the commands' own steps. */
const browserProjections = (config: AppConfig.AppConfig) =>
  Effect.gen(function* () {
    const context = yield* Effect.context<BrowserServices>()
    const notFound = new Set(["UnknownProjection", "NoSuchDeadLetter", "ConfigMissing"])
    const here = <A, E>(effect: Effect.Effect<A, E, BrowserServices>) =>
      effect.pipe(
        Effect.provideContext(context),
        Effect.mapError((error) =>
          error instanceof StreamBrowser.Refused
            ? error
            : new StreamBrowser.Refused({
                status: notFound.has((error as { _tag?: string })._tag ?? "") ? 404 : 500,
                reason: Failure.describe(error)
              })
        )
      )
    const model = (name: string) => configuredModel(config, name, "ui")
    const projections: StreamBrowser.Projections = {
      list: here(
        Effect.gen(function* () {
          const all = yield* checkpointStatuses(config, yield* headNow)
          const letters = yield* DeadLetters.DeadLetters
          return yield* Effect.forEach(all, (c) =>
            Effect.map(letters.list(c.name), (deadLetters) => ({
              name: c.name,
              checkpoint: c.position,
              lag: BigInt(c.lag),
              lagUnit: "events" as const,
              state: c.state,
              ...(c.heldBy === null ? {} : { detail: `${c.kind}, backend ${c.heldBy} holds its lease` }),
              deadLetters
            }))
          )
        })
      ),
      retry: (name, position) =>
        here(
          Effect.gen(function* () {
            const letters = yield* lettersOf(name, position)
            if (letters.length === 0) return yield* new Failure.NoSuchDeadLetter({ projection: name, position })
            yield* replayLetter(yield* model(name), position).pipe(
              Effect.mapError(
                (error) => new StreamBrowser.Refused({ status: 409, reason: `still fails: ${Failure.describe(error)}` })
              )
            )
          })
        ),
      discard: (name, position) => here(DeadLetters.DeadLetters.use((letters) => letters.discard(name, position))),
      rebuild: (name) => here(Effect.flatMap(model(name), (found) => PgProjection.rebuild(found)))
    }
    return projections
  })

const ui = Command.make(
  "ui",
  {
    port: Flag.Int("port").pipe(
      Flag.withDescription("The port (default 7070; 0 picks a free one)"),
      Flag.withDefault(7070)
    ),
    host: Flag.String("host").pipe(
      Flag.withDescription("The interface to bind (default 127.0.0.1); any other makes every request need the token"),
      Flag.withDefault("127.0.0.1")
    ),
    token: Flag.String("token").pipe(
      Flag.withDescription("The token the page and requests carry (default: a random one, printed in the URL)"),
      Flag.optional
    ),
    allowWrites: Flag.Boolean("allow-writes").pipe(
      Flag.withDescription("Let the page retry and discard dead letters and rebuild read models (with the token)"),
      Flag.withDefault(false)
    )
  },
  ({ port, host, token, allowWrites }) =>
    onDatabase(
      Effect.gen(function* () {
        const json = yield* Json
        const config = yield* loadConfig
        const sql = yield* SqlClient.SqlClient
        const master = yield* Config.option(Config.Redacted("CHRONICLE_MASTER_KEY"))
        const keyed = config.keyStore !== undefined || Option.isSome(master)
        const projections = yield* browserProjections(config).pipe(
          Effect.provide(Layer.mergeAll(Database.appStore(config), Database.projectionServices, PgEventStore.layer()))
        )
        // The store as written: the browser opens (with the key store, when there is one) and upcasts itself.
        const stores = keyed ? Layer.merge(PgEventStore.layer(), Database.keyStore(config, "ui")) : PgEventStore.layer()
        const running = yield* Layer.build(
          StreamBrowser.layer({
            port,
            host,
            allowWrites,
            ...(Option.isSome(token) ? { token: token.value } : {}),
            aggregates: config.aggregates ?? [],
            ...(config.renderers === undefined ? {} : { renderers: config.renderers }),
            projections,
            horizon: Effect.provideService(PgEventStore.horizonNow, SqlClient.SqlClient, sql)
          }).pipe(Layer.provide(stores))
        ).pipe(Effect.map((context) => Context.get(context, StreamBrowser.StreamBrowser)))
        yield* emit(json, { ...running, keys: keyed, allowWrites }, () =>
          [
            `the stream browser: ${running.urlWithToken}`,
            `  ${keyed ? "personal values open with the token" : "no key store: personal values stay sealed"}; ${allowWrites ? "writes allowed with the token" : "read-only"}`,
            host === "127.0.0.1" || host === "localhost" || host === "::1"
              ? `  without the token (${running.url}) personal values stay sealed and nothing can be written`
              : "  every request needs the token",
            "  Ctrl-C stops it"
          ].join("\n")
        )
        return yield* Effect.never
      })
    )
).pipe(
  withHelp(
    "Serve the stream browser: a web page with streams, their events and states as of any version, the live log, projections and the read horizon",
    [
      { command: "chronicle ui --config chronicle.config.ts", description: "On http://127.0.0.1:7070, read-only" },
      {
        command: "chronicle ui --host 0.0.0.0 --port 8080 --allow-writes",
        description: "Reachable from elsewhere: every request needs the printed token"
      }
    ]
  )
)

// ── the command ──

/** The `chronicle` command tree. */
export const command = Command.make("chronicle").pipe(
  Command.withSubcommands([
    migrate,
    status,
    streams,
    projections,
    deadLetters,
    events,
    forget,
    keys,
    exportCommand,
    ui
  ]),
  Command.withGlobalFlags([DatabaseUrl, ConfigFile, Json, Verbose]),
  withHelp("Operate a Chronicle event store on Postgres: its tables, streams, projections and data", [
    { command: "DATABASE_URL=postgres://localhost/app chronicle status" }
  ])
)

/** Bad usage prints one line per problem on standard error, and the way to help; help itself goes to standard output. */
const presenter: CliOutput.Presenter = {
  present: (event) =>
    Effect.gen(function* () {
      const formatter = yield* CliOutput.Formatter
      switch (event._tag) {
        case "Help":
          return yield* Console.log(formatter.formatHelpDoc(event.helpDoc))
        case "Version":
          return yield* Console.log(formatter.formatVersion(event.name, event.version))
        case "InvalidInvocation":
          for (const error of event.errors) yield* Console.error(`chronicle: ${error.message}`)
          return yield* Console.error(`(see: ${event.commandPath.join(" ")} --help)`)
      }
    })
}

/** Runs the command on `args`; succeeds with the exit code, after printing any failure as one line. */
export const run = (args: ReadonlyArray<string>) =>
  Command.runWith(command, { version })(args).pipe(
    Effect.as(0),
    Effect.catchCause((cause) => {
      if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
      const error = Cause.squash(cause)
      const help = Cause.findErrorOption(cause).pipe(
        Option.filter((e) => Failure.exitCode(e) === 2 && (e as { _tag?: string })._tag === "ShowHelp")
      )
      const verbose = args.includes("--verbose")
      return Effect.gen(function* () {
        // Bad usage was printed by the presenter; help shown for a command that needs a subcommand is usage too.
        if (Option.isNone(help)) {
          const url = Option.getOrUndefined(
            Option.flatMap(yield* Effect.option(databaseUrlForMessages(args)), (u) => u)
          )
          yield* Console.error(
            `chronicle: ${Failure.describe(error, url === undefined ? undefined : Database.hostOf(url))}`
          )
        }
        if (verbose) yield* Console.error(Failure.details(cause))
        return Failure.exitCode(error)
      })
    }),
    Effect.provide(CliOutput.layerPresenter(presenter)),
    // Log lines (a parked event, a retried read) go to standard error, so standard output stays the result.
    Effect.provideService(Logger.LogToStderr, true)
  )

/** The database URL for failure messages: the flag's value, else `DATABASE_URL`. */
const databaseUrlForMessages = (args: ReadonlyArray<string>) =>
  Effect.sync(() => {
    const at = args.findIndex((a) => a === "--database-url" || a.startsWith("--database-url="))
    const given =
      at === -1 ? undefined : args[at]!.includes("=") ? args[at]!.split("=").slice(1).join("=") : args[at + 1]
    return Option.fromNullishOr(given ?? process.env.DATABASE_URL)
  })

/** The process entry point: runs the command on `process.argv` and exits with its code (130 when interrupted). */
export const main = (): void =>
  NodeRuntime.runMain(run(process.argv.slice(2)).pipe(Effect.provide(NodeServices.layer)), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit)) return onExit(exit.value as number)
      onExit(Cause.hasInterruptsOnly(exit.cause) ? 130 : 1)
    }
  })
