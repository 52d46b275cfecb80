/**
 * Progress of a long job (a rebuild, the event migration, an export): a bar with the count, the rate and the time
 * left, redrawn in place on a terminal, or a plain line at every tenth of the way when the output is a file or a
 * pipe (or once a second when the total is unknown), so logs stay readable. The mode comes from the terminal
 * detection of `effect/cli` (`TerminalCapabilities`, which also honours `NO_COLOR`), the seam tests use to see both.
 * Progress goes to standard error, so a job's result on standard output stays clean for scripts.
 */

import { Clock, Effect } from "effect"
import { TerminalCapabilities } from "effect/cli"

/** How progress is shown: redrawn in place, as plain lines, or not at all (`--json`). */
export type Mode = "bar" | "lines" | "off"

/** Reports the progress of one job. */
export interface Reporter {
  /** Records that `done` of `total` items are done (`total` undefined when unknown). */
  readonly update: (done: number, total: number | undefined) => Effect.Effect<void>
  /** Ends the report: the final bar or line, or nothing for a job that found nothing to do. */
  readonly finish: Effect.Effect<void>
}

/** The mode for this process: a bar on a terminal, lines elsewhere, nothing for `--json`. */
export const modeFor = (json: boolean): Effect.Effect<Mode> =>
  Effect.map(TerminalCapabilities.TerminalCapabilities, (caps) => (json ? "off" : caps.canAnimate ? "bar" : "lines"))

const count = (n: number) => n.toLocaleString("en-US")

/** A duration in seconds as `m:ss`, or `h:mm:ss` past an hour. */
export const formatDuration = (seconds: number): string => {
  if (!Number.isFinite(seconds)) return "?"
  const whole = Math.max(0, Math.round(seconds))
  const h = Math.floor(whole / 3600)
  const m = Math.floor((whole % 3600) / 60)
  const s = String(whole % 60).padStart(2, "0")
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`
}

const barWidth = 24

/** The text of one report: `label [bar] 45% 4,500/10,000 events 1,234/s ETA 0:04` (the bar only in bar mode). */
export const render = (options: {
  readonly label: string
  readonly unit: string
  readonly done: number
  readonly total: number | undefined
  readonly elapsedSeconds: number
  readonly bar: boolean
  readonly color: boolean
}): string => {
  const { label, unit, done, total, elapsedSeconds } = options
  const rate = done / Math.max(0.001, elapsedSeconds)
  const rateText = `${count(Math.round(rate))} ${unit}/s`
  if (total === undefined) return `${label} ${count(done)} ${unit}, ${rateText}`
  const fraction = total === 0 ? 1 : Math.min(1, done / total)
  const percent = `${Math.floor(fraction * 100)}%`
  const eta = `ETA ${done === 0 ? "?" : formatDuration((total - done) / rate)}`
  if (!options.bar) return `${label}: ${count(done)}/${count(total)} ${unit} (${percent}), ${rateText}, ${eta}`
  const filled = Math.round(fraction * barWidth)
  const bar = `${"█".repeat(filled)}${"░".repeat(barWidth - filled)}`
  const shown = options.color ? `\u001b[36m${bar}\u001b[39m` : bar
  return `${label} ${shown} ${percent.padStart(4)} ${count(done)}/${count(total)} ${unit}  ${rateText}  ${eta}`
}

/** How often a bar is redrawn at most. */
const redrawMillis = 100

/**
 * Starts reporting a job named `label` counting `unit`s, writing with `write` (standard error unless given).
 */
export const make = (
  label: string,
  options: {
    readonly mode: Mode
    readonly unit?: string
    readonly write?: (text: string) => void
  }
): Effect.Effect<Reporter> =>
  Effect.gen(function* () {
    const { mode } = options
    const unit = options.unit ?? "events"
    const write = options.write ?? ((text: string) => void process.stderr.write(text))
    const { canColor } = yield* TerminalCapabilities.TerminalCapabilities
    const started = yield* Clock.currentTimeMillis
    let last: { done: number; total: number | undefined } = { done: 0, total: undefined }
    let shownAt = Number.NEGATIVE_INFINITY
    let shownTenth = -1
    let drawn = false

    // A job that found nothing to do shows nothing: its result says so.
    const nothingToDo = () => last.done === 0 && (last.total ?? 0) === 0

    const text = (now: number, bar: boolean) =>
      render({ label, unit, ...last, elapsedSeconds: (now - started) / 1000, bar, color: canColor })

    const update = (done: number, total: number | undefined) =>
      Effect.gen(function* () {
        last = { done, total }
        if (mode === "off" || nothingToDo()) return
        const now = yield* Clock.currentTimeMillis
        if (mode === "bar") {
          if (now - shownAt < redrawMillis && done !== total) return
          shownAt = now
          drawn = true
          write(`\r\u001b[2K${text(now, true)}`)
          return
        }
        const tenth = total === undefined || total === 0 ? -1 : Math.floor((done / total) * 10)
        const due = total === undefined ? now - shownAt >= 1000 : tenth > shownTenth
        if (!due || done === 0 || done === total) return
        shownAt = now
        shownTenth = tenth
        write(`${text(now, false)}\n`)
      })

    const finish = Effect.gen(function* () {
      if (mode === "off" || nothingToDo()) return
      const now = yield* Clock.currentTimeMillis
      const took = `, done in ${formatDuration((now - started) / 1000)}`
      if (mode === "bar") write(`${drawn ? "\r\u001b[2K" : ""}${text(now, true)}${took}\n`)
      else write(`${text(now, false)}${took}\n`)
    })

    return { update, finish }
  })
