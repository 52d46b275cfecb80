/**
 * Chronicle's Postgres schema, shipped as migrations in code. `run` applies the pending ones in id order inside one
 * transaction under a table lock, so several app instances may call it at once; re-running it is a no-op. Each
 * package feature adds its tables as a new numbered entry; never edit an entry that has shipped. It creates
 * tables only: rewriting stored events to their current version is `PgEventUpgrade`. `partitionIndex`, run after
 * the migrations, adds the opt-in index that apps reading partitions need.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Schedule } from "effect"
import { Reactivity } from "effect/reactivity"
import { Migrator, SqlClient, type SqlError } from "effect/sql"
import * as PartitionIndex from "./internal/PartitionIndex.ts"

const statements =
  (...parts: ReadonlyArray<string>) =>
  (sql: SqlClient.SqlClient) =>
    Effect.forEach(parts, (part) => sql.unsafe(part), { discard: true })

/**
 * The events table. `global_position` is `(writer's transaction id << 20) + ordinal`, so positions increase in the
 * order in which transactions start writing, and a reader that stops below the oldest running transaction
 * (`pg_snapshot_xmin`) can never skip an event that commits late (see PgEventStore). Stream names, categories and
 * types are identifiers compared byte by byte (`COLLATE "C"`): their indexes skip the locale's collation rules.
 */
const events = statements(
  `CREATE TABLE chronicle_events (
     global_position bigint PRIMARY KEY,
     stream_id text COLLATE "C" NOT NULL,
     category text COLLATE "C" NOT NULL,
     version integer NOT NULL,
     event_id uuid NOT NULL,
     type text COLLATE "C" NOT NULL,
     schema_version integer NOT NULL,
     data jsonb NOT NULL,
     metadata jsonb NOT NULL,
     recorded_at timestamptz NOT NULL DEFAULT now(),
     CONSTRAINT chronicle_events_stream_version UNIQUE (stream_id, version),
     CONSTRAINT chronicle_events_event_id UNIQUE (event_id)
   )`,
  `CREATE INDEX chronicle_events_category ON chronicle_events (category, global_position)`
)

/** The latest snapshot of each stream (see PgSnapshotStore): one row per stream, replaced by each save. */
const snapshots = statements(
  `CREATE TABLE chronicle_snapshots (
     stream_id text COLLATE "C" PRIMARY KEY,
     version integer NOT NULL,
     event_id uuid NOT NULL,
     fingerprint text NOT NULL,
     state jsonb NOT NULL,
     saved_at timestamptz NOT NULL DEFAULT now()
   )`
)

/**
 * Event evolution and privacy: the original rows an event upgrade rewrote (see PgEventUpgrade), and one data key
 * per subject, wrapped under the master key; a forgotten subject keeps its row with the key deleted (PgKeyStore).
 */
const evolutionAndKeys = statements(
  `CREATE TABLE chronicle_events_archive (
     global_position bigint NOT NULL,
     stream_id text COLLATE "C" NOT NULL,
     version integer NOT NULL,
     event_id uuid NOT NULL,
     type text COLLATE "C" NOT NULL,
     schema_version integer NOT NULL,
     data jsonb NOT NULL,
     metadata jsonb NOT NULL,
     recorded_at timestamptz NOT NULL,
     migrated_to integer NOT NULL,
     archived_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (global_position, schema_version)
   )`,
  `CREATE TABLE chronicle_keys (
     subject text PRIMARY KEY,
     wrapped_key text,
     created_at timestamptz NOT NULL DEFAULT now(),
     forgotten_at timestamptz
   )`
)

/**
 * Projections: one checkpoint row per projection (see PgCheckpointStore) and the events parked by projections whose
 * failure policy is to park and go on (see PgDeadLetters).
 */
const projections = statements(
  `CREATE TABLE chronicle_checkpoints (
     projection text PRIMARY KEY,
     position bigint NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now()
   )`,
  `CREATE TABLE chronicle_dead_letters (
     projection text NOT NULL,
     global_position bigint NOT NULL,
     event_id uuid NOT NULL,
     stream_id text COLLATE "C" NOT NULL,
     version integer NOT NULL,
     type text COLLATE "C" NOT NULL,
     error text NOT NULL,
     parked_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (projection, global_position)
   )`
)

/** The inbox: which events each consumer has handled (see PgInbox); the primary key rejects a second record. */
const inbox = statements(
  `CREATE TABLE chronicle_inbox (
     consumer text NOT NULL,
     event_id uuid NOT NULL,
     handled_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (consumer, event_id)
   )`
)

/**
 * Key rotation and key caching (see PgKeyStore): which master key wraps each data key, so a rotation can resume, and
 * a counter that every `forget` bumps in its transaction, so a process knows when its cached keys may be stale.
 */
const keyRotation = statements(
  `ALTER TABLE chronicle_keys ADD COLUMN master_key_id text`,
  `CREATE TABLE chronicle_key_epoch (
     id boolean PRIMARY KEY DEFAULT true CHECK (id),
     epoch bigint NOT NULL
   )`,
  `INSERT INTO chronicle_key_epoch (epoch) VALUES (0)`
)

/**
 * Partitions (see `Partition` in core and PgEventStore): each event's stream hash, stored as a generated column, and
 * an index on its bucket (the hash's low 4 bits) and position, so a partition's read scans only its own buckets; and
 * an owner epoch per checkpoint, which `claim` bumps and a fenced `advance` compares (see PgCheckpointStore). Adding
 * the generated column rewrites the events table once. `8_partition_index_opt_in` drops the column and its index.
 */
const partitions = statements(
  `ALTER TABLE chronicle_events ADD COLUMN stream_hash integer
     GENERATED ALWAYS AS (('x' || substr(md5(stream_id), 1, 8))::bit(32)::int) STORED`,
  `CREATE INDEX chronicle_events_stream_bucket ON chronicle_events ((stream_hash & 15), global_position)`,
  `ALTER TABLE chronicle_checkpoints ADD COLUMN owner_epoch bigint NOT NULL DEFAULT 0`
)

/**
 * The partition index, opt-in: partitions read their buckets by `chronicle_stream_bucket(stream_id)`, an immutable
 * function equal to core's `Partition.bucketOf` (the low 4 bits of the first four bytes of the name's MD5), so no event
 * pays for a stored hash or a fifth index unless the app reads partitions (see `partitionIndex`). Dropping the stored
 * column of `7_partitions` only marks it dropped in the catalog: the table is not rewritten. A database whose
 * checkpoints show partitioned followers (`name#index/count`) keeps its partition index, rebuilt on the function,
 * so an upgrade never slows a partitioned app; appends and reads wait for that build (the table stays locked until
 * the migrations commit).
 */
const partitionIndexOptIn = statements(
  `DROP INDEX chronicle_events_stream_bucket`,
  `ALTER TABLE chronicle_events DROP COLUMN stream_hash`,
  `CREATE FUNCTION chronicle_stream_bucket(stream text) RETURNS integer
     LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT ('x' || substr(md5(stream), 1, 8))::bit(32)::int & 15 $$`,
  `DO $$ BEGIN
     IF EXISTS (SELECT 1 FROM chronicle_checkpoints WHERE projection ~ '#[0-9]+/[0-9]+$') THEN
       ${PartitionIndex.create(false)};
     END IF;
   END $$`
)

/** Every migration, by `<id>_<name>`. */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "1_events": Effect.flatMap(SqlClient.SqlClient, events),
  "2_snapshots": Effect.flatMap(SqlClient.SqlClient, snapshots),
  "3_evolution_and_keys": Effect.flatMap(SqlClient.SqlClient, evolutionAndKeys),
  "4_projections": Effect.flatMap(SqlClient.SqlClient, projections),
  "5_inbox": Effect.flatMap(SqlClient.SqlClient, inbox),
  "6_key_rotation": Effect.flatMap(SqlClient.SqlClient, keyRotation),
  "7_partitions": Effect.flatMap(SqlClient.SqlClient, partitions),
  "8_partition_index_opt_in": Effect.flatMap(SqlClient.SqlClient, partitionIndexOptIn)
}

/** Applies the pending migrations; returns the ids and names applied now (none when the schema is current). */
export const run = Migrator.make({})({
  table: "chronicle_migrations",
  loader: Migrator.fromRecord(migrations)
})

/** Applies the pending migrations when the layer is built. */
export const layer: Layer.Layer<never, Migrator.MigrationError | SqlError.SqlError, SqlClient.SqlClient> =
  Layer.effectDiscard(run)

/**
 * The class of the session advisory lock (`pg_try_advisory_lock(class, 0)`) under which one instance at a time builds
 * the partition index; the two-key form keeps it apart from the one-key locks of leases and read models.
 */
const partitionIndexLockClass = 1_667_787_375

/**
 * Creates the partition index if it is missing, for apps that read partitions (`readAll({ partition })`,
 * PartitionedFollower): `CREATE INDEX CONCURRENTLY`, so appends go on while it builds. Run it after the migrations,
 * outside a transaction. It builds on a connection of its own under an advisory lock, so several instances may run it
 * at once: one builds, the others wait for it and find the index made; an invalid index that a failed or killed
 * build left is dropped and built again. Without the index partition reads are still exact, but each scans the log.
 */
export const partitionIndex: Effect.Effect<void, SqlError.SqlError, PgClient.PgClient> = Effect.scoped(
  Effect.gen(function* () {
    const { config } = yield* PgClient.PgClient
    const connection = yield* PgClient.makeClient({ ...config, applicationName: "chronicle partition index" }).pipe(
      Effect.provideService(Reactivity.Reactivity, yield* Reactivity.make)
    )
    // Short tries rather than a blocking wait: a waiting statement's snapshot would hold back the build it waits for.
    yield* connection<{ locked: boolean }>`SELECT pg_try_advisory_lock(${partitionIndexLockClass}, 0) AS locked`.pipe(
      Effect.repeat({ schedule: Schedule.spaced("200 millis"), until: ([row]) => row?.locked === true })
    )
    // Under the lock no other build runs: an index that is not valid is what a failed one left.
    const [index] = yield* connection.unsafe<{ valid: boolean | null }>(PartitionIndex.state)
    if (index?.valid === false) yield* connection.unsafe(`DROP INDEX CONCURRENTLY ${PartitionIndex.name}`)
    yield* connection.unsafe(PartitionIndex.create(true))
  })
)
