/**
 * The snapshot law, for any aggregate with a state schema: for random command sequences generated from the
 * aggregate's command schema, the state loaded from a snapshot taken at any point plus the events after it equals the
 * state folded from every event. The snapshot goes through what a store does to it: the aggregate's `SnapshotCodec`,
 * JSON text, and back. From vitest: `it.effect("snapshots", () => SnapshotProperties.snapshotPlusTail(Cart))`.
 *
 * It fails when the state schema loses or changes something (a field left out, a `Map` whose keys do not round-trip,
 * a number that is not JSON), or when `evolve` depends on something a snapshot does not hold (a mutated input, an
 * object's identity).
 */
import { type Aggregate, Decider, type EventCodec, SnapshotCodec } from "@chronicle/core"
import { Arbitrary, Data, Effect, Equal, Formatter, Result, Schema } from "effect"

/** How the law generates command sequences. */
export interface Options<Command> {
  /** How many random command sequences to check; 200 unless set. */
  readonly runs?: number
  /** The length of the longest command sequence; 30 unless set. */
  readonly maxCommands?: number
  /** The generator's seed, to repeat a run exactly; random unless set. */
  readonly seed?: string | number
  /** Replays one failure from the `Replay:` token the law printed; the other generation options are then ignored. */
  readonly replay?: string
  /** Generates one command, instead of the generator derived from the aggregate's command schema. */
  readonly commands?: Arbitrary.Arbitrary<Command>
}

/** The law does not hold: the message shows the shrunk command sequence, where it broke, and the replay token. */
export class SnapshotLawFailed extends Schema.TaggedError<SnapshotLawFailed>()("SnapshotLawFailed", {
  category: Schema.String,
  report: Schema.String
}) {
  override get message() {
    return `snapshot + tail differs from the full fold for ${this.category}\n${this.report}`
  }
}

/** The aggregate has no state schema, so it cannot be snapshotted. */
export class NoStateSchema extends Schema.TaggedError<NoStateSchema>()("NoStateSchema", { category: Schema.String }) {
  override get message() {
    return `${this.category} has no state schema: give Aggregate.make a \`state\` to snapshot it`
  }
}

// Why one generated case broke the law; the check prints it beside the shrunk input.
class Broken extends Data.TaggedError("Broken")<{ readonly message: string }> {}

const show = (value: unknown): string => Formatter.format(value)

/** Why the state after `prefix`, stored and loaded as a snapshot and folded with `tail`, is not `full`. */
const brokenAt = <E, S>(
  decider: Decider.Decider<never, E, S, unknown>,
  codec: SnapshotCodec.SnapshotCodec<S>,
  prefix: ReadonlyArray<E>,
  tail: ReadonlyArray<E>,
  full: S
): string | undefined => {
  const at = `a snapshot after ${prefix.length} event(s)`
  const state = Decider.fold(decider, prefix)
  const encoded = codec.encode(state, "law-snapshot", prefix.length)
  if (Result.isFailure(encoded)) return `${at}: ${encoded.failure.message}`
  const stored: unknown = JSON.parse(JSON.stringify(encoded.success))
  const decoded = codec.decode(stored, "law-snapshot", prefix.length)
  if (Result.isFailure(decoded)) return `${at}: ${decoded.failure.message}`
  if (!Equal.equals(decoded.success, state)) {
    return `${at}: ${show(state)} comes back from the snapshot as ${show(decoded.success)}`
  }
  const loaded = Decider.fold(decider, tail, decoded.success)
  return Equal.equals(loaded, full)
    ? undefined
    : `${at}, then ${show(tail)}: gives ${show(loaded)}, the full fold gives ${show(full)}`
}

/**
 * Law: for every random command sequence and every point in the events it decided, the snapshot of the state at that
 * point (encoded, stored as JSON text, decoded) folded with the events after it equals the full fold.
 */
export const snapshotPlusTail = <C, E extends EventCodec.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C> = {}
): Effect.Effect<void, SnapshotLawFailed | NoStateSchema> => {
  const { category, decider, state: schema } = aggregate
  if (schema === undefined) return Effect.fail(new NoStateSchema({ category }))
  const codec = SnapshotCodec.make(schema)
  const command = options.commands ?? Arbitrary.schema(aggregate.commands)
  return Arbitrary.checkEffect(
    Arbitrary.array(command, { maxLength: options.maxCommands ?? 30 }),
    (commands) =>
      Effect.suspend(() => {
        const { events, state: full } = Decider.run(decider, commands)
        for (let cut = 0; cut <= events.length; cut++) {
          const broken = brokenAt(decider, codec, events.slice(0, cut), events.slice(cut), full)
          if (broken !== undefined) return Effect.fail(new Broken({ message: broken }))
        }
        return Effect.succeed(true)
      }).pipe(Effect.catchDefect((defect) => Effect.fail(new Broken({ message: `threw ${show(defect)}` })))),
    { runs: options.runs ?? 200, seed: options.seed, replay: options.replay }
  ).pipe(
    Effect.flatMap((result) => {
      const report = Arbitrary.formatCheckFailure(result)
      return report === undefined ? Effect.void : Effect.fail(new SnapshotLawFailed({ category, report }))
    })
  )
}
