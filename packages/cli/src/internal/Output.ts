/** Printing results: aligned text tables for people, JSON documents for scripts (`--json`). */
import { Console, type Effect } from "effect"

/** JSON text of a result: bigints as strings (positions pass 2^53), Maps as objects, Dates as ISO strings. */
export const toJson = (value: unknown, indent?: number): string =>
  JSON.stringify(
    value,
    (_key, v: unknown) =>
      typeof v === "bigint" ? String(v) : v instanceof Map ? Object.fromEntries(v) : v instanceof Set ? [...v] : v,
    indent
  )

/** Rows as columns padded to their widest cell; the last column is not padded. */
export const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths: Array<number> = []
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length)
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}

/** Prints `value` as one JSON document when `json`, else the text `text` makes. */
export const emit = (json: boolean, value: unknown, text: () => string): Effect.Effect<void> =>
  json ? Console.log(toJson(value, 2)) : Console.log(text())

/** A timestamp as ISO 8601 text, or "-" when absent. */
export const time = (date: Date | null | undefined): string => (date == null ? "-" : date.toISOString())
