/**
 * Snapshot policies: when the command handler saves a snapshot. After each command that wrote events, the handler
 * asks the policy in context whether to snapshot the new state. The ready policies are every N events, a predicate on
 * the state, and never (the default). An app gives each aggregate its own policy by category:
 * `SnapshotPolicy.layerByCategory({ cart: SnapshotPolicy.everyEvents(100) })`.
 *
 * A policy's layer also owns the fibers that save snapshots. Saves run there, off the command's path. When the layer
 * ends (with the app's layer), it waits for the saves still running.
 */
import { Context, Effect, FiberSet, Layer, Option } from "effect"
import * as StreamName from "./StreamName.ts"

/** What a policy sees after a command wrote events. */
export interface Input<State = unknown> {
  /** The stream written to, `<category>-<id>`. */
  readonly stream: string
  /** The aggregate's state after the command. */
  readonly state: State
  /** The stream's version after the command. */
  readonly version: number
  /** How many events the stream holds beyond the snapshot it was loaded from (all of them without one). */
  readonly eventsSinceSnapshot: number
}

/** Decides whether to snapshot a state: pure and fast, since it runs after every command. */
export type Policy<State = unknown> = (input: Input<State>) => boolean

/** Never snapshot: every load folds the whole stream. */
export const never: Policy = () => false

/** Snapshot once `n` or more events have been written since the last snapshot (commands may write several). */
export const everyEvents =
  (n: number): Policy =>
  ({ eventsSinceSnapshot }) =>
    eventsSinceSnapshot >= n

/** Snapshot when `predicate` holds for the state, the version and the events written since the last snapshot. */
export const when =
  <State>(predicate: (state: State, version: number, eventsSinceSnapshot: number) => boolean): Policy<State> =>
  ({ state, version, eventsSinceSnapshot }) =>
    predicate(state, version, eventsSinceSnapshot)

/** The snapshot policy service; it defaults to `never`, so providing one is optional. */
export class SnapshotPolicy extends Context.Reference<Policy>("@chronicle/core/SnapshotPolicy", {
  defaultValue: () => never
}) {}

/** The fibers snapshot saves run in; none by default, and then a save runs in the command's own fiber. */
export class SaveFibers extends Context.Reference<Option.Option<FiberSet.FiberSet<void>>>(
  "@chronicle/core/SnapshotPolicy/SaveFibers",
  { defaultValue: () => Option.none() }
) {}

/** Provides fibers for snapshot saves; when the layer ends, it waits for the saves still running. */
export const layerSaveFibers: Layer.Layer<never> = Layer.effect(
  SaveFibers,
  Effect.gen(function* () {
    const fibers = yield* FiberSet.make<void>()
    yield* Effect.addFinalizer(() => FiberSet.awaitEmpty(fibers))
    return Option.some(fibers)
  })
)

/** Provides one policy for every aggregate, and the fibers its saves run in. */
export const layer = (policy: Policy): Layer.Layer<never> =>
  Layer.merge(Layer.succeed(SnapshotPolicy, policy), layerSaveFibers)

/**
 * Provides a policy per stream category (`{ cart: everyEvents(100) }`), and `otherwise` (never, unless given) for
 * the categories not listed.
 *
 * **Gotchas**: a predicate typed for one aggregate's state must be listed under that aggregate's category.
 */
export const layerByCategory = (
  policies: { readonly [category: string]: Policy<any> },
  otherwise: Policy = never
): Layer.Layer<never> => {
  const byCategory = new Map(Object.entries(policies))
  return layer((input) => (byCategory.get(StreamName.category(input.stream)) ?? otherwise)(input))
}
