import { createCipheriv } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as Gcm from "../src/internal/Gcm.ts"

const hex = (text: string) => Buffer.from(text, "hex")

// Seals with node:crypto's AES-256-GCM: IV, ciphertext, tag, as `KeyStore.seal` lays them out.
const sealed = (key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, aad: Uint8Array) => {
  const cipher = createCipheriv("aes-256-gcm", key, iv).setAAD(aad)
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([iv, body, cipher.getAuthTag()])
}

// The AES-256 test cases 13 to 16 of McGrew and Viega's GCM specification (NIST's GCM submission).
const feffe = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
const plaintext64 =
  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
const ciphertext64 =
  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
const vectors = [
  { name: "13", key: "00".repeat(32), iv: "00".repeat(12), aad: "", plaintext: "", ciphertext: "" },
  {
    name: "14",
    key: "00".repeat(32),
    iv: "00".repeat(12),
    aad: "",
    plaintext: "00".repeat(16),
    ciphertext: "cea7403d4d606b6e074ec5d3baf39d18"
  },
  { name: "15", key: feffe, iv: "cafebabefacedbaddecaf888", aad: "", plaintext: plaintext64, ciphertext: ciphertext64 },
  {
    name: "16",
    key: feffe,
    iv: "cafebabefacedbaddecaf888",
    aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
    plaintext: plaintext64.slice(0, 120),
    ciphertext: ciphertext64.slice(0, 120)
  }
]
const tags: Record<string, string> = {
  "13": "530f8afbc74536b9a963b4f1c4cb738b",
  "14": "d0d1c8a799996bf0265b98b5d48ab919",
  "15": "b094dac5d93471bdec1a502270e3cc6c",
  "16": "76fc6ece0f4e1768cddf8853bb2d551b"
}

const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max })
const message = fc.record({
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  iv: fc.uint8Array({ minLength: 12, maxLength: 12 }),
  plaintext: bytes(100),
  aad: bytes(70)
})

describe("Gcm.open", () => {
  for (const vector of vectors) {
    it(`opens test case ${vector.name} of the GCM specification, and not with its tag changed`, () => {
      const stored = Buffer.concat([hex(vector.iv), hex(vector.ciphertext), hex(tags[vector.name]!)])
      assert.strictEqual(Gcm.open(hex(vector.key), stored, hex(vector.aad), "hex"), vector.plaintext)
      stored[stored.length - 1]! ^= 1
      assert.isUndefined(Gcm.open(hex(vector.key), stored, hex(vector.aad)))
    })
  }

  it("opens what node:crypto's AES-256-GCM sealed, for any key, IV, plaintext and additional data", () => {
    fc.assert(
      fc.property(message, ({ key, iv, plaintext, aad }) => {
        const opened = Gcm.open(key, sealed(key, iv, plaintext, aad), aad, "hex")
        assert.strictEqual(opened, Buffer.from(plaintext).toString("hex"))
      }),
      { numRuns: 300 }
    )
  })

  it("reads additional data given as text as its UTF-8 bytes, ASCII or not", () => {
    fc.assert(
      fc.property(message, fc.string({ unit: "binary", maxLength: 40 }), ({ key, iv, plaintext }, text) => {
        const stored = sealed(key, iv, plaintext, Buffer.from(text, "utf8"))
        assert.strictEqual(Gcm.open(key, stored, text, "hex"), Buffer.from(plaintext).toString("hex"))
        assert.isUndefined(Gcm.open(key, stored, `${text}.`))
      }),
      { numRuns: 300 }
    )
  })

  it("opens nothing with a byte of the IV, ciphertext, tag or additional data changed, or another key", () => {
    fc.assert(
      fc.property(
        message,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        ({ key, iv, plaintext, aad }, position, flip, other) => {
          const stored = sealed(key, iv, plaintext, aad)
          const at = position % (stored.length + aad.length)
          const changed = Buffer.from(stored)
          const changedAad = Buffer.from(aad)
          if (at < stored.length) changed[at]! ^= flip
          else changedAad[at - stored.length]! ^= flip
          assert.isUndefined(Gcm.open(key, changed, changedAad))
          if (Buffer.compare(other, key) !== 0) assert.isUndefined(Gcm.open(other, stored, aad))
          assert.isUndefined(Gcm.open(key, stored.subarray(0, stored.length - 1), aad))
        }
      ),
      { numRuns: 300 }
    )
  })
})
