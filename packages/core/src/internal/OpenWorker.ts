/**
 * The worker thread that shares the opening of big batches of sealed values with the thread that reads them. Opening
 * one AES-256-GCM value costs a few microseconds of node:crypto set-up (a new cipher object per message: none takes a
 * new IV), about as much as reading the event it belongs to; a second thread halves that on a page of events.
 *
 * Both threads run the same `openSealed` (its source is the worker's code) and take chunks of the batch from one
 * shared counter, so the thread with time to spare does more: on a busy machine the reading thread may do it all.
 * The worker holds the keys of a batch only while it opens it, and never keeps the process alive when idle.
 *
 * **Gotcha:** `openSealed` runs in the worker from its source text, so it may use only its parameters and globals. A
 * tool that rewrites function bodies (Istanbul-style coverage) breaks the worker; the reading thread then opens all.
 */
import type { createDecipheriv as CreateDecipheriv, KeyObject } from "node:crypto"
import { Worker } from "node:worker_threads"
import { Result } from "effect"

/**
 * Opens what `KeyStore.seal` sealed under `key` for `context`, or `undefined` when it does not authenticate (altered,
 * truncated, another key or context). Runs in both threads: it uses only its parameters and globals.
 */
export const openSealed = (
  decipher: typeof CreateDecipheriv,
  key: KeyObject,
  sealed: string,
  context: string
): string | undefined => {
  const iv = 12 // the IV, then the ciphertext, then the tag: `KeyStore.seal`'s layout
  const tag = 16
  const bytes = Buffer.from(sealed, "base64")
  if (bytes.length < iv + tag) return undefined
  const body = bytes.subarray(iv, bytes.length - tag)
  const cipher = decipher("aes-256-gcm", key, bytes.subarray(0, iv), { authTagLength: tag })
    .setAAD(Buffer.from(context))
    .setAuthTag(bytes.subarray(bytes.length - tag))
  // node:crypto signals a failed authentication by throwing from `final`; nothing else here throws.
  try {
    const plaintext = cipher.update(body)
    cipher.final()
    return plaintext.toString("utf8")
  } catch {
    return undefined
  }
}

/** A batch: one key object per distinct key, and for each value its key's index, the sealed text and its context. */
export interface Batch {
  readonly keys: ReadonlyArray<KeyObject>
  readonly keyIndex: ReadonlyArray<number>
  readonly sealed: ReadonlyArray<string>
  readonly contexts: ReadonlyArray<string>
}

/** How many values a thread takes from the shared counter at a time. */
export const chunk = 32

const source = `
const { parentPort } = require("node:worker_threads")
const { createDecipheriv } = require("node:crypto")
const openSealed = ${openSealed.toString()}
parentPort.on("message", ({ id, batch, counter }) => {
  const next = new Int32Array(counter)
  const starts = []
  const opened = []
  const total = batch.sealed.length
  for (let start = Atomics.add(next, 0, ${chunk}); start < total; start = Atomics.add(next, 0, ${chunk})) {
    const end = Math.min(total, start + ${chunk})
    const part = []
    for (let i = start; i < end; i++) {
      part.push(openSealed(createDecipheriv, batch.keys[batch.keyIndex[i]], batch.sealed[i], batch.contexts[i]) ?? null)
    }
    starts.push(start)
    opened.push(part)
  }
  parentPort.postMessage({ id, starts, opened })
})
`

/** What the worker opened: the start of each chunk it took, and that chunk's plaintexts (null: did not open). */
export interface Opened {
  readonly starts: ReadonlyArray<number>
  readonly opened: ReadonlyArray<ReadonlyArray<string | null>>
}

interface Reply extends Opened {
  readonly id: number
}

let worker: Worker | undefined
let unavailable = false
let nextId = 0
const pending = new Map<number, (reply: Reply | undefined) => void>()

const settle = (id: number, reply: Reply | undefined) => {
  const done = pending.get(id)
  pending.delete(id)
  if (pending.size === 0) worker?.unref()
  done?.(reply)
}

const started = (): Worker | undefined => {
  if (worker !== undefined || unavailable) return worker
  // Where threads cannot start (a sandbox, a resource limit), everything is opened on the reading thread.
  const starting = Result.try(() => new Worker(source, { eval: true }))
  if (Result.isFailure(starting)) {
    unavailable = true
    return undefined
  }
  const made = starting.success
  made.unref()
  made.on("message", (reply: Reply) => settle(reply.id, reply))
  // A worker that fails is not started again: its batches and every later one are opened on the reading thread.
  const fail = () => {
    unavailable = true
    worker = undefined
    for (const id of [...pending.keys()]) settle(id, undefined)
    void made.terminate()
  }
  made.on("error", fail)
  made.on("exit", fail)
  worker = made
  return made
}

/**
 * Opens `batch` with the worker's help: the worker takes chunks from `counter` (an `Int32Array` on a
 * `SharedArrayBuffer`) as the caller does; `done` gets the worker's chunks once it has no more to take, or `undefined`
 * if it failed (its chunks are then unopened). Returns a function that drops the reply, or `undefined` when no worker
 * can run (the caller opens everything).
 */
export const share = (
  batch: Batch,
  counter: Int32Array,
  done: (reply: Opened | undefined) => void
): (() => void) | undefined => {
  const thread = started()
  if (thread === undefined) return undefined
  const id = nextId++
  pending.set(id, done)
  if (pending.size === 1) thread.ref()
  thread.postMessage({ id, batch, counter: counter.buffer })
  return () => {
    pending.delete(id)
    if (pending.size === 0) thread.unref()
  }
}
