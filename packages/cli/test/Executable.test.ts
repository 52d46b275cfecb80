/**
 * The `chronicle` executable as a child process: its exit codes, Ctrl-C (SIGINT) on long jobs that are then run
 * again, and progress on a terminal (a pseudo-terminal through `script`) and off one.
 */
import { spawnSync } from "node:child_process"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { Export } from "@chronicle/cli"
import { assert, describe, it } from "@effect/vitest"
import {
  bin,
  context,
  executable,
  expectedTotals,
  json,
  lines,
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

// Each child process loads Effect and the sources anew: seconds of CPU each on a busy machine.
describe("the chronicle executable", { timeout: 300_000 }, () => {
  it("exits 0 with output, 2 on bad usage and 1 on failure, each with one line", async () => {
    const [help, badFlag, down] = await Promise.all([
      executable(["--help"]),
      executable(["streams", "list", "--limit", "x"]),
      executable(["status", "--database-url", "postgres://postgres:postgres@127.0.0.1:1/nothing"])
    ])
    assert.strictEqual(help.code, 0)
    assert.include(help.stdout, "EXAMPLES")
    assert.strictEqual(badFlag.code, 2)
    assert.match(badFlag.stderr, /^chronicle: Invalid value for flag --limit: "x"/)
    assert.strictEqual(down.code, 1)
    assert.match(down.stderr, /^chronicle: cannot reach the database at 127\.0\.0\.1:1\/nothing: [^\n]+\n$/)
    assert.deepStrictEqual(json(await executable(["migrate", "--json"])).applied.length > 0, true)
    await seedTally(3000)
    await seed("bulk", 20000, 100, "Noted", `jsonb_build_object('i', g, 'text', repeat('x', g % 50))`)
    assert.strictEqual(json(await executable(["status", "--json"])).events, 23000)
  })

  it("a rebuild interrupted with SIGINT changes nothing; run again, it equals an uninterrupted rebuild", async () => {
    json(await executable(["projections", "reset", "tally-totals", "--config", tallyConfig, "--json"]))
    assert.deepStrictEqual(await tallyTotals(), [])
    const interrupted = await executable(["projections", "rebuild", "tally-totals", "--config", tallyConfig], {
      interruptWhen: (stderr) => stderr.includes("rebuild tally-totals: ")
    })
    assert.strictEqual(interrupted.code, 130, interrupted.stderr)
    assert.include(interrupted.stderr, "interrupted: tally-totals was not changed; run the rebuild again")
    assert.deepStrictEqual(await tallyTotals(), [])
    assert.deepStrictEqual(
      await query("SELECT tablename FROM pg_tables WHERE tablename LIKE 'tally_totals_rebuild%'"),
      []
    )
    const again = await executable(["projections", "rebuild", "tally-totals", "--config", tallyConfig])
    assert.strictEqual(again.code, 0, again.stderr)
    assert.deepStrictEqual(await tallyTotals(), await expectedTotals(false))
  })

  for (const format of Export.formats) {
    it(`export ${format} interrupted with SIGINT, run again, equals an uninterrupted export`, async () => {
      const file = join(context.dir, `bulk.${format}`)
      const interrupted = await executable(["export", "--format", format, "--category", "bulk", file], {
        interruptWhen: (stderr) => /export \S+: [1-9][\d,]*\/20,000 events/.test(stderr)
      })
      assert.strictEqual(interrupted.code, 130, interrupted.stderr)
      assert.include(interrupted.stderr, "was not written; run the same export again to go on from where it stopped")
      assert.notInclude(await readdir(context.dir), `bulk.${format}`)
      const resumed = json(await executable(["export", "--format", format, "--category", "bulk", file, "--json"]))
      assert.isTrue(resumed.resumed)
      assert.strictEqual(resumed.events, 20000)
      const expected = lines(await readLog("bulk"))
      const written =
        format === "ndjson" ? (await readFile(file, "utf8")).trimEnd().split("\n") : await readParquet(file)
      assert.deepStrictEqual(written, expected)
      assert.deepStrictEqual(
        (await readdir(context.dir)).filter((name) => name.startsWith(`bulk.${format}`)),
        [`bulk.${format}`]
      )
    })
  }

  it("progress: plain lines with rate and ETA off a terminal, a bar redrawn in place on one", async () => {
    const plain = await executable([
      "export",
      "--format",
      "ndjson",
      "--category",
      "bulk",
      join(context.dir, "plain.ndjson")
    ])
    assert.strictEqual(plain.code, 0, plain.stderr)
    assert.notInclude(plain.stderr, "\r")
    assert.match(plain.stderr, /export \S+: [\d,]+\/20,000 events \(\d+%\), [\d,]+ events\/s, ETA \d+:\d\d\n/)
    assert.match(plain.stderr, /20,000\/20,000 events \(100%\), .*, done in \d+:\d\d\n$/)

    const script = spawnSync("script", ["--version"])
    if (script.status !== 0) return // no pseudo-terminal helper here: the Progress unit tests cover the bar
    const env = { ...process.env, DATABASE_URL: context.databaseUrl, NO_COLOR: "1" }
    const onTerminal = spawnSync(
      "script",
      [
        "-qec",
        `'${process.execPath}' '${bin}' export --format ndjson --category bulk '${join(context.dir, "tty.ndjson")}'`,
        "/dev/null"
      ],
      { env, encoding: "utf8" }
    )
    assert.strictEqual(onTerminal.status, 0, onTerminal.stdout)
    assert.include(onTerminal.stdout, "\r\u001b[2K")
    assert.match(onTerminal.stdout, /█+░* +\d+% [\d,]+\/20,000 events {2}[\d,]+ events\/s {2}ETA /)
    assert.notInclude(onTerminal.stdout, "\u001b[36m") // NO_COLOR
  })
})
