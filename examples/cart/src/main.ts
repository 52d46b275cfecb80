/**
 * `pnpm demo`: a cart's life on a real Postgres. Starts an embedded Postgres 18 (or uses `DATABASE_URL`), applies
 * Chronicle's migrations, handles a few commands — one refused, one re-sent — and prints the cart's event history
 * with global positions and the state after each event. With `NATS_URL` set, an outbox also publishes the cart's
 * events to NATS JetStream (subjects `chronicle.cart.<type>`) and the demo prints what JetStream acknowledged.
 */
import { CheckpointStore, CommandHandler, Decider, EventStore, Outbox } from "@chronicle/core"
import { NatsMessage, NatsPublisher } from "@chronicle/nats"
import { PgCheckpointStore, PgEventStore, PgLease, PgMigrations } from "@chronicle/postgres"
import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Layer, Redacted, Schedule, Stream } from "effect"
import { Cart, type Command, type State } from "./Cart.ts"

const showState = (state: State) =>
  `${[...state.items].map(([sku, quantity]) => `${sku}×${quantity}`).join(", ") || "(empty)"}${state.checkedOut ? ", checked out" : ""}`

const send = (id: string, command: Command, commandId?: string) =>
  CommandHandler.handle(Cart, id, command, commandId === undefined ? {} : { commandId }).pipe(
    Effect.tap((handled) =>
      Console.log(`${command._tag.padEnd(10)} ${JSON.stringify(command).padEnd(48)} → ${handled.written} event(s)`)
    ),
    Effect.catchTags({
      CartEmpty: (error) => Console.log(`${command._tag.padEnd(10)} refused: ${error._tag}`),
      StreamClosed: (error) => Console.log(`${command._tag.padEnd(10)} refused: ${error.message}`)
    })
  )

/** Runs the outbox until JetStream has acknowledged every event of `stream`, and prints their subjects. */
const publishToNats = (servers: string, stream: string) =>
  Effect.gen(function* () {
    yield* Console.log(`\nPublishing through the outbox to NATS JetStream at ${servers}:`)
    yield* Layer.build(Outbox.layer({ categories: ["cart"] }).pipe(Layer.provide(NatsPublisher.layer({ servers }))))
    const store = yield* EventStore.EventStore
    const events = yield* Stream.runCollect(store.readStream(stream))
    const last = events.at(-1)?.position ?? 0n
    yield* CheckpointStore.CheckpointStore.use((checkpoints) => checkpoints.load("outbox")).pipe(
      Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (position) => position >= last })
    )
    for (const event of events) yield* Console.log(`  acknowledged  ${NatsMessage.subject(event)}  ${event.eventId}`)
  }).pipe(Effect.scoped)

const program = Effect.gen(function* () {
  const cartId = crypto.randomUUID().slice(0, 8)
  yield* Console.log(`\nCommands for cart-${cartId}:`)
  yield* send(cartId, { _tag: "CheckOut" })
  yield* send(cartId, { _tag: "AddItem", sku: "apple", quantity: 3 }, "add-apples")
  yield* send(cartId, { _tag: "AddItem", sku: "apple", quantity: 3 }, "add-apples") // re-sent: writes nothing
  yield* send(cartId, { _tag: "AddItem", sku: "pear", quantity: 1 })
  yield* send(cartId, { _tag: "RemoveItem", sku: "apple", quantity: 1 })
  yield* send(cartId, { _tag: "RemoveItem", sku: "plum", quantity: 1 }) // not in the cart: writes nothing
  yield* send(cartId, { _tag: "CheckOut" })
  yield* send(cartId, { _tag: "AddItem", sku: "kiwi", quantity: 1 }) // after checkout: refused

  yield* Console.log(`\nHistory of cart-${cartId} (position, version, event → state):`)
  const store = yield* EventStore.EventStore
  let state = Cart.decider.initialState
  yield* store.readStream(`cart-${cartId}`).pipe(
    Stream.mapEffect((recorded) =>
      Effect.map(Effect.fromResult(Cart.events.decode(recorded)), (event) => ({ recorded, event }))
    ),
    Stream.runForEach(({ recorded, event }) => {
      state = Decider.fold(Cart.decider, [event], state)
      const { _tag, ...fields } = event
      return Console.log(
        `  #${String(recorded.position).padEnd(14)} v${recorded.version}  ${_tag.padEnd(11)} ${JSON.stringify(fields).padEnd(30)} → ${showState(state)}`
      )
    })
  )
  const natsUrl = process.env.NATS_URL
  if (natsUrl !== undefined && natsUrl !== "") yield* publishToNats(natsUrl, `cart-${cartId}`)
})

const StoreLive = Layer.mergeAll(PgEventStore.layer(), PgCheckpointStore.layer, PgLease.layer()).pipe(
  Layer.provideMerge(PgMigrations.layer),
  Layer.provideMerge(
    Layer.unwrap(
      Effect.map(EmbeddedPostgres.databaseUrl, (url) => PgClient.layer({ url: Redacted.make(url), maxConnections: 4 }))
    )
  )
)

program.pipe(Effect.provide(StoreLive), NodeRuntime.runMain)
