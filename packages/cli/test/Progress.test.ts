import { Progress } from "@chronicle/cli"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TerminalCapabilities } from "effect/cli"
import { TestClock } from "effect/testing"

const terminal = (caps: Partial<TerminalCapabilities.TerminalCapabilities>) =>
  Effect.provideService(TerminalCapabilities.TerminalCapabilities, {
    canColor: false,
    canAnimate: false,
    canPrompt: false,
    ...caps
  })

/** Reports 100 events in steps of 5, one second apart, and returns what was written. */
const report = (json: boolean) =>
  Effect.gen(function* () {
    const written: Array<string> = []
    const mode = yield* Progress.modeFor(json)
    const reporter = yield* Progress.make("rebuild totals", { mode, write: (text) => void written.push(text) })
    for (let done = 5; done <= 100; done += 5) {
      yield* TestClock.adjust("1 second")
      yield* reporter.update(done, 100)
    }
    yield* reporter.finish
    return written
  })

describe("Progress", () => {
  it.effect("on a terminal: one bar redrawn in place, with count, rate and time left", () =>
    Effect.gen(function* () {
      const written = yield* report(false).pipe(terminal({ canAnimate: true }))
      assert.strictEqual(written.length, 21)
      assert.strictEqual(
        written[9],
        `\r\u001b[2Krebuild totals ${"█".repeat(12)}${"░".repeat(12)}  50% 50/100 events  5 events/s  ETA 0:10`
      )
      assert.isTrue(written.slice(0, 20).every((text) => text.startsWith("\r") && !text.includes("\n")))
      assert.match(written[20]!, /100% 100\/100 events {2}5 events\/s {2}ETA 0:00, done in 0:20\n$/)
    })
  )

  it.effect("colours the bar only when the terminal may (NO_COLOR)", () =>
    Effect.gen(function* () {
      const coloured = yield* report(false).pipe(terminal({ canAnimate: true, canColor: true }))
      assert.include(coloured[0], "\u001b[36m")
      const plain = yield* report(false).pipe(terminal({ canAnimate: true, canColor: false }))
      assert.notInclude(plain.join(""), "\u001b[36m")
    })
  )

  it.effect("off a terminal: a plain line at every tenth, then the final one", () =>
    Effect.gen(function* () {
      const written = yield* report(false).pipe(terminal({ canAnimate: false }))
      assert.deepStrictEqual(written.slice(0, 2), [
        "rebuild totals: 5/100 events (5%), 5 events/s, ETA 0:19\n",
        "rebuild totals: 10/100 events (10%), 5 events/s, ETA 0:18\n"
      ])
      assert.strictEqual(written.length, 11)
      assert.isTrue(written.every((text) => !text.includes("\r") && text.endsWith("\n")))
      assert.strictEqual(written.at(-1), "rebuild totals: 100/100 events (100%), 5 events/s, ETA 0:00, done in 0:20\n")
    })
  )

  it.effect("with --json: nothing", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* report(true).pipe(terminal({ canAnimate: true })), [])
    })
  )

  it.effect("a job with nothing to do ends without a line, the result says so", () =>
    Effect.gen(function* () {
      for (const canAnimate of [true, false]) {
        const written: Array<string> = []
        const mode = yield* Progress.modeFor(false).pipe(terminal({ canAnimate }))
        const reporter = yield* Progress.make("events migrate", { mode, write: (text) => void written.push(text) })
        yield* reporter.update(0, 0)
        yield* reporter.finish
        const never = yield* Progress.make("export", { mode, write: (text) => void written.push(text) })
        yield* never.finish
        assert.deepStrictEqual(written, [])
      }
    }).pipe(terminal({}))
  )

  it("formats durations as m:ss and h:mm:ss", () => {
    assert.deepStrictEqual([0, 59.6, 61, 3600, 3725].map(Progress.formatDuration), [
      "0:00",
      "1:00",
      "1:01",
      "1:00:00",
      "1:02:05"
    ])
  })
})
