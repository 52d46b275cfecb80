/**
 * Backoff: the one schedule Chronicle waits by after a failure. Followers restarting after an outage, the outbox
 * retrying a batch the broker refused, a subscription reading again after the database went away, a NATS consumer
 * waiting for its inbox: each waits by `schedule`, a capped exponential backoff with jitter. The delay starts at
 * `min`, doubles after each failure and stays at `max` from then on; it never gives up by itself.
 *
 * **Gotchas**: bound it with `Effect.retry({ schedule, times })` where a failure may be final; the schedule's state
 * lives as long as the `retry` around it, so a loop that restarts after long healthy stretches keeps waiting `max`.
 */
import { type Duration, Schedule } from "effect"

/** The first and the longest delay of a backoff. */
export interface Options {
  /** The first delay; doubles after each failure. 100 ms unless set. */
  readonly min?: Duration.Input
  /** The longest delay between two attempts. 5 seconds unless set. */
  readonly max?: Duration.Input
}

/** Capped exponential backoff, jittered by ±20% so that instances restarting together spread out. */
export const schedule = (options: Options = {}): Schedule.Schedule<Duration.Duration> =>
  Schedule.min([Schedule.exponential(options.min ?? "100 millis"), Schedule.spaced(options.max ?? "5 seconds")]).pipe(
    Schedule.jittered
  )
