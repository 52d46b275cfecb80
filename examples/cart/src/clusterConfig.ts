/** What the cluster demo's processes share: the cart entity. Their sharding settings are `LocalSharding`'s. */
import { AggregateEntity } from "@chronicle/cluster"
import { Cart, CartEmpty } from "./Cart.ts"

/** The cart aggregate as a cluster entity; `CartEmpty` is its refusal. */
export const Carts = AggregateEntity.make(Cart, { error: CartEmpty })
