/**
 * A prototype of a faster append, measured beside the same raw INSERT as `EventStore.append`, to show what the
 * proposed change to `PgEventStore` would gain. It writes to Chronicle's own table with its constraints and keeps
 * the contract's checks for the two expectations the hot path uses (no stream, an exact version), but:
 * - outside a transaction the append is the only statement of its transaction, so the first position is the
 *   transaction's base (`xid << 20`) without looking up the transaction's slot;
 * - `noStream` is checked by the `(stream_id, version)` unique index alone (version 1 exists iff the stream does),
 *   and `exact(n)` by one probe for version n plus that index, instead of reading the stream's `max(version)`;
 * - the events are a `VALUES` list of scalar parameters instead of `unnest` over arrays cast to `jsonb[]`;
 * - no `pg_notify` transaction follows each append (the store's notifier sends one after almost every append).
 * A failed insert (unique violation or no row) would go through the store's existing resolution; the bench never
 * provokes one, so the prototype simply fails.
 */
import { type Envelope, EventStore, ExpectedVersion, StreamName } from "@chronicle/core"
import type { PgClient } from "@effect/sql-pg"
import { Effect } from "effect"
import * as Bench from "./Bench.ts"
import * as EventStoreBench from "./eventStore.ts"

/** The prototype statement for `count` events: `$1` stream, `$2` category, `$3` expected version, then 5 per event. */
export const statement = (count: number) => `
  INSERT INTO chronicle_events (global_position, stream_id, category, version, event_id, type, schema_version, data, metadata)
  SELECT (pg_current_xact_id()::text::bigint << 20) + e.o, $1, $2, $3::int4 + e.o + 1, e.id, e.type, e.sv, e.data, e.md
  FROM (VALUES ${Array.from(
    { length: count },
    (_, i) =>
      `(${i}, $${4 + i * 5}::uuid, $${5 + i * 5}::text, $${6 + i * 5}::int4, $${7 + i * 5}::jsonb, $${8 + i * 5}::jsonb)`
  ).join(", ")}) AS e(o, id, type, sv, data, md)
  WHERE $3::int4 = 0 OR EXISTS (SELECT 1 FROM chronicle_events WHERE stream_id = $1 AND version = $3::int4)
  RETURNING global_position, version`

const statements = new Map<number, string>()

/** Appends with the prototype statement; only `noStream` and `exact`, only outside a transaction. */
const append = (
  sql: PgClient.PgClient,
  stream: string,
  events: ReadonlyArray<Envelope.EventData>,
  expected: ExpectedVersion.ExpectedVersion
) =>
  Effect.gen(function* () {
    const prepared = yield* Effect.fromResult(EventStore.prepareAppend(stream, events))
    const params: Array<unknown> = [
      stream,
      StreamName.category(stream),
      expected._tag === "Exact" ? expected.version : 0
    ]
    for (const { event, dataJson, metadataJson } of prepared) {
      params.push(event.eventId, event.type, event.schemaVersion, dataJson, metadataJson)
    }
    let text = statements.get(prepared.length)
    if (text === undefined) statements.set(prepared.length, (text = statement(prepared.length)))
    const rows = yield* sql.unsafe<{ global_position: bigint; version: number }>(text, params)
    const last = rows.at(-1)
    if (last === undefined) return yield* Effect.die(new Error(`prototype append to ${stream} wrote nothing`))
    return { stream, version: last.version, position: last.global_position, written: rows.length }
  })

/** The prototype beside the raw INSERT, at concurrency 8 (the design's target) and 32. */
export const section: Bench.Section = {
  name: "eventstore.prototype",
  title: "Prototype: the proposed append statement (no slot lookup, no max(version), no per-append NOTIFY)",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { reps, seconds } = EventStoreBench.sizes(quick)
      const { sql } = yield* EventStoreBench.setup
      const appendNew = () =>
        Effect.as(
          append(sql, EventStoreBench.newStream("proto"), EventStoreBench.events(1), ExpectedVersion.noStream),
          1
        )
      yield* Bench.throughput(32, seconds / 2, appendNew)
      yield* Bench.throughput(32, seconds / 2, () => EventStoreBench.rawInsertOne(sql))
      const rows: Array<Bench.Row> = []
      for (const concurrency of [8, 32]) {
        const result = yield* Bench.interleave({
          label: `prototype, concurrency ${concurrency}`,
          measure: Bench.eventsPerSecond,
          reps,
          ours: Bench.throughput(concurrency, seconds, appendNew),
          raw: Bench.throughput(concurrency, seconds, () => EventStoreBench.rawInsertOne(sql))
        })
        rows.push(
          Bench.row({
            figure: `(prototype) append 1 event to a new stream, concurrency ${concurrency}`,
            measure: Bench.eventsPerSecond,
            ...result,
            baseline: `INSERT 1 row, concurrency ${concurrency}`,
            ...(concurrency === 8 ? { target: 0.8 } : {})
          })
        )
      }
      return rows
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}
