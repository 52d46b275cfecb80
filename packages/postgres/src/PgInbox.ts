/**
 * The Postgres inbox: handled event ids live in `chronicle_inbox`, keyed by consumer and event id. `handle` opens a
 * transaction, claims the id with an insert that does nothing on conflict, runs the handler inside the same
 * transaction and commits both, so the handler's own SQL writes and the id commit or roll back together. A second
 * delivery of the same event, even a concurrent one, waits on the first's row lock and then finds the id taken. A
 * failure of the transaction itself (the database down, the connection cut mid-transaction) is an `InboxError`, never a
 * defect, so a consumer can retry the event.
 *
 * **Gotcha:** only the handler's writes through the same `SqlClient` share the transaction; a call to another system
 * from the handler is not undone when the transaction rolls back.
 */
import { Inbox, Instrumentation } from "@chronicle/core"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { withTransaction } from "./internal/Transaction.ts"

/** Builds the inbox on the `SqlClient` in context (run `PgMigrations` first). */
export const make: Effect.Effect<Inbox.Service, never, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return Inbox.Inbox.of({
    handle: <A, E, R>(
      consumer: string,
      eventId: string,
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<Option.Option<A>, E | Inbox.InboxError, R> => {
      const failed = (cause: unknown) => new Inbox.InboxError({ consumer, eventId, cause })
      const claimThenHandle = Effect.gen(function* () {
        const claimed = yield* sql`
          INSERT INTO chronicle_inbox (consumer, event_id) VALUES (${consumer}, ${eventId}::uuid)
          ON CONFLICT DO NOTHING RETURNING 1 AS claimed`.pipe(Effect.mapError(failed))
        if (claimed.length === 0) return Option.none<A>()
        return Option.some(yield* effect)
      })
      // The transaction failing by itself, a cut connection included, is the inbox's failure: retrying can help.
      return withTransaction(sql, claimThenHandle, failed)
    }
  })
})

/** Provides the Postgres `Inbox` on the `SqlClient` in context. */
export const layer: Layer.Layer<Inbox.Inbox, never, SqlClient.SqlClient> = Layer.effect(
  Inbox.Inbox,
  Effect.map(make, (inbox) => Instrumentation.inbox(inbox, { system: "postgresql", collection: "chronicle_inbox" }))
)
