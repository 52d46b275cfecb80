/**
 * The laws of an aggregate, checked over random command sequences. The commands come from the aggregate's own
 * command schema, through Effect's `Arbitrary` module: a user writes no generator. Each law is an Effect. It succeeds
 * when the law held in every generated case, and otherwise fails with `LawFailed`. The failure's message shows the
 * shrunk counterexample and the token that replays it. From vitest:
 * `it.effect("laws", () => AggregateLaws.checkAll(Cart, { invariants }))`.
 *
 * The laws: invariants hold, no state is mutated, folding reproduces the state, events round-trip, snapshots plus
 * their tail equal the full fold, idempotent commands decide nothing again, and re-sent commands write nothing.
 * Commands in a terminal state (the decider's `isTerminal`) are skipped, as the command handler refuses them.
 */
import {
  type Aggregate,
  CommandHandler,
  Decider,
  type Envelope,
  type EventCodec,
  EventId,
  EventStore,
  SnapshotCodec,
  StreamName
} from "@chronicle/core"
import { Arbitrary, Data, Effect, Equal, Formatter, Hash, Result, Schema } from "effect"

/** How the laws generate and check command sequences; one options type for every law. */
export interface Options<Command, State> {
  /** How many random command sequences each law checks; 1,000 unless set. */
  readonly runs?: number
  /** The length of the longest command sequence; 20 unless set. */
  readonly maxCommands?: number
  /** The generator's seed, to repeat a run exactly; random unless set. */
  readonly seed?: string | number
  /** Replays one failure from the `Replay:` token a law printed; the other generation options are then ignored. */
  readonly replay?: string
  /** Named predicates every reachable state must satisfy, such as `"quantities are never negative"`. */
  readonly invariants?: { readonly [name: string]: (state: State) => boolean }
  /** Which commands are idempotent in which state: deciding one again right after it was accepted decides nothing. */
  readonly idempotent?: (command: Command, state: State) => boolean
  /**
   * Generates one command, instead of the generator derived from the aggregate's command schema: to make a command
   * that ends the stream rarer, for instance, since every member of a union is drawn equally often.
   */
  readonly commands?: Arbitrary.Arbitrary<Command>
}

/** A law did not hold: the message shows the shrunk counterexample and the `Replay:` token that reproduces it. */
export class LawFailed extends Schema.TaggedError<LawFailed>()("LawFailed", {
  law: Schema.String,
  report: Schema.String
}) {
  override get message() {
    return `${this.law} does not hold\n${this.report}`
  }
}

// What a property reports about one generated case; formatCheckFailure prints it as "LawBroken: <message>".
class LawBroken extends Data.TaggedError("LawBroken")<{ readonly message: string }> {}

const show = (value: unknown): string => Formatter.format(value)

const defaultRuns = 1_000
const defaultMaxCommands = 20

/**
 * Checks `property` on values of `arbitrary`. A property fails with the reason the law broke; a decider that throws
 * breaks the law too, so its input is shrunk and reported like any other counterexample.
 */
const check = <A, C, S>(
  law: string,
  arbitrary: Arbitrary.Arbitrary<A>,
  property: (value: A) => Effect.Effect<void, LawBroken>,
  options: Options<C, S>
): Effect.Effect<void, LawFailed> =>
  Arbitrary.checkEffect(
    arbitrary,
    (value) =>
      Effect.suspend(() => property(value)).pipe(
        Effect.catchDefect((defect) => Effect.fail(new LawBroken({ message: `threw ${show(defect)}` }))),
        Effect.as(true)
      ),
    {
      runs: options.runs ?? defaultRuns,
      size: options.maxCommands ?? defaultMaxCommands,
      seed: options.seed,
      replay: options.replay
    }
  ).pipe(
    Effect.flatMap((result) => {
      const report = Arbitrary.formatCheckFailure(result)
      return report === undefined ? Effect.void : Effect.fail(new LawFailed({ law, report }))
    })
  )

/** A pure property: it returns why the law broke, or `undefined` when it held. */
const pure =
  <A>(property: (value: A) => string | undefined) =>
  (value: A): Effect.Effect<void, LawBroken> => {
    const broken = property(value)
    return broken === undefined ? Effect.void : Effect.fail(new LawBroken({ message: broken }))
  }

// How many distinct strings each field keeps once a sequence's strings are shared out.
const stringsPerField = 3

const isPlainObject = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" &&
  value !== null &&
  (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)

/**
 * Random strings almost never coincide, so without help an `AddItem` and a `RemoveItem` would hardly ever name the
 * same item. This sorts the strings of each field name into a few buckets by hash and replaces each by the first
 * string of its bucket in the sequence (made storable: no NUL, no lone surrogate), so commands meet on the same keys.
 * A rewritten command the schema rejects is kept as generated.
 */
const shareStrings =
  <C>(isCommand: (input: unknown) => input is C) =>
  (commands: ReadonlyArray<C>): Array<C> => {
    const buckets = new Map<string, Array<string>>()
    const share = (field: string, value: unknown): unknown => {
      if (typeof value === "string") {
        const strings = buckets.get(field) ?? []
        buckets.set(field, strings)
        const bucket = Math.abs(Hash.string(value)) % stringsPerField
        // Stores refuse text Postgres cannot hold (NUL, lone surrogates), so the shared strings are storable.
        strings[bucket] ??= value.toWellFormed().replaceAll("\u0000", "\ufffd")
        return strings[bucket]
      }
      if (Array.isArray(value)) return value.map((item) => share(field, item))
      if (isPlainObject(value)) {
        return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, key === "_tag" ? v : share(key, v)]))
      }
      return value
    }
    return commands.map((command) => {
      const shared = share("", command)
      return isCommand(shared) ? shared : command
    })
  }

/** Random command sequences: from `options.commands`, or from the command schema with strings shared out. */
const commandSequences = <C, E extends Envelope.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C, S>
): Arbitrary.Arbitrary<ReadonlyArray<C>> => {
  const maxLength = options.maxCommands ?? defaultMaxCommands
  return options.commands === undefined
    ? Arbitrary.array(Arbitrary.schema(aggregate.commands), { maxLength }).pipe(
        Arbitrary.map(shareStrings(Schema.is(aggregate.commands)))
      )
    : Arbitrary.array(options.commands, { maxLength })
}

/** One command of a sequence: the state it met, the events it decided (none if refused or skipped), the state after. */
interface Step<C, E, S> {
  readonly command: C
  readonly before: S
  readonly events: ReadonlyArray<E>
  readonly after: S
}

/**
 * Runs commands one at a time as `Decider.run` does (refusals and commands after a terminal state change nothing),
 * showing `observe` the initial state and each state as soon as it is reached.
 */
const stepsOf = <C, E, S, Err>(
  decider: Decider.Decider<C, E, S, Err>,
  commands: ReadonlyArray<C>,
  observe: (state: S) => void = () => {}
) => {
  const steps: Array<Step<C, E, S>> = []
  let state = decider.initialState
  observe(state)
  for (const command of commands) {
    const { events, state: after } = Decider.run(decider, [command], state)
    observe(after)
    steps.push({ command, before: state, events, after })
    state = after
  }
  return steps
}

/** Law: every state reachable by random commands satisfies every named invariant (and deciding never throws). */
export const invariants = <C, E extends Envelope.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C, S> = {}
): Effect.Effect<void, LawFailed> => {
  const named = Object.entries(options.invariants ?? {})
  const broken = (state: S) => named.find(([, holds]) => !holds(state))?.[0]
  return check(
    "invariants hold in every reachable state",
    commandSequences(aggregate, options),
    pure((commands) => {
      const initially = broken(aggregate.decider.initialState)
      if (initially !== undefined) return `invariant "${initially}" is false in the initial state`
      for (const { command, events, after } of stepsOf(aggregate.decider, commands)) {
        const name = broken(after)
        if (name !== undefined) {
          return `invariant "${name}" is false after ${show(command)} decided ${show(events)}: ${show(after)}`
        }
      }
      return undefined
    }),
    options
  )
}

/**
 * Law: no state changes once reached: `decide` and `evolve` must not mutate their inputs, nor the initial state that
 * every stream shares.
 */
export const stateIsNeverMutated = <C, E extends Envelope.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C, S> = {}
): Effect.Effect<void, LawFailed> =>
  Effect.suspend(() => {
    // The initial state is one value shared by every run: a mutation in one run would spoil the next ones.
    const initiallyPrinted = show(aggregate.decider.initialState)
    return check(
      "no state is mutated",
      commandSequences(aggregate, options),
      pure((commands) => {
        const initialNow = show(aggregate.decider.initialState)
        if (initialNow !== initiallyPrinted) {
          return `the initial state changed: ${initiallyPrinted} became ${initialNow} (decide and evolve must not mutate)`
        }
        // Compared as printed when reached, not with Equal.equals, which caches results and so misses a mutation.
        const printed: Array<string> = []
        const steps = stepsOf(aggregate.decider, commands, (state) => printed.push(show(state)))
        const states = [aggregate.decider.initialState, ...steps.map((step) => step.after)]
        const changed = states.findIndex((state, index) => show(state) !== printed[index])
        if (changed === -1) return undefined
        const [was, became] = [printed[changed], show(states[changed])]
        return `a state changed after it was reached: ${was} became ${became} (decide and evolve must not mutate)`
      }),
      options
    )
  })

/** Law: folding all the events a random command sequence decided, from the initial state, gives the state reached. */
export const foldReproducesState = <C, E extends Envelope.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C, S> = {}
): Effect.Effect<void, LawFailed> =>
  check(
    "folding the decided events reproduces the state",
    commandSequences(aggregate, options),
    pure((commands) => {
      const steps = stepsOf(aggregate.decider, commands)
      const events = steps.flatMap((step) => step.events)
      const reached = steps.at(-1)?.after ?? aggregate.decider.initialState
      const folded = Decider.fold(aggregate.decider, events)
      return Equal.equals(folded, reached)
        ? undefined
        : `folding ${show(events)} gives ${show(folded)}, but deciding step by step reached ${show(reached)}`
    }),
    options
  )

// Why the state after `prefix`, stored as a snapshot (codec, JSON text, codec) and folded with `tail`, is not `full`.
const snapshotBroken = <E, S>(
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
  const decoded = codec.decode(JSON.parse(JSON.stringify(encoded.success)), "law-snapshot", prefix.length)
  if (Result.isFailure(decoded)) return `${at}: ${decoded.failure.message}`
  if (!Equal.equals(decoded.success, state)) {
    return `${at}: ${show(state)} comes back from the state schema as ${show(decoded.success)}`
  }
  const loaded = Decider.fold(decider, tail, decoded.success)
  return Equal.equals(loaded, full)
    ? undefined
    : `${at}, then ${show(tail)}: gives ${show(loaded)}, the full fold gives ${show(full)}`
}

/**
 * Law: at every point of the events a random command sequence decided, the snapshot of the state there (encoded
 * through the state schema, stored as JSON text, decoded) folded with the events after it equals the full fold. It
 * breaks when the state schema loses something, or when `evolve` depends on what a snapshot does not hold. Holds
 * trivially for an aggregate without a state schema.
 */
export const snapshotPlusTail = <C, E extends Envelope.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C, S> = {}
): Effect.Effect<void, LawFailed> => {
  const { decider, state: schema } = aggregate
  if (schema === undefined) return Effect.void
  const codec = SnapshotCodec.make(schema)
  return check(
    "snapshot + tail equals the full fold",
    commandSequences(aggregate, options),
    pure((commands) => {
      const { events, state: full } = Decider.run(decider, commands)
      for (let cut = 0; cut <= events.length; cut++) {
        const broken = snapshotBroken(decider, codec, events.slice(0, cut), events.slice(cut), full)
        if (broken !== undefined) return broken
      }
      return undefined
    }),
    options
  )
}

/** Why `event` does not come back equal from the codec after a trip through JSON, as a store keeps it. */
const roundTripBroken = <E extends Envelope.Tagged>(codec: EventCodec.EventCodec<E>, event: E): string | undefined => {
  const encoded = codec.encode(event, EventId.random(), {})
  if (Result.isFailure(encoded)) return `${show(event)} cannot be encoded: ${encoded.failure.message}`
  const stored = JSON.parse(JSON.stringify(encoded.success))
  const decoded = codec.decode({ ...stored, stream: "law-roundtrip", version: 1, position: 1n, recordedAt: new Date() })
  if (Result.isFailure(decoded)) return `${show(event)} cannot be decoded after storing: ${decoded.failure.message}`
  return Equal.equals(decoded.success, event) ? undefined : `${show(event)} comes back as ${show(decoded.success)}`
}

/**
 * Law: every event decided by a random command sequence, and every event generated from the event schema itself,
 * comes back equal after encoding, a trip through JSON (as a store keeps it) and decoding.
 */
export const eventsRoundTrip = <C, E extends Envelope.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C, S> = {}
): Effect.Effect<void, LawFailed> =>
  check(
    "every event round-trips through the event codec",
    Arbitrary.all({
      commands: commandSequences(aggregate, options),
      events: Arbitrary.array(Arbitrary.schema(aggregate.events.schema), { maxLength: 5 })
    }),
    pure(({ commands, events }) => {
      const decided = stepsOf(aggregate.decider, commands).flatMap((step) => step.events)
      for (const event of [...decided, ...events]) {
        const broken = roundTripBroken(aggregate.events, event)
        if (broken !== undefined) return broken
      }
      return undefined
    }),
    options
  )

/**
 * Law: a command that `options.idempotent` calls idempotent in the state it met decides nothing when it is decided
 * again right after it was accepted. Holds trivially without the option.
 */
export const idempotentCommands = <C, E extends Envelope.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C, S> = {}
): Effect.Effect<void, LawFailed> => {
  const { idempotent } = options
  if (idempotent === undefined) return Effect.void
  return check(
    "idempotent commands decide nothing the second time",
    commandSequences(aggregate, options),
    pure((commands) => {
      for (const { command, before, events, after } of stepsOf(aggregate.decider, commands)) {
        if (events.length === 0 || !idempotent(command, before)) continue
        // The command handler refuses any command in a terminal state before `decide` runs.
        if (Decider.isTerminal(aggregate.decider, after)) continue
        const again = aggregate.decider.decide(command, after)
        if (Result.isSuccess(again) && again.success.length > 0) {
          const decided = show(again.success)
          return `${show(command)} is idempotent in ${show(before)}, yet deciding it again decided ${decided}`
        }
      }
      return undefined
    }),
    options
  )
}

// Failures of the handler or the store; the domain's refusals and closed streams just write nothing.
const frameworkErrors = new Set([
  "ConcurrencyError",
  "EventDecodeError",
  "EventEncodeError",
  "EventStoreError",
  "InvalidAppend",
  "InvalidStreamName"
])

/**
 * Law: with the in-memory store and `CommandHandler.handle`, re-sending a command with the id it was handled under
 * writes nothing and leaves the stream's version as it was, whether it is re-sent at once or after every other command
 * of a random sequence (also once the stream is closed).
 */
export const resentCommandsWriteNothing = <C, E extends Envelope.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C, S> = {}
): Effect.Effect<void, LawFailed> =>
  check(
    "a re-sent command writes nothing",
    commandSequences(aggregate, options),
    (commands) =>
      Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        const stream = StreamName.make(aggregate.category, "law")
        const send = (command: C, commandId: string) =>
          CommandHandler.handle(aggregate, StreamName.id(stream), command, { commandId }).pipe(
            Effect.map(({ written }) => written),
            Effect.catch((error) => {
              const tag = (error as { readonly _tag?: unknown })._tag
              return typeof tag === "string" && frameworkErrors.has(tag)
                ? Effect.fail(new LawBroken({ message: `handling ${show(command)} failed: ${show(error)}` }))
                : Effect.succeed(0)
            })
          )
        const resend = Effect.fnUntraced(function* (command: C, commandId: string) {
          const version = yield* Effect.orDie(store.streamVersion(stream))
          const written = yield* send(command, commandId)
          const after = yield* Effect.orDie(store.streamVersion(stream))
          if (written !== 0 || after !== version) {
            const wrote = `wrote ${written} event(s): version ${version} → ${after}`
            return yield* new LawBroken({ message: `re-sending ${show(command)} as ${commandId} ${wrote}` })
          }
        })
        const handled: Array<readonly [C, string]> = []
        for (const [index, command] of commands.entries()) {
          const commandId = `command-${index}`
          if ((yield* send(command, commandId)) === 0) continue
          handled.push([command, commandId])
          yield* resend(command, commandId)
        }
        for (const [command, commandId] of handled) yield* resend(command, commandId)
      }).pipe(Effect.provideServiceEffect(EventStore.EventStore, EventStore.makeMemory)),
    options
  )

/**
 * Checks every law in turn and fails with the first that does not hold.
 *
 * **Gotchas**: a `replay` token belongs to the law that printed it; replay it with that law's own function.
 */
export const checkAll = <C, E extends Envelope.Tagged, S, Err>(
  aggregate: Aggregate.Aggregate<C, E, S, Err>,
  options: Options<C, S> = {}
): Effect.Effect<void, LawFailed> =>
  Effect.all(
    [
      invariants(aggregate, options),
      stateIsNeverMutated(aggregate, options),
      foldReproducesState(aggregate, options),
      eventsRoundTrip(aggregate, options),
      snapshotPlusTail(aggregate, options),
      idempotentCommands(aggregate, options),
      resentCommandsWriteNothing(aggregate, options)
    ],
    { discard: true }
  )
