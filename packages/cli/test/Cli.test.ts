/**
 * The `chronicle` command run in this process (`Cli.run`, output captured) against a database of its own: each
 * command's text and JSON output, exit codes and bad inputs, on the tests' tally config and the cart and bank
 * examples' config modules. Executable.test.ts runs the real executable for signals, terminals and exit codes.
 */
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import {
  bankConfig,
  cartConfig,
  chronicle,
  context,
  expectedTotals,
  json,
  lines,
  masterKey,
  onDatabase,
  query,
  readLog,
  readParquet,
  seed,
  seedTally,
  setup,
  tallyConfig,
  tallyTotals
} from "./fixtures/harness.ts"

setup()

describe("chronicle", () => {
  it("every command has --help with an example", async () => {
    const paths = [
      [],
      ["migrate"],
      ["status"],
      ["streams"],
      ["streams", "list"],
      ["streams", "show"],
      ["projections"],
      ["projections", "list"],
      ["projections", "status"],
      ["projections", "rebuild"],
      ["projections", "reset"],
      ["projections", "adopt"],
      ["dead-letters"],
      ["dead-letters", "list"],
      ["dead-letters", "retry"],
      ["dead-letters", "discard"],
      ["events"],
      ["events", "migrate"],
      ["forget"],
      ["keys"],
      ["keys", "rotate"],
      ["export"],
      ["ui"]
    ]
    for (const path of paths) {
      const help = await chronicle([...path, "--help"])
      assert.strictEqual(help.code, 0, `${path.join(" ")}: ${help.stderr}`)
      assert.match(help.stdout, /EXAMPLES\n( +# .*\n)? +(DATABASE_URL=\S+ )?chronicle /, path.join(" "))
    }
  })

  it("before migrate, commands that need the tables say so; migrate --dry-run lists, migrate applies", async () => {
    const early = await chronicle(["status"])
    assert.strictEqual(early.code, 1)
    assert.strictEqual(
      early.stderr.trim(),
      "chronicle: Chronicle's tables do not exist in this database: run `chronicle migrate` first"
    )
    const dry = await chronicle(["migrate", "--dry-run"])
    assert.strictEqual(dry.code, 0)
    assert.match(dry.stdout, /would run:\n {2}1_events\n/)
    const pending = json(await chronicle(["migrate", "--dry-run", "--json"])).pending
    const applied = json(await chronicle(["migrate", "--json"])).applied
    assert.deepStrictEqual(applied, pending)
    assert.isAbove(applied.length, 4)
    assert.deepStrictEqual(json(await chronicle(["--json", "migrate"])).applied, [])
    assert.strictEqual((await chronicle(["migrate"])).stdout.trim(), "the schema is current: nothing to do")
    const partitionIndex = () =>
      query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'chronicle_events_stream_bucket'"
      )
    assert.deepStrictEqual(await partitionIndex(), [{ n: 0 }])
    assert.deepStrictEqual(json(await chronicle(["migrate", "--partition-index", "--json"])), {
      applied: [],
      partitionIndex: true
    })
    assert.deepStrictEqual(await partitionIndex(), [{ n: 1 }])

    await seedTally(600)
    await seed("bulk", 2000, 100, "Noted", `jsonb_build_object('i', g, 'text', repeat('x', g % 50))`)
    await seed("cart", 3, 1, "ItemAdded", `jsonb_build_object('sku', 'apple', 'quantity', g + 1)`)
  })

  it("status: server, events, head, tables and projections, as text and JSON", async () => {
    const text = await chronicle(["status"])
    assert.strictEqual(text.code, 0, text.stderr)
    assert.match(text.stdout, /^server {5}Postgres \d+/)
    assert.match(text.stdout, /events {5}2,603, head position \d+/)
    assert.match(text.stdout, /readers {4}nothing holds them back/)
    const status = json(await chronicle(["status", "--json", "--config", tallyConfig]))
    assert.strictEqual(status.events, 2603)
    assert.isNull(status.horizon.heldBackBy)
    assert.includeMembers(
      status.tables.map((t: { name: string }) => t.name),
      ["chronicle_events", "chronicle_checkpoints"]
    )
    assert.deepStrictEqual(
      status.checkpoints.map((c: { name: string; lag: number; state: string }) => [c.name, c.lag, c.state]),
      [["tally-totals", 600, "idle"]]
    )
  })

  it("streams list and show, decoded with the config module's aggregate", async () => {
    const listed = json(await chronicle(["streams", "list", "--category", "tally", "--limit", "5", "--json"]))
    assert.strictEqual(listed.length, 5)
    assert.strictEqual(listed[0].version, 20)
    assert.match(
      (await chronicle(["streams", "list", "--category", "cart"])).stdout,
      /^stream +version +last position +updated\ncart-0 +3 /
    )

    const shown = json(await chronicle(["streams", "show", "cart-0", "--config", cartConfig, "--json"]))
    assert.deepStrictEqual(
      shown.events.map((e: { version: number; data: unknown; state: unknown }) => [e.version, e.data, e.state]),
      [
        [1, { sku: "apple", quantity: 1 }, { items: [["apple", 1]], checkedOut: false }],
        [2, { sku: "apple", quantity: 2 }, { items: [["apple", 3]], checkedOut: false }],
        [3, { sku: "apple", quantity: 3 }, { items: [["apple", 6]], checkedOut: false }]
      ]
    )
    const text = await chronicle(["streams", "show", "cart-0", "--from", "3", "--config", cartConfig])
    assert.match(
      text.stdout,
      /^cart-0: 3 event\(s\)\n#\d+ {2}v3 {2}\S+ {2}ItemAdded \(schema v1\) {2}\{"sku":"apple","quantity":3\}\n/
    )
    assert.include(text.stdout, 'state → {"items":[["apple",6]],"checkedOut":false}')
    assert.include((await chronicle(["streams", "show", "cart-0"])).stdout, "(as stored: no aggregate of this category")
  })

  it("bad input: one line on standard error, exit 1 for failures, 2 for bad usage", async () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, number, RegExp, Record<string, string | undefined>?]> =
      [
        [["streams", "show", "cart-nope"], 1, /^chronicle: unknown stream cart-nope: it has no events$/],
        [["streams", "show", "no category"], 2, /^chronicle: .*no category/],
        [
          ["projections", "status", "nope", "--config", tallyConfig],
          1,
          /^chronicle: unknown projection nope \(known: tally-totals\)$/
        ],
        [["projections", "rebuild", "nope", "--config", tallyConfig], 1, /^chronicle: unknown projection nope/],
        [["projections", "rebuild", "tally-totals"], 1, /needs the read model tally-totals from a config module/],
        [["streams", "list", "--limit", "x"], 2, /^chronicle: Invalid value for flag --limit: "x"/],
        [["export", "--format", "csv", "out.csv"], 2, /^chronicle: .*--format/],
        [["export", "--format", "ndjson", "--from", "ten", "out.ndjson"], 2, /--from must be a global position/],
        [["dead-letters", "discard", "tally-totals", "--position", "1"], 1, /has no dead letter at position 1$/],
        [["frobnicate"], 2, /^chronicle: Unknown subcommand "frobnicate"/],
        [["status", "--config", "missing.config.ts"], 1, /^chronicle: config missing\.config\.ts: no such file$/],
        [
          ["status"],
          2,
          /^chronicle: no database: set DATABASE_URL or pass --database-url$/,
          { DATABASE_URL: undefined }
        ],
        [
          ["status", "--database-url", "postgres://postgres:postgres@127.0.0.1:1/nothing"],
          1,
          /^chronicle: cannot reach the database at 127\.0\.0\.1:1\/nothing: /
        ],
        [
          ["status", "--database-url", context.databaseUrl.replace(/\/[^/]*$/, "/no_such_db")],
          1,
          /^chronicle: cannot reach the database at [^ ]+\/no_such_db: database "no_such_db" does not exist$/
        ]
      ]
    for (const [args, code, line, env] of cases) {
      const result = await chronicle(args, env)
      assert.strictEqual(result.code, code, `${args.join(" ")}: ${result.stderr}`)
      const first = result.stderr.split("\n")[0]!
      assert.match(first, line, args.join(" "))
      assert.notInclude(result.stderr, "    at ", `${args.join(" ")} printed a stack trace`)
    }
    const verbose = await chronicle(["streams", "show", "cart-nope", "--verbose"])
    assert.strictEqual(verbose.code, 1)
    assert.include(verbose.stderr, "    at ")
  })

  it("projections rebuild parks what fails; dead letters are listed, retried once fixed, and discarded", async () => {
    const rebuilt = json(await chronicle(["projections", "rebuild", "tally-totals", "--config", tallyConfig, "--json"]))
    assert.strictEqual(rebuilt.table, "tally_totals")
    assert.deepStrictEqual(await tallyTotals(), await expectedTotals(false))
    const [status] = json(await chronicle(["projections", "list", "--config", tallyConfig, "--json"]))
    assert.deepInclude(status, { name: "tally-totals", kind: "projection", lag: 0, deadLetters: 1, state: "idle" })
    assert.match((await chronicle(["projections", "status", "tally-totals"])).stdout, /^tally-totals \(projection\)\n/)

    const [letter] = json(await chronicle(["dead-letters", "list", "tally-totals", "--json"]))
    assert.strictEqual(letter.type, "Added")
    assert.include(letter.error, "negative amount -5")
    const stillFails = await chronicle(["dead-letters", "retry", "tally-totals", "--config", tallyConfig])
    assert.strictEqual(stillFails.code, 1)
    assert.match(stillFails.stdout, /still fails: .*negative amount -5/)
    const retried = await chronicle(
      ["dead-letters", "retry", "tally-totals", "--position", letter.position, "--config", tallyConfig],
      { TALLY_ACCEPT_NEGATIVE: "1" }
    )
    assert.strictEqual(retried.code, 0, retried.stderr)
    assert.strictEqual(retried.stdout.trim(), `retried #${letter.position}: handled, no longer parked`)
    assert.deepStrictEqual(await tallyTotals(), await expectedTotals(true))
    assert.strictEqual(
      (await chronicle(["dead-letters", "list", "tally-totals"])).stdout.trim(),
      "tally-totals has no dead letters"
    )

    await chronicle(["projections", "rebuild", "tally-totals", "--config", tallyConfig])
    const discarded = json(
      await chronicle(["dead-letters", "discard", "tally-totals", "--position", letter.position, "--json"])
    )
    assert.strictEqual(discarded.discarded, letter.position)
    assert.deepStrictEqual(json(await chronicle(["dead-letters", "list", "tally-totals", "--json"])), [])
  })

  it("export: the files read back (Parquet through DuckDB) equal the log, event for event", async () => {
    const log = await readLog()
    const ndjson = json(await chronicle(["export", "--format", "ndjson", join(context.dir, "all.ndjson"), "--json"]))
    assert.strictEqual(ndjson.events, log.length)
    assert.deepStrictEqual((await readFile(join(context.dir, "all.ndjson"), "utf8")).trimEnd().split("\n"), lines(log))
    const parquet = await chronicle([
      "export",
      "--format",
      "parquet",
      "--category",
      "tally,cart",
      join(context.dir, "some.parquet")
    ])
    assert.strictEqual(parquet.code, 0, parquet.stderr)
    assert.match(parquet.stdout, /^exported 603 event\(s\) to \S+some\.parquet \(parquet\), up to position \d+\n$/)
    const some = log.filter((e) => e.stream.startsWith("tally-") || e.stream.startsWith("cart-"))
    assert.deepStrictEqual(await readParquet(join(context.dir, "some.parquet")), lines(some))
    const from = log[100]!.position
    json(
      await chronicle([
        "export",
        "--format",
        "ndjson",
        "--from",
        String(from),
        join(context.dir, "from.ndjson"),
        "--json"
      ])
    )
    assert.deepStrictEqual(
      (await readFile(join(context.dir, "from.ndjson"), "utf8")).trimEnd().split("\n"),
      lines(log.slice(100))
    )
  })

  it("events migrate rewrites old versions with the bank's aggregate", async () => {
    await seed("account", 4, 2, "Deposited", `jsonb_build_object('amount', 12.5)`)
    const migrated = json(
      await chronicle(["events", "migrate", "--config", bankConfig, "--json"], { CHRONICLE_MASTER_KEY: masterKey })
    )
    assert.deepStrictEqual(migrated, { done: 4, total: 4 })
    assert.deepStrictEqual(
      await query("SELECT DISTINCT schema_version, data FROM chronicle_events WHERE category = 'account'"),
      [{ schema_version: 3, data: { cents: 1250, currency: "EUR" } }]
    )
    const shown = json(
      await chronicle(["streams", "show", "account-1", "--config", bankConfig, "--json"], {
        CHRONICLE_MASTER_KEY: masterKey
      })
    )
    assert.deepStrictEqual(shown.events.at(-1).state, { customerId: "", holder: "", balance: 2500, open: false })
    const none = await chronicle(["events", "migrate", "--config", bankConfig], { CHRONICLE_MASTER_KEY: masterKey })
    assert.strictEqual(none.stdout.trim(), "every event is at its current version: nothing to migrate")
    const noKey = await chronicle(["events", "migrate", "--config", bankConfig], { CHRONICLE_MASTER_KEY: undefined })
    assert.strictEqual(noKey.code, 1)
    assert.strictEqual(noKey.stderr.trim(), "chronicle: the setting CHRONICLE_MASTER_KEY is missing or invalid")
  })

  it("forget asks for confirmation unless --yes, and says what it did", async () => {
    await onDatabase(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`INSERT INTO chronicle_keys (subject, wrapped_key) VALUES ('cust-1', 'x')`
      )
    )
    const unconfirmed = await chronicle(["forget", "cust-1"], { CHRONICLE_MASTER_KEY: masterKey })
    assert.strictEqual(unconfirmed.code, 2)
    assert.strictEqual(
      unconfirmed.stderr.trim(),
      "chronicle: forget cust-1 asks for confirmation, which needs a terminal: pass --yes to confirm"
    )
    const noKeyStore = await chronicle(["forget", "cust-1", "--yes"], { CHRONICLE_MASTER_KEY: undefined })
    assert.strictEqual(noKeyStore.code, 1)
    assert.match(noKeyStore.stderr, /^chronicle: forget needs a key store/)
    const keys = () =>
      query<{ subject: string; wrapped_key: string | null }>("SELECT subject, wrapped_key FROM chronicle_keys")
    assert.deepStrictEqual(await keys(), [{ subject: "cust-1", wrapped_key: "x" }])

    const forgot = await chronicle(["forget", "cust-1", "--yes", "--config", bankConfig], {
      CHRONICLE_MASTER_KEY: masterKey
    })
    assert.strictEqual(forgot.code, 0, forgot.stderr)
    assert.match(forgot.stdout, /^forgot cust-1: recorded SubjectForgotten at position \d+ and deleted their data key/)
    assert.deepStrictEqual(await keys(), [{ subject: "cust-1", wrapped_key: null }])
    const again = json(await chronicle(["forget", "cust-1", "--json"], { CHRONICLE_MASTER_KEY: masterKey }))
    assert.deepInclude(again, { subject: "cust-1", forgotten: true, now: false })
  })

  it("projections adopt hands a table made by hand to its read model, once its columns match", async () => {
    await query("CREATE TABLE IF NOT EXISTS tally_totals (tally text PRIMARY KEY, total int NOT NULL)")
    await query("COMMENT ON TABLE tally_totals IS NULL")
    const adopt = ["projections", "adopt", "tally-totals", "--config", tallyConfig]
    assert.deepStrictEqual(json(await chronicle([...adopt, "--json"])), {
      projection: "tally-totals",
      table: "tally_totals",
      adopted: true
    })
    const again = await chronicle(adopt)
    assert.strictEqual(again.stdout, "tally-totals owns tally_totals already: nothing to do\n")
    await query("COMMENT ON TABLE tally_totals IS NULL")
    await query("ALTER TABLE tally_totals ADD COLUMN note text")
    const refused = await chronicle(adopt)
    assert.strictEqual(refused.code, 1)
    assert.match(
      refused.stderr,
      /^chronicle: read model tally-totals cannot adopt table tally_totals: .*it also has note text/
    )
    await query("ALTER TABLE tally_totals DROP COLUMN note")
  })
})
