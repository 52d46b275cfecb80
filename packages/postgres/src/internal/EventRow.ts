/** A row of `chronicle_events` as the driver returns it, the columns to select for it, and its `RecordedEvent`. */
import type { Envelope } from "@chronicle/core"

/** The columns of `chronicle_events` that make a `RecordedEvent`, as selected by `selectColumns`. */
export interface EventRow {
  readonly global_position: bigint
  readonly stream_id: string
  readonly version: number
  readonly event_id: string
  readonly type: string
  readonly schema_version: number
  readonly data: never
  readonly metadata: Envelope.Metadata
  readonly recorded_at: Date
}

/** The select list for an `EventRow`, of the table aliased `alias` when given. */
export const selectColumns = (alias?: string): string => {
  const of = alias === undefined ? "" : `${alias}.`
  const columns = ["global_position", "stream_id", "version", "event_id::text AS event_id", "type", "schema_version"]
  return [...columns, "data", "metadata", "recorded_at"].map((column) => `${of}${column}`).join(", ")
}

/** The recorded event a row holds. */
export const toRecorded = (row: EventRow): Envelope.RecordedEvent => ({
  eventId: row.event_id,
  type: row.type,
  schemaVersion: row.schema_version,
  data: row.data,
  metadata: row.metadata,
  stream: row.stream_id,
  version: row.version,
  position: row.global_position,
  recordedAt: row.recorded_at
})
