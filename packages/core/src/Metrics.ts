/**
 * Chronicle's metrics, in one place: what operators watch on an event store and the loops that follow it. Each is an
 * Effect `Metric`, updated where the work happens and exported by whatever exporter the app provides (OTLP or the
 * Prometheus endpoint of `@chronicle/observability`). Names follow Prometheus conventions: durations in seconds,
 * counters end in `_total`. Attributes name the stream's category, the follower (a projection or an outbox), the
 * consumer or the reason, never a stream or an event id, so the number of series stays small.
 *
 * **Gotchas**: metrics live in the `MetricRegistry` of the running context (a process-wide default unless provided);
 * a test that asserts on them provides a fresh registry.
 */
import { Metric } from "effect"

/** Buckets for latencies in seconds: 0.5 ms to about 8 s, doubling. */
const latencyBoundaries = Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 15 })

/** Buckets for event counts: 1 to about 16,000, doubling. */
const countBoundaries = Metric.exponentialBoundaries({ start: 1, factor: 2, count: 15 })

/** Events written by appends (attribute `category`); a repeated append writes none. */
export const eventsAppended = Metric.counter("chronicle_events_appended_total", {
  description: "Events written to the log, by stream category",
  incremental: true
})

/** How long appends take, from the call to the store's answer, successful or not (attribute `category`). */
export const appendDuration = Metric.histogram("chronicle_append_duration_seconds", {
  description: "Time an append takes, by stream category",
  boundaries: latencyBoundaries
})

/** Appends refused with `ConcurrencyError`: another writer got there first (attribute `category`). */
export const appendConflicts = Metric.counter("chronicle_append_conflicts_total", {
  description: "Appends refused because the stream was not at the expected version, by stream category",
  incremental: true
})

/** Commands decided again after a conflict: each reload-and-retry counts once (attribute `category`). */
export const commandRetries = Metric.counter("chronicle_command_retries_total", {
  description: "Commands reloaded and decided again after a concurrent write, by stream category",
  incremental: true
})

/** How long loading an aggregate takes: snapshot, events and fold (attribute `category`). */
export const loadDuration = Metric.histogram("chronicle_load_duration_seconds", {
  description: "Time to load an aggregate (snapshot and events after it), by stream category",
  boundaries: latencyBoundaries
})

/** How many events one load folded after its snapshot, or from the start (attribute `category`). */
export const eventsFolded = Metric.histogram("chronicle_load_events_folded", {
  description: "Events folded to load an aggregate, by stream category",
  boundaries: countBoundaries
})

/** Loads that started from a snapshot (attribute `category`). */
export const snapshotsUsed = Metric.counter("chronicle_snapshots_used_total", {
  description: "Loads that started from a stored snapshot, by stream category",
  incremental: true
})

/**
 * Stored snapshots a load ignored (attributes `category` and `reason`: `fingerprint` for another state schema,
 * `undecodable`, `mismatch` when the event it reflects is gone or changed, `unavailable` when the store failed).
 */
export const snapshotsIgnored = Metric.counter("chronicle_snapshots_ignored_total", {
  description: "Stored snapshots a load did not trust, by stream category and reason",
  incremental: true
})

/** Snapshots saved after a command (attribute `category`). */
export const snapshotsSaved = Metric.counter("chronicle_snapshots_saved_total", {
  description: "Snapshots saved after commands, by stream category",
  incremental: true
})

/**
 * Global positions between a follower's checkpoint and the head of the log (attribute `follower`: a projection or
 * an outbox). Positions need not be dense: the event count is `followerLagEvents`.
 */
export const followerLag = Metric.gauge("chronicle_follower_lag", {
  description: "Global positions between a follower's checkpoint and the head of the log, by follower",
  bigint: true
})

/**
 * Events a follower has yet to handle (attribute `follower`), counted up to `lagEventsCap`: that value means at least
 * that many.
 */
export const followerLagEvents = Metric.gauge("chronicle_follower_lag_events", {
  description: "Events a follower (projection or outbox) has yet to handle, counted up to 1000, by follower"
})

/** The most events `followerLagEvents` counts: counting reads them, so it stops there. */
export const lagEventsCap = 1_000

/**
 * Seconds between the recording of the last event a follower handled and the end of its batch (for the outbox: the
 * broker's acknowledgement); 0 once it is caught up (attribute `follower`).
 */
export const followerLagSeconds = Metric.gauge("chronicle_follower_lag_seconds", {
  description: "Age of the last event a follower handled when its batch committed; 0 when caught up, by follower"
})

/** Events handled by followers: its rate is a projection's throughput, or what an outbox published (attribute `follower`). */
export const followerEvents = Metric.counter("chronicle_follower_events_total", {
  description: "Events a follower (projection or outbox) handled, by follower",
  incremental: true
})

/** How long the oldest running writing transaction has held the read horizon back, in seconds; 0 when none does. */
export const horizonAge = Metric.gauge("chronicle_horizon_age_seconds", {
  description: "Age of the oldest open writing transaction, which holds every reader of the global log back"
})

/** Events parked as dead letters (attribute `follower`). */
export const deadLetters = Metric.counter("chronicle_dead_letters_total", {
  description: "Events parked as dead letters, by follower",
  incremental: true
})

/** Events whose personal data could not be decrypted for another reason than a forgotten subject. */
export const decryptionFailures = Metric.counter("chronicle_decryption_failures_total", {
  description: "Events whose personal data could not be decrypted",
  incremental: true
})

/** Events a broker consumer handled (attribute `consumer`); repeats the inbox skipped are not counted. */
export const consumerEvents = Metric.counter("chronicle_consumer_events_total", {
  description: "Events a broker consumer handled through its inbox, by consumer",
  incremental: true
})

/**
 * `metric` with one attribute set, cached by `value`: `Metric.withAttributes` builds a new metric whose series key is
 * computed on first use, so hot paths keep one per value.
 */
export const by = <I, S>(metric: Metric.Metric<I, S>, attribute: string): ((value: string) => Metric.Metric<I, S>) => {
  const cache = new Map<string, Metric.Metric<I, S>>()
  return (value) => {
    let tagged = cache.get(value)
    if (tagged === undefined) {
      tagged = Metric.withAttributes(metric, { [attribute]: value })
      cache.set(value, tagged)
    }
    return tagged
  }
}
