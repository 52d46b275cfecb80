/**
 * A hot aggregate as an entity: one stream, 32 concurrent senders, each command with its own id. Ours sends every
 * command through `AggregateEntity` (a single runner, its storage in the same Postgres), which keeps the state and
 * handles the commands one after another with one append each. The baseline is `CommandHandler.handle` called by
 * the same 32 fibers, which loads the stream for each attempt and retries on every lost race. Each repetition writes
 * to a fresh stream on both sides, so both start from the same length.
 */
import { AggregateEntity } from "@chronicle/cluster"
import { Aggregate, CommandHandler, Decider, type EventStore } from "@chronicle/core"
import { PgEventStore, PgMigrations } from "@chronicle/postgres"
import { NodeCrypto } from "@effect/platform-node"
import { Effect, Layer, Result, Schema } from "effect"
import { SingleRunner } from "effect/cluster"
import * as Bench from "./Bench.ts"

/** A counter: every command is accepted, so throughput measures the machinery. */
const Incremented = Schema.TaggedStruct("Incremented", { by: Schema.Int })
const Increment = Schema.TaggedStruct("Increment", { by: Schema.Int })
const CounterState = Schema.Struct({ total: Schema.Int })
const Counter = Aggregate.make({
  category: "hot",
  commands: Increment,
  events: Incremented,
  state: CounterState,
  decider: Decider.make({
    initialState: { total: 0 },
    decide: (command: typeof Increment.Type, _: typeof CounterState.Type) =>
      Result.succeed([Incremented.make({ by: command.by })]),
    evolve: (state: typeof CounterState.Type, event: typeof Incremented.Type) => ({ total: state.total + event.by })
  })
})
const Counters = AggregateEntity.make(Counter, { error: Schema.Never })

const senders = 32
const commandsPerSecond: Bench.Measure = { unit: "commands/s", better: "higher" }

const section: Bench.Section = {
  name: "cluster.entity",
  title: "A hot aggregate (one stream, 32 concurrent senders): through AggregateEntity vs CommandHandler.handle",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const seconds = quick ? 1 : 3
      const reps = quick ? 2 : 5
      const send = yield* AggregateEntity.client(Counters)
      let round = 0
      // Each rep's side gets its own stream; a worker's commands have ids unique to the run.
      const run = (
        through: (id: string, commandId: string) => Effect.Effect<unknown, unknown, EventStore.EventStore>
      ) =>
        Effect.suspend(() => {
          const id = `r${round++}`
          let sent = 0
          return Bench.throughput(senders, seconds, (worker) => Effect.as(through(id, `${id}-${worker}-${sent++}`), 1))
        })
      const entity = run((id, commandId) => send(id, { _tag: "Increment", by: 1 }, { commandId }).pipe(Effect.orDie))
      const handler = run((id, commandId) =>
        CommandHandler.handle(Counter, id, { _tag: "Increment", by: 1 }, { commandId }).pipe(Effect.orDie)
      )
      yield* Effect.all([entity, handler]) // warm-up: shards acquired, JIT settled
      const measured = yield* Bench.interleave({
        label: "entity vs handle",
        measure: commandsPerSecond,
        reps,
        ours: entity,
        raw: handler
      })
      return [
        Bench.row({
          figure: "commands/s on one hot aggregate, 32 senders, through AggregateEntity",
          measure: commandsPerSecond,
          ...measured,
          baseline: "CommandHandler.handle with retries, same senders",
          target: 1
        })
      ]
    }).pipe(
      Effect.provide(
        AggregateEntity.layer(Counters).pipe(
          Layer.provideMerge(SingleRunner.layer({ runnerStorage: "sql" })),
          Layer.provideMerge(PgEventStore.layer()),
          Layer.provide(NodeCrypto.layerDigest),
          Layer.provideMerge(PgMigrations.layer),
          Layer.provideMerge(Bench.pgClient(databaseUrl))
        )
      ),
      Effect.scoped
    )
}

/** The cluster entity sections, in the order they run. */
export const sections: ReadonlyArray<Bench.Section> = [section]
