/**
 * Partitions of the global log: a follower may split the log into `count` partitions and read one of them, so that
 * several instances share the work. An event belongs to the partition of its stream, so each stream's order holds
 * within its partition. A stream's place is fixed by its name alone: the first four bytes of the MD5 of its UTF-8
 * name (`streamHash`), whose low 4 bits pick one of 16 buckets (in Postgres, `chronicle_stream_bucket(stream_id)`);
 * partition `index` of `count` holds the buckets whose number leaves `index` when divided by `count`. So a count may
 * be 1 to 16, and the partitions are even when it divides 16. (With its opt-in partition index, Postgres reads a
 * partition as one index scan per bucket: few buckets keep that cheap to plan.)
 *
 * **Gotcha**: a partition is read under its own checkpoint (`checkpoint`), so changing the count of a follower that
 * has already run means starting its partitions afresh (a rebuild under the new count); see docs/cluster.md.
 */
import { createHash } from "node:crypto"
import { Schema } from "effect"

/** One partition of the log: the streams whose bucket leaves `index` when divided by `count`. */
export interface Partition {
  /** How many partitions the log is split into, from 1 to `maxCount`. */
  readonly count: number
  /** This partition's number, from 0 to `count - 1`. */
  readonly index: number
}

/** How many buckets streams hash into: the most partitions a log can be split into evenly. */
export const maxCount = 16

/** A partition count outside 1 to `maxCount`, or not a whole number. */
export class InvalidPartitionCount extends Schema.TaggedError<InvalidPartitionCount>()("InvalidPartitionCount", {
  name: Schema.String,
  count: Schema.Number
}) {
  override get message() {
    return `${this.name}: a partition count must be a whole number from 1 to ${maxCount}, not ${this.count}`
  }
}

/** The stored hash of a stream name: the first four bytes of the MD5 of its UTF-8 bytes, as a signed 32-bit integer. */
export const streamHash = (stream: string): number => createHash("md5").update(stream, "utf8").digest().readInt32BE(0)

/** The bucket of a stream, from 0 to `maxCount - 1`: the low 4 bits of its hash. */
export const bucketOf = (stream: string): number => streamHash(stream) & (maxCount - 1)

/** The partition (out of `count`) that `stream` belongs to. */
export const of = (stream: string, count: number): number => bucketOf(stream) % count

/** Whether `stream` belongs to `partition`. */
export const contains = (partition: Partition, stream: string): boolean =>
  of(stream, partition.count) === partition.index

/** The buckets that make up `partition`, in increasing order (none for an index out of range). */
export const buckets = (partition: Partition): ReadonlyArray<number> =>
  Array.from({ length: maxCount }, (_, bucket) => bucket).filter(
    (bucket) => bucket % partition.count === partition.index
  )

/** Every partition of `count`, in index order. */
export const all = (count: number): ReadonlyArray<Partition> =>
  Array.from({ length: count }, (_, index) => ({ count, index }))

/** Whether `count` is a whole number from 1 to `maxCount`. */
export const isValidCount = (count: number): boolean => Number.isInteger(count) && count >= 1 && count <= maxCount

/** The checkpoint key (and lease name) of a partition of the follower keyed `key`: `key#index/count`. */
export const key = (key: string, partition: Partition): string => `${key}#${partition.index}/${partition.count}`
