/**
 * Subscriptions over the global log: a paged catch-up read that ends at the head, and a live subscription that
 * catches up and then re-reads from its cursor on every wake-up, with a polling fallback. Stores build their
 * `readAll` and `subscribe` from these, so every store pages and tails the same way. Each page read is a span,
 * `EventStore.readPage`, with the position it reads after and the number of events it found.
 */
import { type Duration, Effect, Option, Schedule, Stream } from "effect"
import type { RecordedEvent } from "./Envelope.ts"

/** Reads up to `limit` events with a position greater than `after`, in global order. */
export type ReadPage<E> = (after: bigint, limit: number) => Effect.Effect<ReadonlyArray<RecordedEvent>, E>

/** Reads pages from `after` until a short page: every event readable now, in order, with bounded memory. */
export const catchUp = <E>(readPage: ReadPage<E>, after: bigint, pageSize: number): Stream.Stream<RecordedEvent, E> =>
  Stream.paginate(after, (from) =>
    readPage(from, pageSize).pipe(
      Effect.tap((page) => Effect.annotateCurrentSpan("chronicle.event_count", page.length)),
      Effect.withSpan("EventStore.readPage", {
        attributes: { "chronicle.after": String(from), "chronicle.limit": pageSize }
      }),
      Effect.map((page) => {
        const last = page.at(-1)
        return [
          page,
          last === undefined || page.length < pageSize ? Option.none() : Option.some(last.position)
        ] as const
      })
    )
  )

/** How a live subscription learns that there may be new events. */
export interface LiveOptions<E> {
  /** Signals that new events may have been committed (a LISTEN notification, an in-process append...). */
  readonly wakeups: Stream.Stream<unknown, E>
  /** How often to look anyway, in case a wake-up was missed. */
  readonly pollInterval: Duration.Input
}

/**
 * Catch-up followed by live tail: drains from `after`, then drains again from the last position seen whenever a
 * wake-up arrives or the poll interval passes. Wake-ups that arrive during a drain coalesce into one, so memory stays
 * bounded however fast events are written. The stream never ends by itself.
 */
export const catchUpThenLive = <E>(
  readPage: ReadPage<E>,
  after: bigint,
  pageSize: number,
  { pollInterval, wakeups }: LiveOptions<E>
): Stream.Stream<RecordedEvent, E> =>
  Stream.suspend(() => {
    let cursor = after
    // Moves the cursor a page at a time: `Stream.tap` would split every page into one-event chunks.
    const drain = Stream.suspend(() => catchUp(readPage, cursor, pageSize)).pipe(
      Stream.mapArray((page) => {
        cursor = page[page.length - 1]!.position
        return page
      })
    )
    // The first tick starts the catch-up; wake-ups are listened to from the start, so an append that lands while
    // the catch-up runs is not left waiting for the next poll.
    const ticks = Stream.merge(
      wakeups,
      Stream.concat(Stream.succeed(undefined), Stream.fromSchedule(Schedule.spaced(pollInterval)))
    ).pipe(Stream.buffer({ capacity: 1, strategy: "dropping" }))
    return Stream.flatMap(ticks, () => drain)
  })
