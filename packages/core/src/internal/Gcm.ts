/**
 * Opening AES-256-GCM (NIST SP 800-38D) without node:crypto's per-message set-up. node:crypto makes a new cipher
 * object for every message (none takes a new IV), with a native call for each of its steps. Here each data key keeps
 * one `aes-256-ecb` cipher for its life, and a message costs one native call: the AES of its counter blocks (`J0` for
 * the tag, then `inc32(J0)`, ... for the keystream). GHASH, the tag check and the XOR of the keystream run in
 * JavaScript, with a 256-byte table of multiples of the hash key `H = E(K, 0^128)` rebuilt from `H` for each message.
 * Only 12-byte IVs and 16-byte tags are opened: the layout `KeyStore.seal` writes. Sealing stays on node:crypto.
 *
 * **Gotcha:** the GHASH table is indexed by nibbles that depend on `H`, so the time of an open depends on the CPU
 * cache. A process on the same machine that can measure cache timing while values are opened may learn about `H`,
 * and with it forge values under that key (not read them: the AES itself runs in OpenSSL, in constant time).
 * node:crypto's own GHASH uses carry-less multiply instructions and has no such table.
 */
import { type Cipheriv, createCipheriv } from "node:crypto"

const ivLength = 12
const tagLength = 16

// A 128-bit block is four big-endian 32-bit words; the first bit of the block is the coefficient of x^0 (§6.3).

// X • x in GF(2^128): a right shift by one bit, reduced by R = 11100001 || 0^120 when a bit falls off (§6.3).
const timesX = (block: Int32Array, at: number, into: Int32Array, to: number) => {
  const [w0, w1, w2, w3] = [block[at]!, block[at + 1]!, block[at + 2]!, block[at + 3]!]
  into[to] = (w0 >>> 1) ^ (w3 & 1 ? 0xe1000000 : 0)
  into[to + 1] = (w1 >>> 1) | (w0 << 31)
  into[to + 2] = (w2 >>> 1) | (w1 << 31)
  into[to + 3] = (w3 >>> 1) | (w2 << 31)
}

// What the nibble that falls off the end of a block adds to its first bits when the block is multiplied by x^4.
const reduction = Int32Array.from({ length: 16 }, (_, nibble) => {
  const block = Int32Array.of(0, 0, 0, nibble)
  for (let bit = 0; bit < 4; bit++) timesX(block, 0, block, 0)
  return block[0]!
})

// N • H for every nibble N (as the first four bits of a block), four words each: 256 bytes, rebuilt for every message
// from H so that it is always in the L1 cache (a table kept per key misses the cache when keys change every message).
const table = new Int32Array(16 * 4)

const fillTable = (h: Int32Array) => {
  // The nibble 8 is x^0, so its product is H; each lower bit is one more factor x.
  table.set(h, 8 * 4)
  timesX(table, 8 * 4, table, 4 * 4)
  timesX(table, 4 * 4, table, 2 * 4)
  timesX(table, 2 * 4, table, 1 * 4)
  for (let nibble = 3; nibble < 16; nibble++) {
    const low = nibble & -nibble
    if (low === nibble) continue
    for (let word = 0; word < 4; word++) {
      table[nibble * 4 + word] = table[low * 4 + word]! ^ table[(nibble ^ low) * 4 + word]!
    }
  }
}

// The GHASH state Y, in a typed array: 32-bit numbers in module variables would be boxed on every write.
const y = new Int32Array(4)

// Y = (Y ⊕ X) • H for the block X = (x0, x1, x2, x3), by Horner's rule over the nibbles of Y ⊕ X, last to first:
// Z = Z • x^4 ⊕ N • H, where Z • x^4 shifts Z right by four bits and folds the nibble that falls off back in.
const absorbBlock = (x0: number, x1: number, x2: number, x3: number) => {
  const a0 = y[0]! ^ x0
  const a1 = y[1]! ^ x1
  const a2 = y[2]! ^ x2
  const a3 = y[3]! ^ x3
  let z0 = 0
  let z1 = 0
  let z2 = 0
  let z3 = 0
  for (let index = 0; index < 32; index++) {
    const source = index < 8 ? a3 : index < 16 ? a2 : index < 24 ? a1 : a0
    const at = ((source >>> ((index & 7) << 2)) & 0xf) << 2
    const carry = reduction[z3 & 0xf]!
    z3 = ((z3 >>> 4) | (z2 << 28)) ^ table[at + 3]!
    z2 = ((z2 >>> 4) | (z1 << 28)) ^ table[at + 2]!
    z1 = ((z1 >>> 4) | (z0 << 28)) ^ table[at + 1]!
    z0 = (z0 >>> 4) ^ carry ^ table[at]!
  }
  y[0] = z0
  y[1] = z1
  y[2] = z2
  y[3] = z3
}

const word = (bytes: Uint8Array, at: number) =>
  (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!

const last = new Uint8Array(16)

// Absorbs bytes [start, end), the last block padded with zeros.
const absorb = (bytes: Uint8Array, start: number, end: number) => {
  let at = start
  for (; at + 16 <= end; at += 16) {
    absorbBlock(word(bytes, at), word(bytes, at + 4), word(bytes, at + 8), word(bytes, at + 12))
  }
  if (at === end) return
  last.fill(0)
  for (let index = at; index < end; index++) last[index - at] = bytes[index]!
  absorbBlock(word(last, 0), word(last, 4), word(last, 8), word(last, 12))
}

const absorbBytes = (bytes: Uint8Array): number => {
  absorb(bytes, 0, bytes.length)
  return bytes.length
}

// ASCII text copied byte by byte, so that it is absorbed as bytes are.
let ascii = new Uint8Array(256)

// Absorbs `text` as UTF-8 and returns its length in bytes; ASCII text (a subject id and an event id) is copied into a
// buffer kept for it rather than encoded into a new one.
const absorbText = (text: string): number => {
  if (ascii.length < text.length) ascii = new Uint8Array(text.length * 2)
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index)
    if (code > 0x7f) return absorbBytes(Buffer.from(text, "utf8"))
    ascii[index] = code
  }
  absorb(ascii, 0, text.length)
  return text.length
}

/** What one data key keeps between opens: its ECB cipher (AES of whole blocks, no state) and its hash key H. */
interface Prepared {
  readonly ecb: Cipheriv
  readonly h: Int32Array
}

const prepared = new WeakMap<Uint8Array, Prepared>()

const prepare = (key: Uint8Array): Prepared => {
  const known = prepared.get(key)
  if (known !== undefined) return known
  const ecb = createCipheriv("aes-256-ecb", key, null).setAutoPadding(false)
  const h = ecb.update(new Uint8Array(16))
  const made = { ecb, h: Int32Array.of(word(h, 0), word(h, 4), word(h, 8), word(h, 12)) }
  prepared.set(key, made)
  return made
}

/**
 * The plaintext of `sealed` (IV, ciphertext, tag) under the 32-byte `key` with the additional data `aad` (text is
 * read as UTF-8), decoded with `encoding`; `undefined` when it does not authenticate (altered, truncated, another key
 * or additional data).
 */
export const open = (
  key: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array | string,
  encoding: BufferEncoding = "utf8"
): string | undefined => {
  if (sealed.length < ivLength + tagLength) return undefined
  const { ecb, h } = prepare(key)
  const bodyEnd = sealed.length - tagLength
  const length = bodyEnd - ivLength
  // J0 = IV || 0^31 || 1, then inc32(J0) for each block of the ciphertext: all AES'd in one call.
  const blocks = 1 + Math.ceil(length / 16)
  const counters = Buffer.allocUnsafe(blocks * 16)
  for (let block = 0; block < blocks; block++) {
    const at = block * 16
    for (let index = 0; index < ivLength; index++) counters[at + index] = sealed[index]!
    counters.writeUInt32BE((block + 1) >>> 0, at + ivLength)
  }
  const stream = ecb.update(counters)
  fillTable(h)
  y.fill(0)
  const aadLength = typeof aad === "string" ? absorbText(aad) : absorbBytes(aad)
  absorb(sealed, ivLength, bodyEnd)
  // The lengths in bits, as two 64-bit numbers.
  absorbBlock(
    Math.floor(aadLength / 0x20000000),
    (aadLength * 8) >>> 0,
    Math.floor(length / 0x20000000),
    (length * 8) >>> 0
  )
  // The tag is GHASH ⊕ E(K, J0); every word is compared, whatever the first difference.
  const difference =
    (y[0]! ^ word(stream, 0) ^ word(sealed, bodyEnd)) |
    (y[1]! ^ word(stream, 4) ^ word(sealed, bodyEnd + 4)) |
    (y[2]! ^ word(stream, 8) ^ word(sealed, bodyEnd + 8)) |
    (y[3]! ^ word(stream, 12) ^ word(sealed, bodyEnd + 12))
  if (difference !== 0) return undefined
  for (let at = 0; at < length; at++) stream[16 + at]! ^= sealed[ivLength + at]!
  return stream.toString(encoding, 16, 16 + length)
}
