/**
 * The shop's funnel, the analysis the original notes give as the third reason to keep a log: how many carts were
 * opened, had items added, had items removed, and were checked out; which products shoppers most often took back
 * out of carts they then checked out; and how long they took from their first item to checkout. Times are the
 * shopper's (`occurredAt` in the event's metadata), or when the store recorded the event if it has none.
 *
 * It is answered two ways, which must agree. `model` is an analytical read model in DuckDB, a projection updated as
 * events arrive (the notes' materialised view): per cart and batch its first add, counts and checkout time, plus one
 * row per removal. `fromExport` runs ad hoc SQL over an export of the log (the `chronicle export` Parquet file), computing the
 * same tables from the raw events. Both end in the same three queries, so they agree exactly when their tables do.
 *
 * **Gotchas**: in this cart a stream's first event is always an `ItemAdded` (a cart exists once something is in
 * it), so the first two steps of the funnel are equal here; they differ for a domain with a `CartOpened` event.
 */
import { Projection, StreamName } from "@chronicle/core"
import type { DuckDBValue } from "@duckdb/node-api"
import { Effect, Stream } from "effect"
import { Cart } from "./Cart.ts"
import { DuckDb, type DuckDbError } from "./DuckDb.ts"

/** How many carts reached each step. */
export interface Funnel {
  readonly opened: number
  readonly added: number
  readonly removed: number
  readonly checkedOut: number
}

/** A product taken back out of carts that were then checked out: how many times, and how many units. */
export interface Removed {
  readonly sku: string
  readonly removals: number
  readonly units: number
}

/** Time from the first item added to checkout, over the checked-out carts, in seconds (rounded to 0.1 s). */
export interface TimeToCheckout {
  readonly carts: number
  readonly medianSeconds: number | null
  readonly meanSeconds: number | null
}

/** The whole analysis. */
export interface Report {
  readonly funnel: Funnel
  readonly topRemoved: ReadonlyArray<Removed>
  readonly timeToCheckout: TimeToCheckout
}

// Append-only, as a ClickHouse materialised view is: each batch appends one partial row per cart it touched (with
// the cart's first position in the batch) and one row per removal; queries merge the partial rows. DuckDB appends
// fast and aggregates fast, while an upsert per cart costs it an index lookup per row.
const tables = `
  CREATE TABLE IF NOT EXISTS cart_funnel_carts (
    cart_id VARCHAR NOT NULL, position BIGINT NOT NULL, first_added_ms BIGINT, added INTEGER NOT NULL,
    removed INTEGER NOT NULL, checked_out_ms BIGINT);
  CREATE TABLE IF NOT EXISTS cart_funnel_removals (cart_id VARCHAR NOT NULL, sku VARCHAR NOT NULL, units INTEGER NOT NULL)`

/** Creates the model's tables if they do not exist. */
export const create: Effect.Effect<void, DuckDbError, DuckDb> = Effect.flatMap(DuckDb, (duck) => duck.run(tables))

const decode = Projection.decodeWith(Cart.events)

const timeOf = (envelope: { readonly metadata: { readonly [field: string]: unknown }; readonly recordedAt: Date }) => {
  const occurredAt = envelope.metadata["occurredAt"]
  return typeof occurredAt === "string" ? Date.parse(occurredAt) : envelope.recordedAt.getTime()
}

/** A cart's part of one batch. */
interface Partial {
  readonly position: bigint
  firstAdded: number | null
  added: number
  removed: number
  checkedOut: number | null
}

/** The analytical read model: each batch folded per cart in memory, then appended. */
export const model = Projection.make({
  name: "cart-funnel",
  categories: [Cart.category],
  decode,
  reset: Effect.flatMap(DuckDb, (duck) =>
    Effect.andThen(
      duck.run("DROP TABLE IF EXISTS cart_funnel_carts; DROP TABLE IF EXISTS cart_funnel_removals"),
      create
    )
  ),
  handle: (events) =>
    Effect.gen(function* () {
      const duck = yield* DuckDb
      const carts = new Map<string, Partial>()
      const removals: Array<ReadonlyArray<DuckDBValue>> = []
      yield* Stream.runForEach(events, (envelope) =>
        Effect.sync(() => {
          const cart = StreamName.id(envelope.stream)
          const row = carts.get(cart) ?? {
            position: envelope.position,
            firstAdded: null,
            added: 0,
            removed: 0,
            checkedOut: null
          }
          carts.set(cart, row)
          const { event } = envelope
          switch (event._tag) {
            case "ItemAdded":
              row.firstAdded ??= timeOf(envelope)
              row.added += 1
              return
            case "ItemRemoved":
              row.removed += 1
              removals.push([cart, event.sku, event.quantity])
              return
            case "CheckedOut":
              row.checkedOut ??= timeOf(envelope)
          }
        })
      )
      const partials = [...carts].map(([cart, row]) => [
        cart,
        row.position,
        row.firstAdded === null ? null : BigInt(row.firstAdded),
        row.added,
        row.removed,
        row.checkedOut === null ? null : BigInt(row.checkedOut)
      ])
      yield* duck.append("cart_funnel_carts", partials)
      yield* duck.append("cart_funnel_removals", removals)
    })
})

/** The report from tables `carts` and `removals` (of the model, or computed from an export). */
const reportFrom = (duck: DuckDb["Service"], prefix: string, values: ReadonlyArray<DuckDBValue>, top: number) =>
  Effect.gen(function* () {
    const [funnel] = yield* duck.query<Funnel>(
      `${prefix}
       SELECT count(*)::INTEGER AS opened, count(*) FILTER (WHERE added > 0)::INTEGER AS added,
              count(*) FILTER (WHERE removed > 0)::INTEGER AS removed,
              count(*) FILTER (WHERE checked_out_ms IS NOT NULL)::INTEGER AS "checkedOut"
       FROM carts`,
      values
    )
    const topRemoved = yield* duck.query<Removed>(
      `${prefix}
       SELECT r.sku, count(*)::INTEGER AS removals, sum(r.units)::INTEGER AS units
       FROM removals r JOIN carts c USING (cart_id) WHERE c.checked_out_ms IS NOT NULL
       GROUP BY r.sku ORDER BY removals DESC, units DESC, r.sku LIMIT ${top}`,
      values
    )
    const [timeToCheckout] = yield* duck.query<TimeToCheckout>(
      `${prefix}
       SELECT count(*)::INTEGER AS carts,
              round(median((checked_out_ms - first_added_ms) / 1000.0), 1)::DOUBLE AS "medianSeconds",
              round(avg((checked_out_ms - first_added_ms) / 1000.0), 1)::DOUBLE AS "meanSeconds"
       FROM carts WHERE checked_out_ms IS NOT NULL`,
      values
    )
    return { funnel: funnel!, topRemoved, timeToCheckout: timeToCheckout! } satisfies Report
  })

/** The report from the analytical read model, with the `top` most removed products. */
export const fromModel = (top = 5): Effect.Effect<Report, DuckDbError, DuckDb> =>
  Effect.flatMap(DuckDb, (duck) =>
    reportFrom(
      duck,
      `WITH carts AS (
         SELECT cart_id,
                arg_min(first_added_ms, position) FILTER (WHERE first_added_ms IS NOT NULL) AS first_added_ms,
                sum(added) AS added, sum(removed) AS removed,
                arg_min(checked_out_ms, position) FILTER (WHERE checked_out_ms IS NOT NULL) AS checked_out_ms
         FROM cart_funnel_carts GROUP BY cart_id),
       removals AS (SELECT * FROM cart_funnel_removals)`,
      [],
      top
    )
  )

/**
 * The report by ad hoc SQL over a Parquet export of the log (`chronicle export --format parquet`): the per-cart table
 * and the removals are computed from the raw events of category `cart`.
 */
export const fromExport = (file: string, top = 5): Effect.Effect<Report, DuckDbError, DuckDb> =>
  Effect.flatMap(DuckDb, (duck) =>
    reportFrom(
      duck,
      `WITH events AS (
         SELECT stream AS cart_id, type, data, position,
                coalesce(epoch_ms((metadata->>'occurredAt')::TIMESTAMPTZ), epoch_ms(recorded_at)) AS at_ms
         FROM read_parquet(?) WHERE category = 'cart'),
       carts AS (
         SELECT cart_id,
                arg_min(at_ms, position) FILTER (WHERE type = 'ItemAdded') AS first_added_ms,
                count(*) FILTER (WHERE type = 'ItemAdded') AS added,
                count(*) FILTER (WHERE type = 'ItemRemoved') AS removed,
                arg_min(at_ms, position) FILTER (WHERE type = 'CheckedOut') AS checked_out_ms
         FROM events GROUP BY cart_id),
       removals AS (
         SELECT cart_id, data->>'sku' AS sku, (data->>'quantity')::INTEGER AS units FROM events WHERE type = 'ItemRemoved')`,
      [file],
      top
    )
  )
