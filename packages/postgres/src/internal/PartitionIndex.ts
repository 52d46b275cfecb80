/**
 * The opt-in partition index, `(chronicle_stream_bucket(stream_id), global_position)`: its name and definition, shared
 * by the migration that keeps it for databases already partitioned, `PgMigrations.partitionIndex` that creates it, and
 * the store, which reads a partition by it when it exists and valid.
 */

/** The index's name. */
export const name = "chronicle_events_stream_bucket"

/** The statement that creates it if missing, `CONCURRENTLY` (outside a transaction) or not (inside one). */
export const create = (concurrently: boolean): string =>
  `CREATE INDEX ${concurrently ? "CONCURRENTLY " : ""}IF NOT EXISTS ${name}
     ON chronicle_events (chronicle_stream_bucket(stream_id), global_position)`

/** Whether the index exists (`null` when it does not), and whether it is valid: not a build in progress or failed. */
export const state = `
  SELECT (SELECT i.indisvalid AND i.indisready FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE c.relname = '${name}' AND i.indrelid = 'chronicle_events'::regclass) AS valid`
