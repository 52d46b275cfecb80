/**
 * Postgres read models: a projection whose handler writes into a table of the database that holds the checkpoints.
 * Each batch's writes, its checkpoint advance and any dead letter commit in one transaction, so a crash anywhere
 * leaves the model and the checkpoint in step: nothing lost, nothing applied twice.
 *
 * A read model names its table and says how to create an empty one under any name, so `rebuild` can build a fresh
 * copy aside (`<table>_rebuild_<random>`), replay the whole log into it with progress, and swap it in with one
 * transaction that locks the projection's checkpoint row, applies what arrived meanwhile, drops the old table,
 * renames the new one and sets the checkpoint. Readers see the old model until the swap commits; the live runner's
 * next batch then finds its checkpoint moved, rolls back, and resumes from the swapped-in position.
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

/** A read model kept in a Postgres table. */
export interface ReadModel<A, Err = never, R = never> {
  /** The projection's name: the key of its checkpoint, lease and dead letters. */
  readonly name: string
  /** The table readers query. */
  readonly table: string
  /** Only events of streams in these categories; every category unless set. */
  readonly categories?: ReadonlyArray<string>
  /** Only events of these types; every type unless set. */
  readonly types?: ReadonlyArray<string>
  /** Turns a recorded event into what the handler sees; a failure goes through the failure policy. */
  readonly decode: (recorded: Envelope.RecordedEvent) => Result.Result<A, EventCodec.EventDecodeError>
  /** Creates an empty table named `table` (the live name, or a rebuild's), with its indexes. */
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

const createFresh = <A, Err, R>(model: ReadModel<A, Err, R>, table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.andThen(sql`DROP TABLE IF EXISTS ${sql(table)}`, model.create(table))
  )

/** The projection of `model` that writes into `table` (the live table unless given); its reset recreates the table. */
export const projection = <A, Err, R>(
  model: ReadModel<A, Err, R>,
  table: string = model.table
): Projection.Projection<A, Err | SqlError.SqlError, R | SqlClient.SqlClient> => {
  const running = withForget(model)
  return Projection.make({ ...running, handle: running.handle(table), reset: createFresh(model, table) })
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

const quoted = Statement.defaultEscape('"')

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
        // Looked up by the identifier `sql(table)` writes (quoted as is), not by the bare name Postgres would fold.
        const [row] = yield* sql<{ exists: boolean }>`SELECT to_regclass(${quoted(model.table)}) IS NOT NULL AS exists`
        if (row?.exists !== true) yield* model.create(model.table)
      }),
      (cause) => cause
    ).pipe(Effect.mapError((cause) => new ReadModelError({ model: model.name, table: model.table, cause })))
  )

/**
 * Creates the model's table if needed, then starts its runner in the background for as long as the scope is open
 * (see `ProjectionRunner.start`). Fails with `ReadModelError` when the table cannot be set up, as when the database
 * is down at boot; once running, outages only restart the runner.
 */
export const start = <A, Err, R>(
  model: ReadModel<A, Err, R>
): Effect.Effect<LogFollower.Handle, ReadModelError, Requirements<R> | Lease.Lease | Scope.Scope> =>
  Effect.gen(function* () {
    yield* ensureTable(model)
    return yield* ProjectionRunner.start(projection(model), { transaction: yield* transaction })
  })

/** Runs the model's projection for as long as the layer lives: one active runner across instances, by lease. */
export const layer = <A, Err, R>(
  model: ReadModel<A, Err, R>
): Layer.Layer<never, ReadModelError, Requirements<R> | Lease.Lease> => Layer.effectDiscard(start(model))

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
 * nothing. Returns the position the rebuilt model stands at. Fails with `ReadModelError` when a table cannot be
 * created or swapped in, and as a catch-up does otherwise (`ProjectionFailed` under the `"stop"` policy, the stores'
 * and the transaction's errors, the database down included).
 */
export const rebuild = <A, Err, R>(
  model: ReadModel<A, Err, R>,
  options: { readonly onProgress?: (progress: LogFollower.Progress) => Effect.Effect<void> } = {}
): Effect.Effect<bigint, LogFollower.CatchUpError | ReadModelError, Requirements<R>> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const checkpoints = yield* CheckpointStore.CheckpointStore
    const suffix = crypto.randomUUID().slice(0, 8)
    const shadow = `${model.table}_rebuild_${suffix}`
    const checkpoint = `${model.name}:rebuild:${suffix}`
    const aside = projection(model, shadow)
    const run = { transaction: yield* transaction, checkpoint }
    const tableFailed = (table: string) => (cause: SqlError.SqlError) =>
      new ReadModelError({ model: model.name, table, cause })
    const cleanUp = Effect.andThen(
      sql`DROP TABLE IF EXISTS ${sql(shadow)}`,
      sql`DELETE FROM chronicle_checkpoints WHERE projection = ${checkpoint}`
    ).pipe(Effect.ignore)

    return yield* Effect.gen(function* () {
      yield* createFresh(model, shadow).pipe(Effect.mapError(tableFailed(shadow)))
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
          sql`DROP TABLE IF EXISTS ${sql(model.table)}`,
          sql`ALTER TABLE ${sql(shadow)} RENAME TO ${sql(model.table)}`
        ).pipe(Effect.mapError(tableFailed(model.table)))
        yield* checkpoints.save(model.name, position)
        yield* sql`DELETE FROM chronicle_checkpoints WHERE projection = ${checkpoint}`.pipe(
          Effect.mapError(tableFailed(model.table))
        )
        return position
      })
      return yield* withTransaction(sql, swap, (cause) => new LogFollower.TransactionError({ cause }))
    }).pipe(Effect.onError(() => cleanUp))
  })

/** An inline read model could not be updated, so the append was rolled back. */
const inlineFailure = (stream: string, name: string, cause: unknown) =>
  new EventStore.EventStoreError({ operation: `append (inline projection ${name})`, stream, cause })

/**
 * Wraps the `EventStore` in context so that each append also updates `models` in the same transaction: the models
 * are always consistent with the log, and an append whose model update fails writes nothing. A repeated append
 * (nothing written) updates nothing. **Gotcha:** appends made by other instances without this layer, or before it
 * existed, are not in the models: rebuild them once with `rebuild` when you turn a model inline.
 */
export const layerInline = (
  models: ReadonlyArray<ReadModel<any, unknown, SqlClient.SqlClient>>
): Layer.Layer<EventStore.EventStore, never, EventStore.EventStore | SqlClient.SqlClient> =>
  Layer.effect(
    EventStore.EventStore,
    Effect.gen(function* () {
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
