import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Result, Schema, Stream } from "effect"
import * as Aggregate from "../src/Aggregate.ts"
import * as AggregateLoader from "../src/AggregateLoader.ts"
import * as CommandHandler from "../src/CommandHandler.ts"
import * as Decider from "../src/Decider.ts"
import * as EventId from "../src/EventId.ts"
import * as EventStore from "../src/EventStore.ts"
import * as ExpectedVersion from "../src/ExpectedVersion.ts"
import * as SnapshotPolicy from "../src/SnapshotPolicy.ts"
import * as SnapshotStore from "../src/SnapshotStore.ts"
import * as StreamName from "../src/StreamName.ts"

// A bank account: deposits, withdrawals within the balance, and closing, which pays out what is left.
const amount = Schema.Int.check(Schema.isGreaterThan(0))
const Deposited = Schema.TaggedStruct("Deposited", { amount })
const Withdrawn = Schema.TaggedStruct("Withdrawn", { amount })
const Closed = Schema.TaggedStruct("Closed", {})
const Event = Schema.Union([Deposited, Withdrawn, Closed])
type Event = typeof Event.Type
const Command = Schema.TaggedUnion({
  Deposit: { amount: Schema.Int },
  Withdraw: { amount: Schema.Int },
  Close: {}
})
type Command = typeof Command.Type
interface State {
  readonly balance: number
  readonly closed: boolean
}
class InsufficientFunds extends Schema.TaggedError<InsufficientFunds>()("InsufficientFunds", {
  balance: Schema.Int
}) {}

const Account = Aggregate.make({
  category: "account",
  commands: Command,
  events: Event,
  decider: Decider.make({
    initialState: { balance: 0, closed: false } as State,
    decide: (command: Command, { balance }: State): Result.Result<ReadonlyArray<Event>, InsufficientFunds> => {
      switch (command._tag) {
        case "Deposit": // a zero deposit changes nothing
          return Result.succeed(command.amount === 0 ? [] : [Deposited.make({ amount: command.amount })])
        case "Withdraw":
          return command.amount > balance
            ? Result.fail(new InsufficientFunds({ balance }))
            : Result.succeed([Withdrawn.make({ amount: command.amount })])
        case "Close":
          return Result.succeed([...(balance > 0 ? [Withdrawn.make({ amount: balance })] : []), Closed.make({})])
      }
    },
    evolve: (state: State, event: Event): State => {
      switch (event._tag) {
        case "Deposited":
          return { ...state, balance: state.balance + event.amount }
        case "Withdrawn":
          return { ...state, balance: state.balance - event.amount }
        case "Closed":
          return { ...state, closed: true }
      }
    },
    isTerminal: (state: State) => state.closed
  })
})

const deposit = (amount: number): Command => ({ _tag: "Deposit", amount })
const close: Command = { _tag: "Close" }
const handle = (command: Command, options?: CommandHandler.HandleOptions) =>
  CommandHandler.handle(Account, "1", command, options)
const stored = EventStore.EventStore.use((store) => Stream.runCollect(store.readStream("account-1")))
const storedEvents = Effect.map(stored, (events) =>
  events.map((recorded) => Result.getOrThrow(Account.events.decode(recorded)))
)

/**
 * An in-memory store in which another writer can get in first: before each of our next `rivals` appends, a rival
 * handler deposits 5 into the same account through the same store. Counts our append attempts.
 */
const contested = Effect.gen(function* () {
  const inner = yield* EventStore.makeMemory
  const counts = { rivals: 0, appends: 0 }
  const rival = (stream: string) =>
    CommandHandler.handle(Account, StreamName.id(stream), deposit(5)).pipe(
      Effect.provideService(EventStore.EventStore, inner),
      Effect.orDie
    )
  const store = EventStore.EventStore.of({
    ...inner,
    append: (stream, events, expected) =>
      Effect.suspend(() => {
        counts.appends++
        return Effect.andThen(counts.rivals-- > 0 ? rival(stream) : Effect.void, inner.append(stream, events, expected))
      })
  })
  return { store, counts }
})

/** The account with a state schema, so it can be snapshotted. */
const Snapshotted = Aggregate.make({
  ...Account,
  events: Event,
  state: Schema.Struct({ balance: Schema.Int, closed: Schema.Boolean })
})

/** Handles `command` on account 1 of `Snapshotted`. */
const runSnapshotted = (command: Command, options?: CommandHandler.HandleOptions) =>
  CommandHandler.handle(Snapshotted, "1", command, options)

describe("CommandHandler", () => {
  it.effect("handles a command: loads the stream, decides, appends at the loaded version", () =>
    Effect.gen(function* () {
      const first = yield* handle(deposit(10))
      assert.deepStrictEqual(first, {
        stream: "account-1",
        events: [Deposited.make({ amount: 10 })],
        state: { balance: 10, closed: false },
        version: 1,
        written: 1
      })
      const second = yield* handle({ _tag: "Withdraw", amount: 4 })
      assert.deepStrictEqual([second.state, second.version], [{ balance: 6, closed: false }, 2])
      const loaded = yield* AggregateLoader.load(Account, "1")
      assert.deepStrictEqual([loaded.state, loaded.version], [{ balance: 6, closed: false }, 2])
      assert.deepStrictEqual(yield* storedEvents, [Deposited.make({ amount: 10 }), Withdrawn.make({ amount: 4 })])
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.effect(
    "a refusal is the domain's typed error and writes nothing; a command that decides nothing writes nothing",
    () =>
      Effect.gen(function* () {
        const refused = yield* Effect.flip(handle({ _tag: "Withdraw", amount: 5 }))
        assert.deepStrictEqual(refused, new InsufficientFunds({ balance: 0 }))
        const unchanged = yield* handle(deposit(0))
        assert.deepStrictEqual([unchanged.events, unchanged.version, unchanged.written], [[], 0, 0])
        assert.deepStrictEqual(yield* stored, [])
      }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.live("after a concurrent write it reloads and decides again on the new state", () =>
    Effect.gen(function* () {
      const { store, counts } = yield* contested
      yield* Effect.gen(function* () {
        yield* handle(deposit(10))
        counts.rivals = 1
        counts.appends = 0
        const closed = yield* handle(close)
        assert.strictEqual(counts.appends, 2)
        // Decided again after the rival's deposit: the payout is 15, not the 10 of the first attempt.
        assert.deepStrictEqual(closed.events, [Withdrawn.make({ amount: 15 }), Closed.make({})])
        assert.deepStrictEqual([closed.state, closed.version], [{ balance: 0, closed: true }, 4])
        assert.deepStrictEqual(yield* storedEvents, [
          Deposited.make({ amount: 10 }),
          Deposited.make({ amount: 5 }),
          Withdrawn.make({ amount: 15 }),
          Closed.make({})
        ])
      }).pipe(Effect.provideService(EventStore.EventStore, store))
    })
  )

  it.live("gives up with the ConcurrencyError after maxRetries, having written nothing of its own", () =>
    Effect.gen(function* () {
      const { store, counts } = yield* contested
      counts.rivals = 100
      yield* Effect.gen(function* () {
        const error = yield* Effect.flip(handle(deposit(1), { maxRetries: 2 }))
        assert.strictEqual(error._tag, "ConcurrencyError")
        assert.strictEqual(counts.appends, 3)
        assert.deepStrictEqual(yield* storedEvents, [
          Deposited.make({ amount: 5 }),
          Deposited.make({ amount: 5 }),
          Deposited.make({ amount: 5 })
        ])
      }).pipe(Effect.provideService(EventStore.EventStore, store))
    })
  )

  it.live("32 concurrent handlers of one aggregate all get through with the default retry, versions 1..32", () =>
    Effect.gen(function* () {
      const inner = yield* EventStore.makeMemory
      let conflicts = 0
      // Yields before appending, as a database round trip would, so that the handlers' loads and appends interleave.
      const store = EventStore.EventStore.of({
        ...inner,
        append: (stream, events, expected) =>
          Effect.andThen(Effect.yieldNow, inner.append(stream, events, expected)).pipe(
            Effect.tapError((error) => Effect.sync(() => error._tag === "ConcurrencyError" && conflicts++))
          )
      })
      // 32 at once with the default retry: every one succeeds.
      yield* Effect.forEach(
        Array.from({ length: 32 }, (_, i) => i + 1),
        (n) => handle(deposit(n)),
        {
          concurrency: "unbounded",
          discard: true
        }
      ).pipe(Effect.provideService(EventStore.EventStore, store))
      const loaded = yield* AggregateLoader.load(Account, "1").pipe(Effect.provideService(EventStore.EventStore, inner))
      assert.deepStrictEqual([loaded.state.balance, loaded.version], [528, 32])
      const versions = (yield* Stream.runCollect(inner.readStream("account-1"))).map((event) => event.version)
      assert.deepStrictEqual(
        versions,
        Array.from({ length: 32 }, (_, i) => i + 1)
      )
      assert.isAbove(conflicts, 0, "the handlers never raced, so no retry was exercised")
    })
  )

  it.effect("a command id makes a re-sent command write nothing, at once or after other commands", () =>
    Effect.gen(function* () {
      const first = yield* handle(deposit(10), { commandId: "command-1" })
      assert.strictEqual(first.written, 1)
      const again = yield* handle(deposit(10), { commandId: "command-1" })
      assert.deepStrictEqual(again, { ...first, events: [], written: 0 })
      yield* handle(deposit(5), { commandId: "command-2" })
      const later = yield* handle(deposit(10), { commandId: "command-1" })
      assert.deepStrictEqual([later.written, later.version, later.state.balance], [0, 2, 15])
      const events = yield* stored
      assert.deepStrictEqual(
        events.map((event) => event.eventId),
        [EventId.fromCommand("account-1", "command-1", 0), EventId.fromCommand("account-1", "command-2", 0)]
      )
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.effect("a command whose duplicate lands between its load and its append reports the stream it leaves", () =>
    Effect.gen(function* () {
      const inner = yield* EventStore.makeMemory
      // The same command, sent twice at once: the other send appends the very same events just before ours.
      const racing = EventStore.EventStore.of({
        ...inner,
        append: (stream, events, expected) =>
          Effect.andThen(inner.append(stream, events, expected), inner.append(stream, events, expected))
      })
      const handled = yield* handle(deposit(10), { commandId: "command-1" }).pipe(
        Effect.provideService(EventStore.EventStore, racing)
      )
      assert.deepStrictEqual([handled.written, handled.version, handled.state.balance], [0, 1, 10])
    })
  )

  it.effect("a closed stream refuses commands with StreamClosed, but a re-sent command is still a no-op", () =>
    Effect.gen(function* () {
      yield* handle(deposit(10))
      yield* handle(close, { commandId: "closing" })
      const error = yield* Effect.flip(handle(deposit(1)))
      assert.deepStrictEqual(error, new CommandHandler.StreamClosed({ stream: "account-1", version: 3 }))
      assert.strictEqual((yield* handle(close, { commandId: "closing" })).written, 0)
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.effect(
    "stores the metadata with every event, and the command id as causation id unless one is given",
    () =>
      Effect.gen(function* () {
        yield* handle(deposit(10), { commandId: "deposit-1", metadata: { causationId: "event-7" } })
        yield* handle(close, { commandId: "close-1", metadata: { correlationId: "correlation-1", tenant: "acme" } })
        assert.deepStrictEqual(
          (yield* stored).map((event) => event.metadata),
          [
            { causationId: "event-7" },
            { correlationId: "correlation-1", tenant: "acme", causationId: "close-1" },
            { correlationId: "correlation-1", tenant: "acme", causationId: "close-1" }
          ]
        )
      }).pipe(Effect.provide(EventStore.layerMemory), Effect.withTracerEnabled(false)) // no trace context in the way
  )

  it.effect("a stored event that does not decode fails the command with EventDecodeError", () =>
    Effect.gen(function* () {
      yield* EventStore.EventStore.use((store) =>
        store.append(
          "account-1",
          [{ eventId: EventId.random(), type: "Deposited", schemaVersion: 1, data: { amount: -1 }, metadata: {} }],
          ExpectedVersion.noStream
        )
      )
      const error = yield* Effect.flip(handle(deposit(1)))
      assert.deepStrictEqual([error._tag, (error as { readonly version?: number }).version], ["EventDecodeError", 1])
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.effect(
    "a command that does not fit the command schema is InvalidCommand with the issue's path, and writes nothing",
    () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(handle({ _tag: "Deposit", amount: "ten" } as unknown as Command))
        assert.deepStrictEqual(
          error._tag === "InvalidCommand" ? [error._tag, error.aggregate, error.stream, error.path] : [error._tag],
          ["InvalidCommand", "account", "account-1", "amount"]
        )
        const unknownTag = yield* Effect.flip(handle({ _tag: "Borrow", amount: 1 } as unknown as Command))
        assert.strictEqual(unknownTag._tag, "InvalidCommand")
        assert.deepStrictEqual(yield* stored, [])
      }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.effect("a throwing decide or evolve is a defect naming the aggregate, stream, version and command or event", () =>
    Effect.gen(function* () {
      const throwing = (where: "decide" | "evolve") =>
        Aggregate.make({
          ...Account,
          events: Event,
          decider: {
            ...Account.decider,
            decide: (command: Command, state: State) => {
              if (where === "decide") throw new Error("boom in decide")
              return Account.decider.decide(command, state)
            },
            evolve: (state: State, event: Event) => {
              if (where === "evolve" && state.balance > 0) throw new Error("boom in evolve")
              return Account.decider.evolve(state, event)
            }
          }
        })
      const defectOf = (exit: Exit.Exit<unknown, unknown>) =>
        Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : "succeeded"
      yield* handle(deposit(10))
      const decide = defectOf(yield* Effect.exit(CommandHandler.handle(throwing("decide"), "1", deposit(5))))
      for (const part of ["account", "decide", "account-1@1", "Deposit", "boom in decide"]) assert.include(decide, part)
      yield* handle(deposit(5))
      // Loading folds Deposited(10) into a positive balance, then evolve throws on the second event, at version 2.
      const evolve = defectOf(yield* Effect.exit(CommandHandler.handle(throwing("evolve"), "1", deposit(5))))
      for (const part of ["account", "evolve", "account-1@2", "Deposited", "boom in evolve"])
        assert.include(evolve, part)
    }).pipe(Effect.provide(EventStore.layerMemory))
  )

  it.live("the retry is configurable per layer, and per call over it", () =>
    Effect.gen(function* () {
      const { store, counts } = yield* contested
      counts.rivals = 10
      const byLayer = yield* Effect.flip(handle(deposit(1))).pipe(
        Effect.provideService(EventStore.EventStore, store),
        Effect.provide(CommandHandler.layerRetry({ maxRetries: 1, backoff: { min: "1 millis", max: "1 millis" } }))
      )
      assert.deepStrictEqual([byLayer._tag, counts.appends], ["ConcurrencyError", 2])
      const byCall = yield* handle(deposit(1), { maxRetries: 20 }).pipe(
        Effect.provideService(EventStore.EventStore, store),
        Effect.provide(CommandHandler.layerRetry({ maxRetries: 1, backoff: { min: "1 millis", max: "1 millis" } }))
      )
      assert.strictEqual(byCall.written, 1)
    })
  )

  it.live(
    "handleFrom decides on the Loaded it is given, returns the next one, and reloads after a concurrent write",
    () =>
      Effect.gen(function* () {
        const { store: contestedStore, counts } = yield* contested
        let reads = 0
        const store = EventStore.EventStore.of({
          ...contestedStore,
          readStream: (stream, options) => {
            reads++
            return contestedStore.readStream(stream, options)
          }
        })
        yield* Effect.gen(function* () {
          const start = yield* AggregateLoader.load(Account, "1")
          const first = yield* CommandHandler.handleFrom(Account, "1", start, deposit(10), { commandId: "c-1" })
          assert.deepStrictEqual(
            [first.loaded.state, first.loaded.version, reads],
            [{ balance: 10, closed: false }, 1, 1]
          )
          // Re-sent: recognised from the ids of the Loaded it returned, with no read and no append.
          counts.appends = 0
          const again = yield* CommandHandler.handleFrom(Account, "1", first.loaded, deposit(10), { commandId: "c-1" })
          assert.deepStrictEqual([again.written, again.version, counts.appends, reads], [0, 1, 0, 1])
          // Stale: a rival deposits 5 before our append, which conflicts; the retry loads and pays out 15.
          counts.rivals = 1
          const closed = yield* CommandHandler.handleFrom(Account, "1", again.loaded, close)
          assert.deepStrictEqual(closed.events, [Withdrawn.make({ amount: 15 }), Closed.make({})])
          assert.deepStrictEqual([closed.loaded.state, closed.loaded.version], [{ balance: 0, closed: true }, 4])
        }).pipe(Effect.provideService(EventStore.EventStore, store))
      })
  )

  it.effect("handleFrom moves the Loaded's snapshot version when the policy asked for a snapshot", () =>
    Effect.gen(function* () {
      let loaded = yield* AggregateLoader.load(Snapshotted, "1")
      const versions: Array<number> = []
      for (let i = 0; i < 5; i++) {
        loaded = (yield* CommandHandler.handleFrom(Snapshotted, "1", loaded, deposit(1))).loaded
        versions.push(loaded.snapshotVersion)
      }
      assert.deepStrictEqual(versions, [0, 2, 2, 4, 4])
    }).pipe(
      Effect.provideService(SnapshotPolicy.SnapshotPolicy, SnapshotPolicy.everyEvents(2)),
      Effect.provide(Layer.merge(EventStore.layerMemory, SnapshotStore.layerMemory))
    )
  )

  it.effect("a command re-sent behind a snapshot succeeds with written 0, however the state decides now", () =>
    Effect.gen(function* () {
      // Snapshotted after every event (saved in the command's own fiber).
      const run = runSnapshotted
      const withdraw = (amount: number): Command => ({ _tag: "Withdraw", amount })
      yield* run(deposit(10))
      yield* run(withdraw(5), { commandId: "withdraw-1" })
      yield* run(withdraw(4))
      assert.strictEqual((yield* AggregateLoader.load(Snapshotted, "1")).snapshotVersion, 3)
      // The balance is 1 now: deciding withdraw(5) again would refuse it.
      const again = yield* run(withdraw(5), { commandId: "withdraw-1" })
      const unchanged = {
        stream: "account-1",
        events: [],
        state: { balance: 1, closed: false },
        version: 3,
        written: 0
      }
      assert.deepStrictEqual(again, unchanged)
      const tenAtOnce = yield* Effect.forEach(
        Array.from({ length: 10 }, () => withdraw(5)),
        (command) => run(command, { commandId: "withdraw-1" }),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(
        tenAtOnce,
        Array.from({ length: 10 }, () => unchanged)
      )
      assert.deepStrictEqual(yield* storedEvents, [
        Deposited.make({ amount: 10 }),
        Withdrawn.make({ amount: 5 }),
        Withdrawn.make({ amount: 4 })
      ])
    }).pipe(
      Effect.provideService(SnapshotPolicy.SnapshotPolicy, SnapshotPolicy.everyEvents(1)),
      Effect.provide(Layer.merge(EventStore.layerMemory, SnapshotStore.layerMemory))
    )
  )

  it.effect(
    "a UUID v7 command applied with the name-based ids of @chronicle/core 0.1 is a repeat when sent again",
    () =>
      Effect.gen(function* () {
        const run = runSnapshotted
        // What 0.1 stored for two commands with UUID v7 ids: the first event of each under its name-based id.
        const [inTail, behindSnapshot] = [EventId.random(), EventId.random()]
        const storedBy01 = (commandId: string, amount: number, version: number) =>
          EventStore.EventStore.use((store) =>
            store.append(
              "account-1",
              [
                Result.getOrThrow(
                  Snapshotted.events.encode(
                    Deposited.make({ amount }),
                    EventId.fromCommandNameBased("account-1", commandId, 0),
                    {}
                  )
                )
              ],
              ExpectedVersion.exact(version)
            )
          )
        yield* storedBy01(behindSnapshot, 10, 0)
        // A command after the upgrade saves a snapshot past the first.
        yield* run(deposit(1), { commandId: EventId.random() })
        assert.strictEqual((yield* AggregateLoader.load(Snapshotted, "1")).snapshotVersion, 2)
        yield* storedBy01(inTail, 20, 2)
        assert.strictEqual((yield* run(deposit(20), { commandId: inTail })).written, 0)
        assert.strictEqual((yield* run(deposit(10), { commandId: behindSnapshot })).written, 0)
        assert.strictEqual((yield* AggregateLoader.load(Snapshotted, "1")).state.balance, 31)
      }).pipe(
        Effect.provideService(SnapshotPolicy.SnapshotPolicy, SnapshotPolicy.everyEvents(2)),
        Effect.provide(Layer.merge(EventStore.layerMemory, SnapshotStore.layerMemory))
      )
  )
})
