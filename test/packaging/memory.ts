/**
 * The packaging test's in-memory app: handles commands on the in-memory event store and folds them with a projection
 * run by `ProjectionRunner.catchUp`, printing what it saw. It also names a value from every other published entry
 * point, so the strict typecheck covers them all.
 */
import {
  Aggregate,
  CheckpointStore,
  CommandHandler,
  DeadLetters,
  Decider,
  EventStore,
  Projection,
  ProjectionRunner
} from "@chronicle/core"
import { NatsPublisher } from "@chronicle/nats"
import { PgEventStore } from "@chronicle/postgres"
import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { DeciderSpec, StoreConformance } from "@chronicle/testing"
import { Console, Effect, Layer, Result, Schema, Stream } from "effect"

const Deposited = Schema.TaggedStruct("Deposited", { amount: Schema.Int })
const Command = Schema.TaggedUnion({ Deposit: { amount: Schema.Int } })

const Account = Aggregate.make({
  category: "account",
  commands: Command,
  events: Deposited,
  decider: Decider.make({
    initialState: 0,
    decide: (c: typeof Command.Type, _balance: number) => Result.succeed([Deposited.make({ amount: c.amount })]),
    evolve: (balance: number, e: typeof Deposited.Type) => balance + e.amount
  })
})

const totals = new Map<string, number>()
const decode = Projection.decodeWith(Account.events)
const projection = Projection.make({
  name: "totals",
  categories: ["account"],
  decode,
  handle: (events) =>
    Stream.runForEach(events, ({ stream, event }) =>
      Effect.sync(() => totals.set(stream, (totals.get(stream) ?? 0) + event.amount))
    )
})

const program = Effect.gen(function* () {
  yield* CommandHandler.handle(Account, "1", { _tag: "Deposit", amount: 10 }, { commandId: "a" })
  yield* CommandHandler.handle(Account, "1", { _tag: "Deposit", amount: 10 }, { commandId: "a" }) // re-sent
  const last = yield* CommandHandler.handle(Account, "2", { _tag: "Deposit", amount: 7 })
  yield* Console.log(`memory: account-2 at version ${last.version}, balance ${last.state}`)
  const checkpoint = yield* ProjectionRunner.catchUp(projection)
  yield* Console.log(`memory: projection at ${checkpoint}, totals ${JSON.stringify([...totals].sort())}`)
})

const published = [NatsPublisher.layer, PgEventStore.layer, EmbeddedPostgres.databaseUrl, DeciderSpec, StoreConformance]
if (published.some((value) => value === undefined)) throw new Error("an entry point exports nothing")

await Effect.runPromise(
  program.pipe(
    Effect.provide(Layer.mergeAll(EventStore.layerMemory, CheckpointStore.layerMemory, DeadLetters.layerMemory))
  )
)
