/**
 * Event ids: random UUIDs for new events, or ids derived from a command id, so that sending the same command again
 * produces the same ids and the store treats the second append as a repeat (it writes nothing). Ids that follow time
 * keep the store's unique index on event ids cheap to grow: new ids land at its right edge. So `random` makes UUID
 * v7s, and `fromCommand` keeps a command id's time when the command id is a UUID v7 itself.
 *
 * **Upgrading**: in @chronicle/core 0.1, `fromCommand` gave name-based ids (`fromCommandNameBased`) for every
 * command id, UUID v7s too. A command applied by 0.1 and sent again after the upgrade derives other ids, which the
 * store would not see as a repeat, so `CommandHandler` (and the cluster's `AggregateEntity`, which handles through it)
 * looks for either id of its first event before it decides (`derivedBefore`). Code that derives ids with
 * `fromCommand` and appends them itself must do the same to stay idempotent across the upgrade.
 */
import { createHash } from "node:crypto"

/**
 * A new event id: a UUID v7, 48 bits of milliseconds then 74 random bits. Ids made later sort later, so the store's
 * unique index on event ids grows at its right edge instead of touching a random page for every insert. Built on
 * `crypto.randomUUID` (random bits from a pooled source, and the variant already set): the time goes over its first
 * 48 bits and the version digit becomes 7.
 */
export const random = (): string => {
  const time = Date.now().toString(16).padStart(12, "0")
  const uuid = crypto.randomUUID()
  return `${time.slice(0, 8)}-${time.slice(8)}-7${uuid.slice(15)}`
}

// A fixed namespace keeps derived ids apart from UUID v5 ids other software derives from the same names.
const namespace = Buffer.from("6f1c2a7e4b9d4c1e8a3f5d7b9e0c2a41", "hex")

/** A UUID v7 in its text form, in either case: 48 bits of milliseconds, the version digit 7, the variant bits `10`. */
const uuidV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i

/** The SHA-1 of the namespace and the name of the `index`-th event of a command in a stream. */
const nameHash = (stream: string, commandId: string, index: number): Buffer =>
  createHash("sha1").update(namespace).update(`${stream}\u0000${commandId}\u0000${index}`).digest()

const format = (bytes: Buffer): string => {
  const hex = bytes.toString("hex", 0, 16)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/**
 * The name-based id of the `index`-th event that command `commandId` produced in `stream`: a UUID v5 of the stream,
 * the command id and the index, stable forever. `fromCommand` gives it for command ids that are not UUID v7s.
 */
export const fromCommandNameBased = (stream: string, commandId: string, index: number): string => {
  const hash = nameHash(stream, commandId, index)
  hash[6] = (hash[6]! & 0x0f) | 0x50
  hash[8] = (hash[8]! & 0x3f) | 0x80
  return format(hash)
}

/**
 * The id of the `index`-th event that command `commandId` produced in `stream`, the same for the same three forever.
 * For a command id that is a UUID v7, a UUID v7 with the command id's 48-bit time and the other 74 bits from the
 * name's hash, so the ids of later commands sort later; for any other command id, the name-based UUID v5
 * (`fromCommandNameBased`).
 */
export const fromCommand = (stream: string, commandId: string, index: number): string => {
  if (!uuidV7.test(commandId)) return fromCommandNameBased(stream, commandId, index)
  const hash = nameHash(stream, commandId, index)
  Buffer.from(commandId.slice(0, 8) + commandId.slice(9, 13), "hex").copy(hash, 0)
  hash[6] = (hash[6]! & 0x0f) | 0x70
  hash[8] = (hash[8]! & 0x3f) | 0x80
  return format(hash)
}

/**
 * The id an older version derived for the `index`-th event of command `commandId` in `stream`, when it differs from
 * `fromCommand`'s: for a UUID v7 command id, the name-based id that @chronicle/core 0.1 gave it.
 */
export const derivedBefore = (stream: string, commandId: string, index: number): string | undefined =>
  uuidV7.test(commandId) ? fromCommandNameBased(stream, commandId, index) : undefined
