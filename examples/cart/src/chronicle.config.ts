/**
 * The cart app's config module for the `chronicle` command: its aggregate, so `chronicle streams show cart-<id>`
 * decodes a cart's events and prints its state after each one, and its two Postgres read models, so `chronicle
 * projections rebuild cart-summary` can rebuild them. Use it with `--config examples/cart/src/chronicle.config.ts`.
 */
import { Cart } from "./Cart.ts"
import * as CartAnalytics from "./CartAnalytics.ts"
import * as CartSummary from "./CartSummary.ts"

/** The cart aggregate: streams `cart-<id>`. */
export const aggregates = [Cart]

/** The cart summary and the per-product analytics read models. */
export const projections = [CartSummary.model, CartAnalytics.model]
