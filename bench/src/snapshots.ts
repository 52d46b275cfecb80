/**
 * Snapshots' figures: loading aggregates of 100, 10,000 and 100,000 events with `AggregateLoader.load`, with the
 * Postgres snapshot store beside without it, and without it beside one SELECT of the stream's rows. The snapshot sits
 * 99 events behind the end of the stream, the worst case of a policy of one snapshot every 100 events, so a load with
 * snapshots reads one snapshot row and 100 events whatever the stream's length.
 */
import {
  Aggregate,
  AggregateLoader,
  Decider,
  EventStore,
  ExpectedVersion,
  SnapshotCodec,
  SnapshotStore
} from "@chronicle/core"
import { PgEventStore, PgMigrations, PgSnapshotStore } from "@chronicle/postgres"
import { PgClient } from "@effect/sql-pg"
import { Effect, Result, Schema } from "effect"
import * as Bench from "./Bench.ts"

/** A counter with a state schema: the smallest snapshottable aggregate, so loading measures the stores. */
const Incremented = Schema.TaggedStruct("Incremented", { by: Schema.Int })
const Increment = Schema.TaggedStruct("Increment", { by: Schema.Int })
const CounterState = Schema.Struct({ total: Schema.Int })
const Counter = Aggregate.make({
  category: "counter",
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

/** How far behind the end of the stream the snapshot is: the most a policy of every 100 events leaves. */
const behind = 99

const sizes = (quick: boolean) =>
  quick
    ? { lengths: [100, 1_000, 10_000], reps: 3, warmups: 3 }
    : { lengths: [100, 10_000, 100_000], reps: 9, warmups: 5 }

const columns = "global_position, stream_id, version, event_id::text, type, schema_version, data, metadata, recorded_at"

const section: Bench.Section = {
  name: "snapshots.load",
  title: "Snapshots: AggregateLoader.load with and without the Postgres snapshot store, beside one SELECT of the rows",
  run: ({ databaseUrl, quick }) =>
    Effect.gen(function* () {
      const { lengths, reps, warmups } = sizes(quick)
      const sql = yield* PgClient.PgClient
      yield* PgMigrations.run
      const store = yield* PgEventStore.make()
      const snapshots = yield* PgSnapshotStore.make
      const codec = SnapshotCodec.make(CounterState)
      // Every stream first, then each size's warm-up right before its measurements: JIT and caches settle first.
      const subjects: Array<{
        readonly label: string
        readonly snapshotted: Effect.Effect<void>
        readonly folded: Effect.Effect<void>
        readonly select: Effect.Effect<unknown, unknown>
      }> = []
      for (const length of lengths) {
        const id = `load${length}`
        const stream = `counter-${id}`
        const ids: Array<string> = []
        for (let version = 0; version < length; version += 1_000) {
          const batch = Array.from({ length: Math.min(1_000, length - version) }, () => {
            ids.push(crypto.randomUUID())
            return { eventId: ids.at(-1)!, type: "Incremented", schemaVersion: 1, data: { by: 1 }, metadata: {} }
          })
          yield* store.append(stream, batch, ExpectedVersion.exact(version))
        }
        const at = length - behind
        yield* snapshots.save({
          stream,
          version: at,
          eventId: ids[at - 1]!,
          fingerprint: codec.fingerprint,
          state: Result.getOrThrow(codec.encode({ total: at }, stream, at))
        })
        const load = (snapshotStore: SnapshotStore.Service, expectedSnapshot: number) =>
          AggregateLoader.load(Counter, id).pipe(
            Effect.provideService(EventStore.EventStore, store),
            Effect.provideService(SnapshotStore.SnapshotStore, snapshotStore),
            Effect.flatMap((loaded) =>
              loaded.state.total === length && loaded.snapshotVersion === expectedSnapshot
                ? Effect.void
                : Effect.die(new Error(`loaded ${loaded.state.total} of ${length} from v${loaded.snapshotVersion}`))
            ),
            Effect.orDie
          )
        subjects.push({
          label: `${length.toLocaleString("en-US")} events`,
          snapshotted: load(snapshots, at),
          folded: load(SnapshotStore.none, 0),
          select: sql.unsafe(`SELECT ${columns} FROM chronicle_events WHERE stream_id = $1 ORDER BY version`, [stream])
        })
      }
      // Fresh statistics, so that autovacuum does not re-plan the reads in the middle of the measurements.
      yield* sql.unsafe("VACUUM ANALYZE chronicle_events, chronicle_snapshots")
      const rows: Array<Bench.Row> = []
      const withSnapshots: Array<number> = []
      for (const { label, snapshotted, folded, select } of subjects) {
        yield* Effect.all([snapshotted, folded, select]).pipe(Effect.repeat({ times: warmups }))
        const snapshot = yield* Bench.interleave({
          label: `${label}, with vs without snapshot`,
          measure: Bench.milliseconds,
          reps,
          ours: Bench.elapsed(snapshotted),
          raw: Bench.elapsed(folded)
        })
        const fold = yield* Bench.interleave({
          label: `${label}, without snapshot vs SELECT`,
          measure: Bench.milliseconds,
          reps,
          ours: Bench.elapsed(folded),
          raw: Bench.elapsed(select)
        })
        withSnapshots.push(snapshot.ours)
        rows.push(
          Bench.row({
            figure: `load a ${label} aggregate with a snapshot ${behind} events behind`,
            measure: Bench.milliseconds,
            ...snapshot,
            baseline: "the same load without snapshots"
          }),
          Bench.row({
            figure: `load a ${label} aggregate without snapshots`,
            measure: Bench.milliseconds,
            ...fold,
            baseline: "SELECT the stream's rows ORDER BY version",
            target: 0.5
          })
        )
      }
      const smallest = lengths[0]!.toLocaleString("en-US")
      const largest = lengths.at(-1)!.toLocaleString("en-US")
      rows.push(
        Bench.row({
          figure: `with snapshots: load at ${largest} events beside load at ${smallest}`,
          measure: Bench.milliseconds,
          ours: withSnapshots.at(-1)!,
          raw: withSnapshots[0]!,
          baseline: `the load of the ${smallest}-event aggregate`,
          target: 0.5,
          note: `load times with snapshots: ${withSnapshots.map((ms) => `${ms.toFixed(2)} ms`).join(", ")} (flat means independent of stream length)`
        })
      )
      return rows
    }).pipe(Effect.scoped, Effect.provide(Bench.pgClient(databaseUrl)))
}

/** The snapshot sections, in the order they run. */
export const sections: ReadonlyArray<Bench.Section> = [section]
