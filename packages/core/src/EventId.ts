/**
 * Event ids: random UUIDs for new events, or ids derived from a command id, so that sending the same command again
 * produces the same ids and the store treats the second append as a repeat (it writes nothing).
 */
import { createHash, randomFillSync } from "node:crypto"

const format = (bytes: Uint8Array): string => {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/**
 * A new event id: a UUID v7, 48 bits of milliseconds then 74 random bits. Ids made later sort later, so the store's
 * unique index on event ids grows at its right edge instead of touching a random page for every insert.
 */
export const random = (): string => {
  const bytes = randomFillSync(new Uint8Array(16))
  const now = Date.now()
  bytes[0] = Math.floor(now / 2 ** 40) & 0xff
  bytes[1] = Math.floor(now / 2 ** 32) & 0xff
  bytes[2] = (now >>> 24) & 0xff
  bytes[3] = (now >>> 16) & 0xff
  bytes[4] = (now >>> 8) & 0xff
  bytes[5] = now & 0xff
  bytes[6] = (bytes[6]! & 0x0f) | 0x70
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  return format(bytes)
}

// A fixed namespace keeps derived ids apart from UUID v5 ids other software derives from the same names.
const namespace = Buffer.from("6f1c2a7e4b9d4c1e8a3f5d7b9e0c2a41", "hex")

/** The id of the `index`-th event that command `commandId` produced in `stream` (a UUID v5, stable forever). */
export const fromCommand = (stream: string, commandId: string, index: number): string => {
  const hash = createHash("sha1").update(namespace).update(`${stream}\u0000${commandId}\u0000${index}`).digest()
  hash[6] = (hash[6]! & 0x0f) | 0x50
  hash[8] = (hash[8]! & 0x3f) | 0x80
  return format(hash)
}
