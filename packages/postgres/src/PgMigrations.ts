/**
 * Chronicle's Postgres schema, shipped as migrations in code. `run` applies the pending ones in id order inside one
 * transaction under a table lock, so several app instances may call it at once; re-running it is a no-op. Each
 * package feature adds its tables as a new numbered entry; never edit an entry that has shipped. It creates
 * tables only: rewriting stored events to their current version is `PgEventUpgrade`.
 */
import { Effect, Layer } from "effect"
import { Migrator, SqlClient, type SqlError } from "effect/sql"

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
 * the generated column rewrites the events table once.
 */
const partitions = statements(
  `ALTER TABLE chronicle_events ADD COLUMN stream_hash integer
     GENERATED ALWAYS AS (('x' || substr(md5(stream_id), 1, 8))::bit(32)::int) STORED`,
  `CREATE INDEX chronicle_events_stream_bucket ON chronicle_events ((stream_hash & 15), global_position)`,
  `ALTER TABLE chronicle_checkpoints ADD COLUMN owner_epoch bigint NOT NULL DEFAULT 0`
)

/** Every migration, by `<id>_<name>`. */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "1_events": Effect.flatMap(SqlClient.SqlClient, events),
  "2_snapshots": Effect.flatMap(SqlClient.SqlClient, snapshots),
  "3_evolution_and_keys": Effect.flatMap(SqlClient.SqlClient, evolutionAndKeys),
  "4_projections": Effect.flatMap(SqlClient.SqlClient, projections),
  "5_inbox": Effect.flatMap(SqlClient.SqlClient, inbox),
  "6_key_rotation": Effect.flatMap(SqlClient.SqlClient, keyRotation),
  "7_partitions": Effect.flatMap(SqlClient.SqlClient, partitions)
}

/** Applies the pending migrations; returns the ids and names applied now (none when the schema is current). */
export const run = Migrator.make({})({
  table: "chronicle_migrations",
  loader: Migrator.fromRecord(migrations)
})

/** Applies the pending migrations when the layer is built. */
export const layer: Layer.Layer<never, Migrator.MigrationError | SqlError.SqlError, SqlClient.SqlClient> =
  Layer.effectDiscard(run)
