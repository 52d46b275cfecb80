/**
 * Plaintext scans: look for given values (a forgotten person's name, email, phone) in everything an app stores or
 * sends, to check in a test that forgetting reached every copy. `postgres` reads every row of every table of every
 * schema of the database as text (its JSON, `to_jsonb(row)`); `jetStream` reads every message of a JetStream stream. Both look for each value in
 * four forms: as it is, JSON-escaped, hex (as `bytea` prints) and base64 (at any byte alignment, so a value inside a
 * longer encoded blob is found too).
 *
 * ```ts
 * const found = yield* PlaintextScan.postgres(["Ada Lovelace", "ada@example.com"])
 * assert.deepStrictEqual(found, [])
 * ```
 *
 * **Gotchas:** a value is only found in the forms above: one stored compressed, encrypted under a key that still
 * exists, or in another encoding (UTF-16, URL-encoded) is not. Values shorter than `minLength` are refused, since they
 * would match by chance.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, Schema } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

/** How a value was written where it was found. */
export type Form = "plain" | "json" | "hex" | "base64"

/** One place a value was found, and in which form. */
export interface Finding {
  /** `<schema>.<table>` for a database, `<stream>#<sequence>` for a JetStream stream. */
  readonly where: string
  readonly value: string
  readonly form: Form
}

/** Values shorter than this are refused: they would be found by chance. */
export const minLength = 4

/** A scan could not run: a value too short to look for, or the database or broker failed. */
export class ScanError extends Schema.TaggedError<ScanError>()("ScanError", {
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message() {
    return `plaintext scan failed: ${this.reason}`
  }
}

/** The base64 text that encodes `bytes` wherever they sit in a longer blob: one per alignment, edges cut off. */
const base64Forms = (bytes: Buffer): ReadonlyArray<string> =>
  [0, 1, 2].flatMap((offset) => {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString("base64")
    const start = offset === 0 ? 0 : 4 // the first group mixes in the bytes before the value
    const end = Math.floor((offset + bytes.length) / 3) * 4 // the last partial group mixes in the bytes after it
    const middle = encoded.slice(start, end)
    return middle.length >= minLength ? [middle] : []
  })

/** The texts to look for, per form, for one value. */
export const formsOf = (value: string): ReadonlyArray<{ readonly form: Form; readonly text: string }> => {
  const bytes = Buffer.from(value, "utf8")
  const json = JSON.stringify(value).slice(1, -1)
  return [
    { form: "plain", text: value },
    ...(json === value ? [] : [{ form: "json" as const, text: json }]),
    { form: "hex", text: bytes.toString("hex") },
    ...base64Forms(bytes).map((text) => ({ form: "base64" as const, text }))
  ]
}

/** The findings of `values` in one text (hex is matched in either case). */
export const findIn = (where: string, text: string, values: ReadonlyArray<string>): ReadonlyArray<Finding> => {
  const lower = text.toLowerCase()
  const found: Array<Finding> = []
  for (const value of values) {
    for (const { form, text: needle } of formsOf(value)) {
      if ((form === "hex" ? lower : text).includes(needle)) found.push({ where, value, form })
    }
  }
  return found
}

const checked = (values: ReadonlyArray<string>) => {
  const short = values.find((value) => value.length < minLength)
  return short === undefined
    ? Effect.succeed(values)
    : Effect.fail(new ScanError({ reason: `"${short}" is shorter than ${minLength} characters` }))
}

/**
 * Looks for `values` in every row, as JSON text, of every table of every schema of the database of the `SqlClient` in
 * context (Postgres' own catalogs aside); returns where each was found, an empty array when nowhere.
 */
export const postgres = (
  values: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<Finding>, ScanError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    yield* checked(values)
    const sql = yield* SqlClient.SqlClient
    const tables = yield* sql<{ schema: string; name: string }>`
      SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
      ORDER BY 1, 2`
    const found: Array<Finding> = []
    for (const { schema, name } of tables) {
      const rows = yield* sql<{ row: string }>`SELECT to_jsonb(t)::text AS row FROM ${sql(schema)}.${sql(name)} t`
      for (const { row } of rows) found.push(...findIn(`${schema}.${name}`, row, values))
    }
    return found
  }).pipe(
    Effect.catchTag("SqlError", (cause: SqlError.SqlError) =>
      Effect.fail(new ScanError({ reason: "reading the database", cause }))
    )
  )

/**
 * Looks for `values` in every message kept by JetStream stream `stream` on the server at `url`: its subject, headers
 * and payload (as UTF-8 text); returns where each was found, an empty array when nowhere.
 */
export const jetStream = (options: {
  readonly url: string
  readonly stream: string
  readonly values: ReadonlyArray<string>
}): Effect.Effect<ReadonlyArray<Finding>, ScanError> =>
  Effect.gen(function* () {
    const values = yield* checked(options.values)
    const failed = (reason: string) => (cause: unknown) => new ScanError({ reason, cause })
    const connection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => connect({ servers: options.url }),
        catch: failed(`connecting to ${options.url}`)
      }),
      (nc) => Effect.promise(() => nc.close())
    )
    return yield* Effect.tryPromise({
      try: async () => {
        const jsm = await jetstreamManager(connection)
        const { state } = await jsm.streams.info(options.stream)
        const found: Array<Finding> = []
        for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
          // A deleted message leaves a gap in the sequence: there is nothing left of it to find.
          const message = await jsm.streams.getMessage(options.stream, { seq }).catch(() => null)
          if (message === null) continue
          const headers = message.header
            ? [...message.header.keys()].map((key) => `${key}: ${message.header.values(key).join(", ")}`).join("\n")
            : ""
          const text = `${message.subject}\n${headers}\n${Buffer.from(message.data).toString("utf8")}`
          found.push(...findIn(`${options.stream}#${seq}`, text, values))
        }
        return found
      },
      catch: failed(`reading stream ${options.stream}`)
    })
  }).pipe(Effect.scoped)
