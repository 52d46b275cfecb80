/**
 * Postgres read models: a projection whose handler writes into a table of the database that holds the checkpoints.
 * Each batch's writes, its checkpoint advance and any dead letter commit in one transaction, so a crash anywhere
 * leaves the model and the checkpoint in step: nothing lost, nothing applied twice.
 *
 * A read model names its table and says how to create an empty one under any name, so `rebuild` can build a fresh
 * copy aside (`<table>_rb_<8 random hex digits>`, in the same schema), replay the whole log into it with progress,
 * and swap it in with one transaction that locks the projection's checkpoint row, applies what arrived meanwhile,
 * drops the old table, renames the new one and sets the checkpoint. Readers see the old model until the swap
 * commits; the live runner's next batch then finds its checkpoint moved, rolls back, and resumes from the
 * swapped-in position.
 *
 * **Table names.** `table` is `"name"` or `"schema.name"` (one dot at most: a dot always separates the schema), each
 * part quoted as it is written, so case and any character but NUL and lone surrogates survive. Postgres cuts
 * identifiers longer than 63 bytes without a word, so a schema may have up to 63 bytes of UTF-8 and a table name up
 * to 51 (`maxTableBytes`: room for the shadow's suffix); names ending like a shadow (`_rb_` and 8 hex digits) are
 * reserved. A bad name fails `start`, `layer`, `layerInline`, `rebuild` and a reset with `InvalidReadModel` before any
 * I/O.
 *
 * **Ownership.** A table Chronicle creates for a model carries a comment naming the model (`ownerComment`); a
 * rebuild or a reset drops or replaces only a table with that comment, and fails with `ReadModelNotOwned` otherwise
 * (hand a table you made yourself over with `adopt`, which checks its columns against the model's `create` and writes
 * the comment). `start` writes into an existing table whoever made it.
 *
 * A read model that holds personal data declares `onForget`: when `CryptoShredding.forget` records that a subject was
 * forgotten, the runner meets the fact in the log and deletes (or redacts) the subject's rows.
 *
 * `layerInline` makes read models consistent with the write instead: it wraps the event store so that every append
 * updates them in the append's own transaction (at the price of a BEGIN/COMMIT around each append).
 */
import {
  CheckpointStore,
  CryptoShredding,
  type DeadLetters,
  type Envelope,
  type EventCodec,
  EventStore,
  type ExpectedVersion,
  type Lease,
  LogFollower,
  Projection,
  ProjectionRunner,
  Storable,
  StreamName
} from "@chronicle/core"
import type { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Predicate, Result, Schema, type Scope, Stream } from "effect"
import { SqlClient, type SqlError, Statement } from "effect/sql"
import { withTransaction } from "./internal/Transaction.ts"
import * as PgCheckpointStore from "./PgCheckpointStore.ts"
import * as PgDeadLetters from "./PgDeadLetters.ts"
import * as PgLease from "./PgLease.ts"

/** The read model's table could not be created, checked or swapped in (its database failed or refused). */
export class ReadModelError extends Schema.TaggedError<ReadModelError>()("ReadModelError", {
  model: Schema.String,
  table: Schema.String,
  cause: Schema.Defect()
}) {
  override get message() {
    const reason = Predicate.hasProperty(this.cause, "message") ? String(this.cause.message) : String(this.cause)
    return `read model ${this.model} (table ${this.table}) could not be set up: ${reason}`
  }
}

/** Why a read model's name or table cannot be used; `part` is `"name"`, `"schema"` or `"table"`. */
export const NameProblem = Schema.Union([
  /** The part is empty. */
  Schema.TaggedStruct("Empty", { part: Schema.String }),
  /** The part is longer than Postgres keeps (63 bytes), or leaves no room for a rebuild's suffix (table: 51). */
  Schema.TaggedStruct("TooLong", { part: Schema.String, bytes: Schema.Int, limit: Schema.Int }),
  /** The part holds a NUL or a lone surrogate, which Postgres cannot store. */
  Schema.TaggedStruct("UnrepresentableText", { part: Schema.String, detail: Schema.String }),
  /** The table has more than one dot: only `"schema.name"` is understood. */
  Schema.TaggedStruct("TooManyDots", { dots: Schema.Int }),
  /** The table name ends like a rebuild's shadow table (`_rb_` and 8 hex digits), which could collide with one. */
  Schema.TaggedStruct("ReservedSuffix", { suffix: Schema.String })
])
export type NameProblem = typeof NameProblem.Type

const describeProblem = (problem: NameProblem): string => {
  switch (problem._tag) {
    case "Empty":
      return `its ${problem.part} is empty`
    case "TooLong":
      return `its ${problem.part} is ${problem.bytes} bytes of UTF-8, more than ${problem.limit}`
    case "UnrepresentableText":
      return `its ${problem.part} ${problem.detail}`
    case "TooManyDots":
      return `the table has ${problem.dots} dots; write "name" or "schema.name"`
    case "ReservedSuffix":
      return `the table ends in ${problem.suffix}, which is reserved for rebuilds' shadow tables`
  }
}

/** The read model's name or table cannot be used (see the module doc); nothing was touched. */
export class InvalidReadModel extends Schema.TaggedError<InvalidReadModel>()("InvalidReadModel", {
  model: Schema.String,
  table: Schema.String,
  reason: NameProblem
}) {
  override get message() {
    return `read model ${JSON.stringify(this.model)} (table ${JSON.stringify(this.table)}): ${describeProblem(this.reason)}`
  }
}

/**
 * A rebuild or a reset would drop or replace a table that this read model did not create (its comment is not the
 * model's `ownerComment`), so it stopped and changed nothing.
 */
export class ReadModelNotOwned extends Schema.TaggedError<ReadModelNotOwned>()("ReadModelNotOwned", {
  model: Schema.String,
  table: Schema.String,
  comment: Schema.NullOr(Schema.String)
}) {
  override get message() {
    const found = this.comment === null ? "no comment" : `the comment ${JSON.stringify(this.comment)}`
    return `read model ${this.model} will not drop table ${this.table}: it has ${found}, not ${JSON.stringify(ownerComment(this.model))}, so the model did not create it`
  }
}

/**
 * `adopt` found no table to adopt, or one whose columns are not those the model's `create` makes: `missing` lists the
 * columns `create` makes that the table lacks (or has with another type or nullability), `extra` the table's columns
 * that `create` does not make, each as `name type [NOT NULL]`. Nothing was changed.
 */
export class ReadModelMismatch extends Schema.TaggedError<ReadModelMismatch>()("ReadModelMismatch", {
  model: Schema.String,
  table: Schema.String,
  exists: Schema.Boolean,
  missing: Schema.Array(Schema.String),
  extra: Schema.Array(Schema.String)
}) {
  override get message() {
    if (!this.exists) return `read model ${this.model} cannot adopt table ${this.table}: it does not exist`
    const list = (label: string, columns: ReadonlyArray<string>) =>
      columns.length === 0 ? [] : [`${label} ${columns.join(", ")}`]
    const differences = [...list("it lacks", this.missing), ...list("it also has", this.extra)].join("; ")
    return `read model ${this.model} cannot adopt table ${this.table}: its columns are not the model's (${differences})`
  }
}

/** The longest table name, in UTF-8 bytes: Postgres's 63 less the suffix of a rebuild's shadow table. */
export const maxTableBytes = 63 - "_rb_00000000".length

const maxIdentifierBytes = 63
const shadowSuffix = /_rb_[0-9a-f]{8}$/

/** The comment that marks a table as created by the read model `model`, so rebuilds may drop it. */
export const ownerComment = (model: string): string => `chronicle read model ${model}`

/** A read model's table, split into its optional schema and its name. */
interface TableName {
  readonly schema: string | undefined
  readonly name: string
}

/** `name` in the table's schema, as `sql(...)` takes it (a dot separates the schema). */
const inSchema = (table: TableName, name: string) => (table.schema === undefined ? name : `${table.schema}.${name}`)

/** Checks a model's name and table (see the module doc) and splits the table into schema and name. */
const validate = <A, Err, R>(model: ReadModel<A, Err, R>): Result.Result<TableName, InvalidReadModel> => {
  const fail = (reason: NameProblem) =>
    Result.fail(new InvalidReadModel({ model: String(model.name), table: String(model.table), reason }))
  const check = (part: string, text: unknown, limit: number): NameProblem | undefined => {
    if (typeof text !== "string" || text === "") return { _tag: "Empty", part }
    const problem = Storable.textProblem(text)
    if (problem !== undefined) return { _tag: "UnrepresentableText", part, detail: problem }
    const bytes = Buffer.byteLength(text)
    return bytes > limit ? { _tag: "TooLong", part, bytes, limit } : undefined
  }
  const nameProblem = check("name", model.name, Number.POSITIVE_INFINITY)
  if (nameProblem !== undefined) return fail(nameProblem)
  if (typeof model.table !== "string") return fail({ _tag: "Empty", part: "table" })
  const parts = model.table.split(".")
  if (parts.length > 2) return fail({ _tag: "TooManyDots", dots: parts.length - 1 })
  const [schema, name] = parts.length === 2 ? [parts[0], parts[1]] : [undefined, parts[0]]
  const schemaProblem = schema === undefined ? undefined : check("schema", schema, maxIdentifierBytes)
  if (schemaProblem !== undefined) return fail(schemaProblem)
  const tableProblem = check("table", name, maxTableBytes)
  if (tableProblem !== undefined) return fail(tableProblem)
  const reserved = name!.match(shadowSuffix)
  if (reserved !== null) return fail({ _tag: "ReservedSuffix", suffix: reserved[0] })
  return Result.succeed({ schema, name: name! })
}

/** A read model kept in a Postgres table. */
export interface ReadModel<A, Err = never, R = never> {
  /** The projection's name: the key of its checkpoint, lease and dead letters. */
  readonly name: string
  /** The table readers query: `"name"` or `"schema.name"` (see the module doc for what a name may hold). */
  readonly table: string
  /** Only events of streams in these categories; every category unless set. */
  readonly categories?: ReadonlyArray<string>
  /** Only events of these types; every type unless set. */
  readonly types?: ReadonlyArray<string>
  /** Turns a recorded event into what the handler sees; a failure goes through the failure policy. */
  readonly decode: (recorded: Envelope.RecordedEvent) => Result.Result<A, EventCodec.EventDecodeError>
  /**
   * Creates an empty table named `table` (the live name, or a rebuild's shadow), with its indexes; write it as
   * `sql(table)`, which quotes each part and reads the dot as the schema's. Chronicle comments the table afterwards.
   */
  readonly create: (table: string) => Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient>
  /** Writes one batch into `table`; runs inside the batch's transaction. */
  readonly handle: (table: string) => (events: Stream.Stream<A>) => Effect.Effect<void, Err, R>
  /** The most events one batch holds; 500 unless set. */
  readonly batchSize?: number
  /** How many times a failing batch, then a failing event, is retried before the policy; 3 unless set. */
  readonly retries?: number
  /** What to do with an event that still fails after the retries; `"stop"` unless set. */
  readonly onFailure?: Projection.FailurePolicy
  /** What to do with a subject's rows when `CryptoShredding.forget` records that it was forgotten; nothing unless set. */
  readonly onForget?: OnForget
}

/**
 * How a read model forgets a subject: delete the rows whose column `deleteWhere` holds the subject id, or run your
 * own statement on the table (redact the rows). It runs when the runner meets `SubjectForgotten` in the log, in order
 * with the events around it and in the same transaction as their batch, in live runs and rebuilds alike.
 */
export type OnForget =
  | { readonly deleteWhere: string }
  | ((table: string, subject: string) => Effect.Effect<unknown, SqlError.SqlError, SqlClient.SqlClient>)

const forgottenSubject = Symbol.for("@chronicle/postgres/PgProjection/forgotten")

/** What the handler of a model with `onForget` sees for a `SubjectForgotten` fact. */
interface Forgotten {
  readonly [forgottenSubject]: string
}

const isForgotten = (item: unknown): item is Forgotten =>
  typeof item === "object" && item !== null && forgottenSubject in item

/** The model as it runs: with `onForget`, it also reads the forget facts and applies them in order. */
const withForget = <A, Err, R>(
  model: ReadModel<A, Err, R>
): ReadModel<A, Err | SqlError.SqlError, R | SqlClient.SqlClient> => {
  const onForget = model.onForget
  if (onForget === undefined) return model
  const forget =
    typeof onForget === "function"
      ? onForget
      : (table: string, subject: string) =>
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => sql`DELETE FROM ${sql(table)} WHERE ${sql(onForget.deleteWhere)} = ${subject}`
          )
  return {
    ...model,
    ...(model.categories === undefined ? {} : { categories: [...model.categories, CryptoShredding.forgottenCategory] }),
    ...(model.types === undefined ? {} : { types: [...model.types, "SubjectForgotten"] }),
    decode: (recorded) => {
      const subject = (recorded.data as { readonly subject?: unknown } | null)?.subject
      return recorded.type === "SubjectForgotten" &&
        StreamName.category(recorded.stream) === CryptoShredding.forgottenCategory &&
        typeof subject === "string"
        ? Result.succeed({ [forgottenSubject]: subject } as unknown as A)
        : model.decode(recorded)
    },
    handle: (table) => (events) =>
      Effect.gen(function* () {
        let run: Array<A> = []
        const flush = Effect.suspend(() => {
          const batch = run
          run = []
          return batch.length === 0 ? Effect.void : model.handle(table)(Stream.fromIterable(batch))
        })
        for (const item of yield* Stream.runCollect(events)) {
          if (!isForgotten(item)) {
            run.push(item)
            continue
          }
          yield* flush
          yield* forget(table, item[forgottenSubject])
        }
        yield* flush
      })
  }
}

/** Defines a read model (an identity that helps TypeScript infer the handler's input). */
export const make = <A, Err = never, R = never>(model: ReadModel<A, Err, R>): ReadModel<A, Err, R> => model

/** What a Postgres read model needs from its context. */
export type Requirements<R> = ProjectionRunner.Requirements<R> | SqlClient.SqlClient

const quoted = Statement.defaultEscape('"')

/** Whether `table` exists, and its comment. */
const lookUp = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      // By the identifier `sql(table)` writes (quoted as is), not by the bare name Postgres would fold.
      sql<{ exists: boolean; comment: string | null }>`
        SELECT to_regclass(${quoted(table)}) IS NOT NULL AS exists,
          obj_description(to_regclass(${quoted(table)}), 'pg_class') AS comment`,
      ([row]) => ({ exists: row?.exists === true, comment: row?.comment ?? null })
    )
  )

/** Creates `table` with the model's `create` and marks it as the model's. */
const createOwned = <A, Err, R>(model: ReadModel<A, Err, R>, table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.andThen(
      model.create(table),
      // COMMENT takes no parameters: the literal is quoted here (a validated name holds no NUL).
      sql.unsafe(`COMMENT ON TABLE ${quoted(table)} IS '${ownerComment(model.name).replaceAll("'", "''")}'`)
    )
  )

/** Drops `table` if it exists and the model created it; fails with `ReadModelNotOwned` if another did. */
const dropOwned = <A, Err, R>(model: ReadModel<A, Err, R>, table: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const found = yield* lookUp(table)
    if (!found.exists) return
    if (found.comment !== ownerComment(model.name)) {
      return yield* new ReadModelNotOwned({ model: model.name, table, comment: found.comment })
    }
    yield* sql`DROP TABLE ${sql(table)}`
  })

const setUpFailed = (model: { readonly name: string }, table: string) => (cause: SqlError.SqlError) =>
  new ReadModelError({ model: model.name, table, cause })

/** Replaces `table` with an empty one the model owns, refusing to drop one it does not. */
const createFresh = <A, Err, R>(
  model: ReadModel<A, Err, R>,
  table: string
): Effect.Effect<void, InvalidReadModel | ReadModelNotOwned | ReadModelError, SqlClient.SqlClient> =>
  Effect.andThen(
    Effect.fromResult(validate(model)),
    Effect.andThen(dropOwned(model, table), createOwned(model, table)).pipe(
      Effect.catchTag("SqlError", (cause) => Effect.fail(setUpFailed(model, table)(cause)))
    )
  )

/**
 * The projection of `model` that writes into `table` (the live table unless given); its reset replaces the table
 * with an empty one, if the model created it (see the module doc).
 */
export const projection = <A, Err, R>(
  model: ReadModel<A, Err, R>,
  table: string = model.table
): Projection.Projection<
  A,
  Err | SqlError.SqlError | InvalidReadModel | ReadModelNotOwned | ReadModelError,
  R | SqlClient.SqlClient
> => {
  const running = withForget(model)
  return Projection.make<
    A,
    Err | SqlError.SqlError | InvalidReadModel | ReadModelNotOwned | ReadModelError,
    R | SqlClient.SqlClient
  >({ ...running, handle: running.handle(table), reset: createFresh(model, table) })
}

/**
 * Runs each batch in a transaction of the `SqlClient` in context (nested ones become savepoints). A transaction that
 * fails by itself (BEGIN or COMMIT fails, or the connection is cut so that it cannot roll back) fails with
 * `LogFollower.TransactionError`, after which the runner restarts from its checkpoint: never a defect, never an
 * event's fault.
 */
export const transaction: Effect.Effect<LogFollower.Transaction, never, SqlClient.SqlClient> = Effect.map(
  SqlClient.SqlClient,
  (sql) => (self) => withTransaction(sql, self, (cause) => new LogFollower.TransactionError({ cause }))
)

/**
 * Creates the model's table if it does not exist yet. Instances starting together take turns (a transaction-scoped
 * advisory lock on the table's name), so only the first creates it and the others see it.
 */
const ensureTable = <A, Err, R>(
  model: ReadModel<A, Err, R>
): Effect.Effect<void, ReadModelError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    withTransaction(
      sql,
      Effect.gen(function* () {
        yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`chronicle_read_model:${model.table}`}))`
        if (!(yield* lookUp(model.table)).exists) yield* createOwned(model, model.table)
      }),
      (cause) => cause
    ).pipe(Effect.mapError((cause) => new ReadModelError({ model: model.name, table: model.table, cause })))
  )

/**
 * Creates the model's table if needed, then starts its runner in the background for as long as the scope is open
 * (see `ProjectionRunner.start`). Fails with `InvalidReadModel` for a name or table that cannot be used, and with
 * `ReadModelError` when the table cannot be set up, as when the database is down at boot or the table's schema is
 * missing; once running, outages only restart the runner.
 */
export const start = <A, Err, R>(
  model: ReadModel<A, Err, R>
): Effect.Effect<
  LogFollower.Handle,
  InvalidReadModel | ReadModelError | LogFollower.InvalidFollowerName,
  Requirements<R> | Lease.Lease | Scope.Scope
> =>
  Effect.gen(function* () {
    yield* Effect.fromResult(validate(model))
    yield* ensureTable(model)
    return yield* ProjectionRunner.start(projection(model), { transaction: yield* transaction })
  })

/** Runs the model's projection for as long as the layer lives: one active runner across instances, by lease. */
export const layer = <A, Err, R>(
  model: ReadModel<A, Err, R>
): Layer.Layer<
  never,
  InvalidReadModel | ReadModelError | LogFollower.InvalidFollowerName,
  Requirements<R> | Lease.Lease
> => Layer.effectDiscard(start(model))

/** The Postgres checkpoints, dead letters and leases that read models run on. */
export const layerServices = (
  options: PgLease.Options = {}
): Layer.Layer<
  CheckpointStore.CheckpointStore | DeadLetters.DeadLetters | Lease.Lease,
  never,
  SqlClient.SqlClient | PgClient.PgClient
> => Layer.mergeAll(PgCheckpointStore.layer, PgDeadLetters.layer, PgLease.layer(options))

/** How many events the model reads after `after` up to `until`: the total of a rebuild's progress. */
const countBetween =
  <A, Err, R>(model: ReadModel<A, Err, R>) =>
  (after: bigint, until: bigint): Effect.Effect<number, EventStore.EventStoreError, SqlClient.SqlClient> =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const filters = [
        sql`global_position > ${after}`,
        sql`global_position <= ${until}`,
        ...(model.categories === undefined ? [] : [sql`category = ANY(${model.categories})`]),
        ...(model.types === undefined ? [] : [sql`type = ANY(${model.types})`])
      ]
      const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM chronicle_events WHERE ${sql.and(filters)}`
      return row?.n ?? 0
    }).pipe(Effect.mapError((cause) => new EventStore.EventStoreError({ operation: "count", cause })))

/**
 * Rebuilds the model aside and swaps it in: replays the whole log into a fresh table with progress, then, in one
 * transaction holding the projection's checkpoint row, applies the events that arrived meanwhile, replaces the live
 * table and sets the checkpoint. Readers never see a half-built model; a failed rebuild drops its table and changes
 * nothing. Returns the position the rebuilt model stands at. Fails with `InvalidReadModel` for a name or table that
 * cannot be used, `ReadModelNotOwned` when the live table (or a table under the shadow's name) was not created by the
 * model, `ReadModelError` when a table cannot be created or swapped in, and as a catch-up does otherwise
 * (`ProjectionFailed` under the `"stop"` policy, the stores' and the transaction's errors, the database down
 * included).
 */
export const rebuild = <A, Err, R>(
  model: ReadModel<A, Err, R>,
  options: { readonly onProgress?: (progress: LogFollower.Progress) => Effect.Effect<void> } = {}
): Effect.Effect<
  bigint,
  LogFollower.CatchUpError | InvalidReadModel | ReadModelNotOwned | ReadModelError,
  Requirements<R>
> =>
  Effect.gen(function* () {
    const table = yield* Effect.fromResult(validate(model))
    const sql = yield* SqlClient.SqlClient
    const checkpoints = yield* CheckpointStore.CheckpointStore
    const suffix = crypto.randomUUID().slice(0, 8)
    const shadow = inSchema(table, `${table.name}_rb_${suffix}`)
    const checkpoint = `${model.name}:rebuild:${suffix}`
    const aside = projection(model, shadow)
    const run = { transaction: yield* transaction, checkpoint }
    const tableFailed = (table: string) => setUpFailed(model, table)
    let created = false
    const cleanUp = Effect.suspend(() =>
      Effect.andThen(
        created ? dropOwned(model, shadow) : Effect.void,
        sql`DELETE FROM chronicle_checkpoints WHERE projection = ${checkpoint}`
      )
    ).pipe(Effect.ignore)

    return yield* Effect.gen(function* () {
      // A table already under the shadow's name is someone else's: it is neither written nor dropped.
      const existing = yield* lookUp(shadow).pipe(Effect.mapError(tableFailed(shadow)))
      if (existing.exists) {
        return yield* new ReadModelNotOwned({ model: model.name, table: shadow, comment: existing.comment })
      }
      created = true
      yield* createOwned(model, shadow).pipe(Effect.mapError(tableFailed(shadow)))
      yield* checkpoints.save(checkpoint, 0n)
      yield* ProjectionRunner.catchUp(aside, { ...run, total: countBetween(withForget(model)), ...options })
      const swap = Effect.gen(function* () {
        // Holding the live checkpoint's row keeps the live runner from committing until the swap is done.
        yield* sql`
          INSERT INTO chronicle_checkpoints (projection, position) VALUES (${model.name}, 0)
          ON CONFLICT (projection) DO NOTHING`.pipe(Effect.mapError(tableFailed(model.table)))
        yield* sql`SELECT position FROM chronicle_checkpoints WHERE projection = ${model.name} FOR UPDATE`.pipe(
          Effect.mapError(tableFailed(model.table))
        )
        const position = yield* ProjectionRunner.catchUp(aside, run)
        yield* Effect.andThen(
          dropOwned(model, model.table),
          sql`ALTER TABLE ${sql(shadow)} RENAME TO ${sql(table.name)}`
        ).pipe(Effect.catchTag("SqlError", (cause) => Effect.fail(tableFailed(model.table)(cause))))
        yield* checkpoints.save(model.name, position)
        yield* sql`DELETE FROM chronicle_checkpoints WHERE projection = ${checkpoint}`.pipe(
          Effect.mapError(tableFailed(model.table))
        )
        return position
      })
      return yield* withTransaction(sql, swap, (cause) => new LogFollower.TransactionError({ cause }))
    }).pipe(Effect.onError(() => cleanUp))
  })

/** The columns of `table` as `name type [NOT NULL]`, in order. */
const columnsOf = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ column: string }>`
        SELECT quote_ident(attname) || ' ' || format_type(atttypid, atttypmod)
          || CASE WHEN attnotnull THEN ' NOT NULL' ELSE '' END AS column
        FROM pg_attribute
        WHERE attrelid = to_regclass(${quoted(table)}) AND attnum > 0 AND NOT attisdropped
        ORDER BY attnum`,
      (rows) => rows.map((row) => row.column)
    )
  )

/**
 * Hands an existing table over to the model, such as one created before tables carried their owner's comment, so that
 * a rebuild or a reset may replace it. It checks that the table is plausibly the model's: the model's `create` makes
 * a scratch table aside (dropped again), and the two must have the same columns, with the same types and
 * nullability. Then it writes the model's `ownerComment` on the table. Succeeds with `true` when it adopted the table,
 * `false` when the model owned it already. Fails with `InvalidReadModel` for a name that cannot be used,
 * `ReadModelMismatch` when the table is missing or its columns differ, `ReadModelNotOwned` when another model's
 * comment is on it, and `ReadModelError` when the database fails; in every failure nothing changes.
 */
export const adopt = <A, Err, R>(
  model: ReadModel<A, Err, R>
): Effect.Effect<
  boolean,
  InvalidReadModel | ReadModelMismatch | ReadModelNotOwned | ReadModelError,
  SqlClient.SqlClient
> =>
  Effect.gen(function* () {
    const table = yield* Effect.fromResult(validate(model))
    const sql = yield* SqlClient.SqlClient
    const scratch = inSchema(table, `${table.name}_rb_${crypto.randomUUID().slice(0, 8)}`)
    const adopting = Effect.gen(function* () {
      yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`chronicle_read_model:${model.table}`}))`
      const found = yield* lookUp(model.table)
      const refuse = (fields: {
        readonly exists: boolean
        readonly missing?: ReadonlyArray<string>
        readonly extra?: ReadonlyArray<string>
      }) => new ReadModelMismatch({ model: model.name, table: model.table, missing: [], extra: [], ...fields })
      if (!found.exists) return yield* refuse({ exists: false })
      if (found.comment === ownerComment(model.name)) return false
      if (found.comment?.startsWith(ownerComment("")) === true) {
        return yield* new ReadModelNotOwned({ model: model.name, table: model.table, comment: found.comment })
      }
      if ((yield* lookUp(scratch)).exists) {
        return yield* new ReadModelNotOwned({ model: model.name, table: scratch, comment: null })
      }
      yield* model.create(scratch)
      const expected = yield* columnsOf(scratch)
      yield* sql`DROP TABLE ${sql(scratch)}`
      const actual = yield* columnsOf(model.table)
      const missing = expected.filter((column) => !actual.includes(column))
      const extra = actual.filter((column) => !expected.includes(column))
      if (missing.length > 0 || extra.length > 0) return yield* refuse({ exists: true, missing, extra })
      yield* sql.unsafe(
        `COMMENT ON TABLE ${quoted(model.table)} IS '${ownerComment(model.name).replaceAll("'", "''")}'`
      )
      return true
    })
    const failed = (cause: unknown) => new ReadModelError({ model: model.name, table: model.table, cause })
    return yield* withTransaction(
      sql,
      adopting.pipe(Effect.catchTag("SqlError", (e) => Effect.fail(failed(e)))),
      failed
    )
  })

/** An inline read model could not be updated, so the append was rolled back. */
const inlineFailure = (stream: string, name: string, cause: unknown) =>
  new EventStore.EventStoreError({ operation: `append (inline projection ${name})`, stream, cause })

/**
 * Wraps the `EventStore` in context so that each append also updates `models` in the same transaction: the models
 * are always consistent with the log, and an append whose model update fails writes nothing. A repeated append
 * (nothing written) updates nothing. A model whose name or table cannot be used fails the layer with
 * `InvalidReadModel`, as `start` does, before any I/O. **Gotcha:** appends made by other instances without this
 * layer, or before it existed, are not in the models: rebuild them once with `rebuild` when you turn a model inline.
 */
export const layerInline = (
  models: ReadonlyArray<ReadModel<any, unknown, SqlClient.SqlClient>>
): Layer.Layer<EventStore.EventStore, InvalidReadModel, EventStore.EventStore | SqlClient.SqlClient> =>
  Layer.effect(
    EventStore.EventStore,
    Effect.gen(function* () {
      for (const model of models) yield* Effect.fromResult(validate(model))
      const store = yield* EventStore.EventStore
      const sql = yield* SqlClient.SqlClient
      const append = (
        stream: string,
        events: ReadonlyArray<Envelope.EventData>,
        expected: ExpectedVersion.ExpectedVersion
      ) =>
        sql
          .withTransaction(
            Effect.gen(function* () {
              const result = yield* store.append(stream, events, expected)
              if (result.written === 0) return result
              const recordedAt = new Date()
              // One append writes consecutive versions and positions, ending at the ones it reports.
              const recorded = events.map(
                (event, index): Envelope.RecordedEvent => ({
                  ...event,
                  eventId: event.eventId.toLowerCase(),
                  stream,
                  version: result.version - events.length + 1 + index,
                  position: result.position - BigInt(events.length - 1 - index),
                  recordedAt
                })
              )
              for (const model of models.map(withForget)) {
                const reads = recorded.filter((event) => EventStore.matches(Projection.readOptions(model, 0n), event))
                if (reads.length > 0) {
                  yield* Effect.forEach(reads, (event) => Effect.fromResult(model.decode(event))).pipe(
                    Effect.flatMap((decoded) => model.handle(model.table)(Stream.fromIterable(decoded))),
                    Effect.mapError((cause) => inlineFailure(stream, model.name, cause))
                  )
                }
              }
              return result
            })
          )
          .pipe(
            Effect.catchTag("SqlError", (cause) => Effect.fail(inlineFailure(stream, "commit", cause))),
            Effect.provideService(SqlClient.SqlClient, sql)
          )
      return { ...store, append }
    })
  )
