import { AggregateLaws, DeciderSpec } from "@chronicle/testing"
import { describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Cart, CartEmpty, CheckedOut, type Command, decider, ItemAdded, ItemRemoved, type State } from "../src/Cart.ts"

const spec = DeciderSpec.for(decider)
const add = (sku: string, quantity: number): Command => ({ _tag: "AddItem", sku, quantity })
const remove = (sku: string, quantity: number): Command => ({ _tag: "RemoveItem", sku, quantity })
const checkOut: Command = { _tag: "CheckOut" }
const added = (sku: string, quantity: number) => ItemAdded.make({ sku, quantity })
const removed = (sku: string, quantity: number) => ItemRemoved.make({ sku, quantity })
const holding = (...items: ReadonlyArray<readonly [string, number]>): State => ({
  items: new Map(items),
  checkedOut: false
})

describe("Cart rules", () => {
  it("adding an item records how many were added, on top of what the cart holds", () => {
    spec.when(add("apple", 2)).then([added("apple", 2)])
    spec
      .given([added("apple", 2)])
      .when(add("apple", 3))
      .thenState(holding(["apple", 5]))
  })

  it("removing an item is its own event", () => {
    spec
      .given([added("apple", 3)])
      .when(remove("apple", 1))
      .then([removed("apple", 1)])
    spec
      .given([added("apple", 3), added("pear", 1)])
      .when(remove("apple", 1))
      .thenState(holding(["apple", 2], ["pear", 1]))
  })

  it("removing what is not in the cart writes nothing", () => {
    spec.when(remove("apple", 1)).then([])
    spec
      .given([added("apple", 2), removed("apple", 2)])
      .when(remove("apple", 1))
      .then([])
  })

  it("removing more than the cart holds removes what it holds, and the item leaves the cart", () => {
    spec
      .given([added("apple", 2)])
      .when(remove("apple", 5))
      .then([removed("apple", 2)])
    spec
      .given([added("apple", 2), added("pear", 1)])
      .when(remove("apple", 5))
      .thenState(holding(["pear", 1]))
  })

  it("an empty cart cannot check out", () => {
    spec.when(checkOut).thenFails(new CartEmpty())
    spec
      .given([added("apple", 1), removed("apple", 1)])
      .when(checkOut)
      .thenFails(new CartEmpty())
  })

  it("a cart with items checks out", () => {
    spec
      .given([added("apple", 1)])
      .when(checkOut)
      .then([CheckedOut.make({})])
  })

  it("nothing changes after checkout", () => {
    const checkedOut = spec.given([added("apple", 1), CheckedOut.make({})])
    for (const command of [add("pear", 1), remove("apple", 1), checkOut]) {
      checkedOut.when(command).thenClosed()
    }
  })
})

describe("Cart properties, over 1,000 random command sequences each", () => {
  const invariants = {
    "quantities are never negative": (state: State) => [...state.items.values()].every((quantity) => quantity >= 0),
    "an item whose quantity falls to zero leaves the cart": (state: State) =>
      [...state.items.values()].every((quantity) => quantity !== 0)
  }

  it.effect("quantities are never negative, and an item that falls to zero leaves the cart", () =>
    AggregateLaws.invariants(Cart, { invariants })
  )

  it.effect("no state is mutated, and folding the events reproduces the state", () =>
    Effect.andThen(AggregateLaws.stateIsNeverMutated(Cart), AggregateLaws.foldReproducesState(Cart))
  )

  it.effect("every event round-trips through the event codec", () => AggregateLaws.eventsRoundTrip(Cart))

  it.effect("removing everything and checking out are idempotent", () =>
    AggregateLaws.idempotentCommands(Cart, {
      idempotent: (command, state) =>
        command._tag === "CheckOut" ||
        (command._tag === "RemoveItem" && command.quantity >= (state.items.get(command.sku) ?? 0))
    })
  )

  it.effect("a re-sent command writes nothing", () => AggregateLaws.resentCommandsWriteNothing(Cart))
})
