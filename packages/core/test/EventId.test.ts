import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import * as EventId from "../src/EventId.ts"

const uuid = (version: number) =>
  new RegExp(`^[0-9a-f]{8}-[0-9a-f]{4}-${version}[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

/** Milliseconds a UUID v7 can carry (48 bits). */
const millis = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2 ** 48 - 1 }))

/** A UUID v7 of `time` whose random bits come from `a` and `b`, in upper case when `a` is odd. */
const uuidV7 = (time: number, a: number, b: number) => {
  const hex = (n: number, digits: number) => (Math.abs(n) % 16 ** digits).toString(16).padStart(digits, "0")
  const t = time.toString(16).padStart(12, "0")
  const id = `${t.slice(0, 8)}-${t.slice(8)}-7${hex(a, 3)}-${"89ab"[Math.abs(b) % 4]}${hex(b, 3)}-${hex(a * 31 + b, 12)}`
  return Math.abs(a) % 2 === 1 ? id.toUpperCase() : id
}

describe("EventId", () => {
  it("random gives distinct UUID v7s that start with the time they were made", () => {
    const before = Date.now()
    const ids = Array.from({ length: 100 }, EventId.random)
    const after = Date.now()
    for (const id of ids) {
      assert.match(id, uuid(7))
      const millis = Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16)
      assert.isTrue(millis >= before && millis <= after, `${id} carries ${millis}, made between ${before} and ${after}`)
    }
    assert.strictEqual(new Set(ids).size, 100)
  })

  it("fromCommand gives the same UUID v5 for the same stream, command id and index", () => {
    const id = EventId.fromCommand("cart-1", "command-1", 0)
    assert.match(id, uuid(5))
    assert.strictEqual(EventId.fromCommand("cart-1", "command-1", 0), id)
  })

  it("fromCommand differs when the stream, the command id or the index differs", () => {
    const ids = [
      EventId.fromCommand("cart-1", "command-1", 0),
      EventId.fromCommand("cart-2", "command-1", 0),
      EventId.fromCommand("cart-1", "command-2", 0),
      EventId.fromCommand("cart-1", "command-1", 1),
      // The separator keeps "ab" + "c" apart from "a" + "bc".
      EventId.fromCommand("cart-ab", "c", 0),
      EventId.fromCommand("cart-a", "bc", 0)
    ]
    assert.strictEqual(new Set(ids).size, ids.length)
  })

  it("fromCommand never changes: a command re-sent after an upgrade must derive the ids already stored", () => {
    assert.strictEqual(EventId.fromCommand("cart-1", "command-1", 0), "ddf27859-6de1-58ba-b4b4-11a470512a93")
  })

  it("fromCommand of a UUID v7 command id never changes either", () => {
    const commandId = "019ac7d2-5a3e-7c41-9b2d-0e6f1a2b3c4d"
    assert.strictEqual(EventId.fromCommand("cart-1", commandId, 0), "019ac7d2-5a3e-7b9f-9322-c1695627d514")
    // The name-based id, what @chronicle/core 0.1 derived, is still known for re-sent commands.
    assert.strictEqual(
      EventId.derivedBefore("cart-1", commandId, 0),
      EventId.fromCommandNameBased("cart-1", commandId, 0)
    )
  })

  it.prop(
    "fromCommand of UUID v7 command ids: a UUID v7 with the command's time, deterministic, unique, in the commands' order",
    [Schema.Array(Schema.Tuple([millis, Schema.Int, Schema.Int])), Schema.String],
    ([commands, stream]) => {
      const commandIds = commands.map(([time, a, b]) => uuidV7(time, a, b))
      const derived = commandIds.map((commandId) =>
        [0, 1, 2].map((index) => EventId.fromCommand(stream, commandId, index))
      )
      for (const [i, ids] of derived.entries()) {
        for (const [index, id] of ids.entries()) {
          assert.match(id, uuid(7))
          assert.strictEqual(id.slice(0, 13), commandIds[i]!.slice(0, 13).toLowerCase())
          assert.strictEqual(EventId.fromCommand(stream, commandIds[i]!, index), id)
        }
      }
      const distinct = new Set(commandIds).size
      assert.strictEqual(new Set(derived.flat()).size, distinct * 3)
      // Ids of a later command sort after those of an earlier one.
      for (const [i, [time]] of commands.entries()) {
        for (const [j, [other]] of commands.entries()) {
          if (time < other) assert.isTrue(derived[i]!.every((id) => derived[j]!.every((later) => id < later)))
        }
      }
    }
  )

  it.prop(
    "fromCommand of any other command id is the name-based UUID v5, as in @chronicle/core 0.1",
    [Schema.String, Schema.String, Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1000 }))],
    ([stream, commandId, index]) => {
      const id = EventId.fromCommand(stream, commandId, index)
      assert.match(id, uuid(5))
      assert.strictEqual(id, EventId.fromCommandNameBased(stream, commandId, index))
      assert.isUndefined(EventId.derivedBefore(stream, commandId, index))
      // A UUID v4 (or v5) command id is not time-ordered: it keeps its name-based ids too.
      const v4 = crypto.randomUUID()
      assert.match(EventId.fromCommand(stream, v4, index), uuid(5))
    }
  )
})
