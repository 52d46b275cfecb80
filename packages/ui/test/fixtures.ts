/**
 * A small shop for the stream browser's tests: carts, a bank account with personal data (sealed, one customer
 * forgotten), and a projection that parks every checkout it is given, all in memory.
 */
import {
  CheckpointStore,
  CommandHandler,
  CryptoShredding,
  DeadLetters,
  EventStore,
  KeyStore,
  Projection,
  ProjectionRunner
} from "@chronicle/core"
import { Effect, Layer, Stream } from "effect"
import { Account } from "../../../examples/bank/src/Account.ts"
import { Cart, type Command, type State } from "../../../examples/cart/src/Cart.ts"
import * as StreamBrowser from "../src/StreamBrowser.ts"

/** Counts cart events; a checkout fails it, so the projection parks it. */
export const cartCounter = Projection.make({
  name: "cart-counter",
  categories: ["cart"],
  decode: Projection.recorded,
  handle: (events) =>
    Stream.runForEach(events, (event) =>
      event.type === "CheckedOut" ? Effect.fail(new Error("checkouts are not counted")) : Effect.void
    ),
  retries: 0,
  onFailure: "park"
})

/** The stores the browser reads: the raw log, keys, checkpoints, dead letters. */
export const Stores = Layer.mergeAll(
  EventStore.layerMemory,
  KeyStore.layerMemory,
  CheckpointStore.layerMemory,
  DeadLetters.layerMemory
)

/** The token of the test server. */
export const token = "test-token-1234"

/** The browser over `Stores`, with writes allowed; the cart counter runs in this process. */
export const browser = (options: Partial<StreamBrowser.Options> = {}) =>
  Layer.unwrap(
    Effect.map(StreamBrowser.inProcess([cartCounter]), (projections) =>
      StreamBrowser.layer({
        token,
        allowWrites: true,
        aggregates: [Cart, Account],
        renderers: { cart: (state: State) => `${state.items.size} line(s)` },
        projections,
        ...options
      })
    )
  )

/** Sends cart commands through the raw store. */
export const cart = (id: string, commands: ReadonlyArray<Command>) =>
  Effect.forEach(commands, (command) => CommandHandler.handle(Cart, id, command), { discard: true })

/** Opens account `id` for customer `customerId` through the shredding store, so the names are sealed. */
export const openAccount = (id: string, customerId: string) =>
  Effect.gen(function* () {
    const shredding = yield* CryptoShredding.make(yield* EventStore.EventStore, { aggregates: [Account] })
    yield* CommandHandler.handle(Account, id, {
      _tag: "Open",
      customerId,
      firstName: "Ada",
      lastName: "Lovelace"
    }).pipe(
      Effect.andThen(CommandHandler.handle(Account, id, { _tag: "Deposit", cents: 500 })),
      Effect.provideService(EventStore.EventStore, shredding)
    )
  })

/** Runs the cart counter over the log once, parking the checkouts. */
export const runCounter = ProjectionRunner.catchUp(cartCounter)
