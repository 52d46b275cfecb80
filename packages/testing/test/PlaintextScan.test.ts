import { randomBytes } from "node:crypto"
import { assert, describe, it, layer } from "@effect/vitest"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, headers } from "@nats-io/transport-node"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import * as NatsServer from "../src/NatsServer.ts"
import * as PgTest from "../src/PgTest.ts"
import * as PlaintextScan from "../src/PlaintextScan.ts"

const forms = (findings: ReadonlyArray<PlaintextScan.Finding>) =>
  findings.map((f) => `${f.where} ${f.value} ${f.form}`).sort()

describe("PlaintextScan", () => {
  it("finds a value inside a longer base64 blob at every byte alignment", () => {
    for (let before = 0; before < 6; before++) {
      const blob = Buffer.concat([randomBytes(before), Buffer.from("Ada Lovelace"), randomBytes(5)]).toString("base64")
      assert.deepStrictEqual(forms(PlaintextScan.findIn("blob", blob, ["Ada Lovelace", "Grace Hopper"])), [
        "blob Ada Lovelace base64"
      ])
    }
  })

  it.effect("refuses values too short to look for", () =>
    Effect.gen(function* () {
      const error = yield* PlaintextScan.jetStream({ url: "nats://127.0.0.1:1", stream: "S", values: ["Al"] }).pipe(
        Effect.flip
      )
      assert.include(error.message, `"Al" is shorter than 4 characters`)
    })
  )
})

layer(PgTest.layer(), { excludeTestServices: true })("PlaintextScan.postgres", (it) => {
  it.effect("finds values in every schema's tables: plain, JSON-escaped, hex and base64", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE SCHEMA app`
      yield* sql`CREATE TABLE app.people (name text, profile jsonb, photo bytea, token text)`
      yield* sql`CREATE TABLE public.empty_table (x int)`
      const quoted = `Ada "the Enchantress"`
      yield* sql`INSERT INTO app.people VALUES (
        'Ada Lovelace', ${JSON.stringify({ nick: quoted })}::jsonb, ${Buffer.from("x-ada@example.com-y")},
        ${Buffer.from("xGrace Hopper").toString("base64")})`
      const found = yield* PlaintextScan.postgres([
        "Ada Lovelace",
        quoted,
        "ada@example.com",
        "Grace Hopper",
        "Alan Turing"
      ])
      assert.deepStrictEqual(forms(found), [
        `app.people Ada "the Enchantress" json`,
        "app.people Ada Lovelace plain",
        "app.people Grace Hopper base64",
        "app.people ada@example.com hex"
      ])
    })
  )
})

describe.skipIf(NatsServer.skip())("PlaintextScan.jetStream", () => {
  it.live("finds values in a stream's subjects, headers and payloads, skipping deleted messages", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.scoped
      const nc = yield* Effect.acquireRelease(
        Effect.promise(() => connect({ servers: server.url })),
        (nc) => Effect.promise(() => nc.close())
      )
      yield* Effect.promise(async () => {
        const jsm = await jetstreamManager(nc)
        await jsm.streams.add({ name: "EVENTS", subjects: ["events.>"] })
        const js = jetstream(nc)
        const h = headers()
        h.set("x-note", "for Grace Hopper")
        await js.publish("events.a", JSON.stringify({ name: "Ada Lovelace" }), { headers: h })
        const deleted = await js.publish("events.b", "Alan Turing")
        await js.publish("events.c", "nothing personal")
        await jsm.streams.deleteMessage("EVENTS", deleted.seq)
      })
      const found = yield* PlaintextScan.jetStream({
        url: server.url,
        stream: "EVENTS",
        values: ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
      })
      assert.deepStrictEqual(forms(found), ["EVENTS#1 Ada Lovelace plain", "EVENTS#1 Grace Hopper plain"])
    }).pipe(Effect.scoped)
  )
})
