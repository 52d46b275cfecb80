import { existsSync, readFileSync } from "node:fs"
import { EventId, Inbox } from "@chronicle/core"
import { NatsConsumer, NatsPublisher } from "@chronicle/nats"
import { NatsServer } from "@chronicle/testing"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Logger } from "effect"

/** How many TCP connections to `port` are established on this machine, from the kernel's tables (Linux). */
const connectionsTo = (port: number) =>
  ["/proc/net/tcp", "/proc/net/tcp6"]
    .filter((table) => existsSync(table))
    .flatMap((table) => readFileSync(table, "utf8").trim().split("\n").slice(1))
    .map((line) => line.trim().split(/\s+/))
    .filter(([, , remote = "", state]) => state === "01" && Number.parseInt(remote.split(":")[1] ?? "", 16) === port)
    .length

describe.skipIf(NatsServer.skip())("NatsConsumer", () => {
  it.live("run waits for a missing stream without keeping a connection per attempt, then handles its events", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.scoped
      let signalThirdFailure = () => {}
      const thirdFailure = new Promise<void>((resolve) => {
        signalThirdFailure = resolve
      })
      let failures = 0
      const countFailures = Logger.make(({ message }) => {
        if (String(message).startsWith("billing:") && ++failures === 3) signalThirdFailure()
      })
      const handled = yield* Deferred.make<string>()
      yield* NatsConsumer.run({ servers: server.url, stream: "late", consumer: "billing" }, (event) =>
        Deferred.succeed(handled, event.eventId)
      ).pipe(Effect.provide([Inbox.layerMemory, Logger.layer([countFailures])]), Effect.forkScoped)

      yield* Effect.promise(() => thirdFailure).pipe(Effect.timeout("30 seconds"))
      assert.isAtMost(connectionsTo(Number(new URL(server.url).port)), 1, "each failed attempt closed its connection")

      // Once the stream exists, the consumer's next attempt gets going.
      const publisher = yield* NatsPublisher.make({
        servers: server.url,
        stream: { name: "late", subjects: ["late.>"] },
        subject: () => "late.events"
      })
      const event = {
        eventId: EventId.random(),
        type: "Happened",
        schemaVersion: 1,
        data: {},
        metadata: {},
        stream: "late-1",
        version: 1,
        position: 1n,
        recordedAt: new Date()
      }
      yield* publisher.publish([event])
      assert.strictEqual(yield* Deferred.await(handled).pipe(Effect.timeout("30 seconds")), event.eventId)
    })
  )
})
