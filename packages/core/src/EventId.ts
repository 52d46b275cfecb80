/**
 * Event ids: random UUIDs for new events, or ids derived from a command id, so that sending the same command again
 * produces the same ids and the store treats the second append as a repeat (it writes nothing).
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

/** The id of the `index`-th event that command `commandId` produced in `stream` (a UUID v5, stable forever). */
export const fromCommand = (stream: string, commandId: string, index: number): string => {
  const hash = createHash("sha1").update(namespace).update(`${stream}\u0000${commandId}\u0000${index}`).digest()
  hash[6] = (hash[6]! & 0x0f) | 0x50
  hash[8] = (hash[8]! & 0x3f) | 0x80
  const hex = hash.toString("hex", 0, 16)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}
