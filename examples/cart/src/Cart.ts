/** A shopping cart: add and remove items, then check out once. Removal is its own event: nothing is updated. */
import { Aggregate, Decider } from "@chronicle/core"
import { Result, Schema } from "effect"

// ── Events ── stored forever: never rename a tag or field; add a new version instead.
/** Some quantity of an item was put in the cart. */
export const ItemAdded = Schema.TaggedStruct("ItemAdded", {
  sku: Schema.NonEmptyString,
  quantity: Schema.Int.check(Schema.isGreaterThan(0))
})
/** Some quantity of an item was taken out of the cart. */
export const ItemRemoved = Schema.TaggedStruct("ItemRemoved", {
  sku: Schema.NonEmptyString,
  quantity: Schema.Int.check(Schema.isGreaterThan(0))
})
/** The cart was checked out; it accepts nothing afterwards. */
export const CheckedOut = Schema.TaggedStruct("CheckedOut", {})
/** Any event of a cart. */
export const Event = Schema.Union([ItemAdded, ItemRemoved, CheckedOut])
/** Any event of a cart. */
export type Event = typeof Event.Type

// ── State ── one Schema (snapshots store it); the type is derived.
/** What a cart knows: the quantity of each SKU in it, and whether it is checked out. */
export const State = Schema.Struct({ items: Schema.ReadonlyMap(Schema.String, Schema.Int), checkedOut: Schema.Boolean })
/** What a cart knows. */
export type State = typeof State.Type
/** The state of a cart with no events. */
export const initialState: State = { items: new Map(), checkedOut: false }
// ── Fold ── records facts; makes no decisions and never fails.
/** Applies one event to the state. */
export const evolve = (state: State, event: Event): State => {
  switch (event._tag) {
    case "ItemAdded":
      return {
        ...state,
        items: new Map(state.items).set(event.sku, (state.items.get(event.sku) ?? 0) + event.quantity)
      }
    case "ItemRemoved": {
      const left = (state.items.get(event.sku) ?? 0) - event.quantity
      const items = new Map(state.items)
      if (left > 0) items.set(event.sku, left)
      else items.delete(event.sku)
      return { ...state, items }
    }
    case "CheckedOut":
      return { ...state, checkedOut: true }
  }
}

// ── Decide ── pure: the same command and state always give the same answer.
/** Any command a cart accepts. */
export const Command = Schema.TaggedUnion({
  AddItem: { sku: Schema.NonEmptyString, quantity: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 99 })) },
  RemoveItem: { sku: Schema.NonEmptyString, quantity: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 99 })) },
  CheckOut: {}
})
/** Any command a cart accepts. */
export type Command = typeof Command.Type

/** An empty cart cannot be checked out. */
export class CartEmpty extends Schema.TaggedError<CartEmpty>()("CartEmpty", {}) {}

/**
 * Decides the events a command produces, or why it is refused. Removing more than the cart holds removes what it
 * holds; removing what is not in the cart writes nothing, so a repeated removal is harmless. A checked-out cart is
 * terminal: the command handler refuses it with `StreamClosed` before `decide` runs.
 */
export const decide = (command: Command, state: State): Result.Result<ReadonlyArray<Event>, CartEmpty> => {
  switch (command._tag) {
    case "AddItem":
      return Result.succeed([ItemAdded.make({ sku: command.sku, quantity: command.quantity })])
    case "RemoveItem": {
      const held = state.items.get(command.sku) ?? 0
      return Result.succeed(
        held === 0 ? [] : [ItemRemoved.make({ sku: command.sku, quantity: Math.min(held, command.quantity) })]
      )
    }
    case "CheckOut":
      return state.items.size === 0 ? Result.fail(new CartEmpty()) : Result.succeed([CheckedOut.make({})])
  }
}

/** The cart's domain logic; a checked-out cart takes no more commands. */
export const decider = Decider.make({ initialState, decide, evolve, isTerminal: (state: State) => state.checkedOut })

/** The cart aggregate: streams `cart-<id>`. */
export const Cart = Aggregate.make({ category: "cart", commands: Command, events: Event, state: State, decider })
