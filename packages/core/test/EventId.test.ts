import { assert, describe, it } from "@effect/vitest"
import * as EventId from "../src/EventId.ts"

const uuid = (version: number) =>
  new RegExp(`^[0-9a-f]{8}-[0-9a-f]{4}-${version}[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

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
})
