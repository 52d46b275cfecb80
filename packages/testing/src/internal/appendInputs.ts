/**
 * Arbitrary inputs for the conformance suite's append fuzzing: storable Unicode text (astral planes, combining marks,
 * right-to-left scripts and direction marks) and JSON carrying it, and bad input of every class `append` refuses,
 * each built from a generated description so that it shrinks like any other value.
 */
import { type Envelope, EventId, EventStore, ExpectedVersion, Storable } from "@chronicle/core"
import { Arbitrary, Schema } from "effect"

const upTo = (max: number) => Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: max }))

// Code point ranges: ASCII, Latin-1, combining marks, Hebrew, Arabic, direction marks and embeddings, CJK, emoji, and
// every astral plane. None holds a surrogate or NUL.
const pools: ReadonlyArray<readonly [number, number]> = [
  [0x20, 0x7e],
  [0xa0, 0xff],
  [0x300, 0x36f],
  [0x5d0, 0x5ea],
  [0x620, 0x64a],
  [0x200e, 0x200f],
  [0x202a, 0x202e],
  [0x4e00, 0x9fff],
  [0x1f300, 0x1f64f],
  [0x10000, 0x10ffff]
]
const codePoint = ([pool, offset]: readonly [number, number]) => {
  const [low, high] = pools[pool]!
  return String.fromCodePoint(low + (offset % (high - low + 1)))
}

/** Text Postgres can store, drawn from the ranges above. */
export const text: Arbitrary.Arbitrary<string> = Arbitrary.schema(
  Schema.Array(Schema.Tuple([upTo(pools.length - 1), upTo(0x10ffff)]))
).pipe(Arbitrary.map((points) => points.map(codePoint).join("")))

/** `value` with every string and object key replaced, in turn, by one of `texts`. */
const withTexts = (value: Schema.Json, texts: ReadonlyArray<string>): Schema.Json => {
  let next = 0
  const take = () => (texts.length === 0 ? "" : texts[next++ % texts.length]!)
  const go = (value: Schema.Json): Schema.Json =>
    typeof value === "string"
      ? take()
      : Array.isArray(value)
        ? value.map(go)
        : typeof value === "object" && value !== null
          ? Object.fromEntries(Object.entries(value).map(([, item]) => [take(), go(item)]))
          : value
  return go(value)
}

/** JSON whose strings and keys are Unicode text of the ranges above. */
export const json: Arbitrary.Arbitrary<Schema.Json> = Arbitrary.all({
  value: Arbitrary.schema(Schema.Json),
  texts: Arbitrary.array(text, { maxLength: 8 })
}).pipe(Arbitrary.map(({ value, texts }) => withTexts(value, texts)))

/** A JSON object of such text, for metadata. */
export const jsonObject: Arbitrary.Arbitrary<Envelope.Metadata> = Arbitrary.all({ value: json, key: text }).pipe(
  Arbitrary.map(({ value, key }) =>
    typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Envelope.Metadata)
      : { [key]: value }
  )
)

/** Everything a valid event and its stream's id may vary in. */
export interface ValidInput {
  readonly id: string
  readonly type: string
  readonly data: Schema.Json
  readonly metadata: Envelope.Metadata
}

/** A valid stream id, type, data and metadata, all of Unicode text. */
export const validInput: Arbitrary.Arbitrary<ValidInput> = Arbitrary.all({
  id: text,
  type: text,
  data: json,
  metadata: jsonObject
}).pipe(
  Arbitrary.map(({ id, type, data, metadata }) => ({
    // Stream names are at most 200 UTF-16 code units; the category takes about 25.
    id: `i${Array.from(id).slice(0, 80).join("")}`,
    type: `T${type}`,
    data,
    metadata
  }))
)

/** The classes of bad input; each names the error tag, or the `InvalidAppend` reason tag, it must give. */
export const badKinds = [
  "NoEvents",
  "BadEvent",
  "NotUuid",
  "DuplicateIdInBatch",
  "TooLarge",
  "NotJson",
  "UnrepresentableText",
  "BadExpectedVersion",
  "InvalidStreamName"
] as const
export type BadKind = (typeof badKinds)[number]

/** A generated description of one bad append: its class, a variant, a place, and valid material around it. */
export interface BadSeed {
  readonly kind: BadKind
  readonly variant: number
  readonly at: number
  readonly inMetadata: boolean
  readonly material: ValidInput
  readonly word: string
}

/** Descriptions of bad appends, of every class. */
export const badSeed: Arbitrary.Arbitrary<BadSeed> = Arbitrary.all({
  kind: Arbitrary.schema(Schema.Literals(badKinds)),
  variant: Arbitrary.schema(upTo(1_000)),
  at: Arbitrary.schema(upTo(1_000)),
  inMetadata: Arbitrary.schema(Schema.Boolean),
  material: validInput,
  word: text
})

/** An append to make: its stream, its events and its expectation, possibly of the wrong types. */
export interface AppendInput {
  readonly stream: string
  readonly events: ReadonlyArray<Envelope.EventData>
  readonly expected: ExpectedVersion.ExpectedVersion
}

// Values JSON cannot hold, each built fresh (some are objects that must not be shared between runs).
const notJson: ReadonlyArray<() => unknown> = [
  () => 10n,
  () => Number.NaN,
  () => Number.POSITIVE_INFINITY,
  () => Number.NEGATIVE_INFINITY,
  () => () => 1,
  () => Symbol("s"),
  () => [1, undefined],
  () => new Date(0),
  () => new Map([["k", 1]]),
  () =>
    new (class Money {
      toJSON(): never {
        throw new Error("toJSON threw")
      }
    })(),
  () => {
    const loop: Record<string, unknown> = { a: 1 }
    loop["self"] = { back: loop }
    return loop
  },
  () =>
    Object.defineProperty({}, "broken", {
      enumerable: true,
      get: () => {
        throw new Error("getter threw")
      }
    }),
  () => {
    let deep: unknown = []
    for (let level = 0; level < Storable.maxJsonDepth; level++) deep = [deep]
    return deep
  },
  () => ({ toJSON: () => "a function is not JSON" })
]

// Strings Postgres cannot store: NUL and lone surrogates, inserted into otherwise good text.
const unstorable = ["\u0000", "\ud800", "\udfff", "\udbff"]
const spoil = (good: string, variant: number, at: number) => {
  const units = good.length === 0 ? 0 : at % (good.length + 1)
  return `${good.slice(0, units)}${unstorable[variant % unstorable.length]}${good.slice(units)}`
}

/** `bad` placed inside a copy of `value`: in the `at`-th array or object it holds, or beside it when it holds none. */
const inject = (value: unknown, bad: unknown, at: number): unknown => {
  const containers: Array<Record<string, unknown> | Array<unknown>> = []
  const copy = (value: unknown): unknown => {
    if (Array.isArray(value)) {
      const array = value.map(copy)
      containers.push(array)
      return array
    }
    if (typeof value === "object" && value !== null) {
      const object = Object.fromEntries(Object.entries(value).map(([k, item]) => [k, copy(item)]))
      containers.push(object)
      return object
    }
    return value
  }
  const root = copy(value)
  const target = containers[at % Math.max(containers.length, 1)]
  if (target === undefined) return { value: root, bad }
  if (Array.isArray(target)) target.splice(at % (target.length + 1), 0, bad)
  else target["bad"] = bad
  return root
}

const eventOf = (material: ValidInput): Envelope.EventData => ({
  eventId: EventId.random(),
  type: material.type,
  schemaVersion: 1,
  data: material.data,
  metadata: material.metadata
})

/** Builds the bad append a description stands for, in a stream of `category`. */
export const badAppend = (category: string, seed: BadSeed): AppendInput => {
  const { kind, variant, at, inMetadata, material, word } = seed
  const stream = `${category}-${material.id}`
  const good = eventOf(material)
  const batch = (bad: unknown): ReadonlyArray<Envelope.EventData> => {
    const events: Array<unknown> = [eventOf(material), eventOf(material)]
    events.splice(at % 3, 0, bad)
    return events as ReadonlyArray<Envelope.EventData>
  }
  const any = ExpectedVersion.any
  switch (kind) {
    case "NoEvents":
      return { stream, events: [], expected: any }
    case "BadEvent": {
      const broken: ReadonlyArray<Record<string, unknown> | unknown> = [
        { ...good, schemaVersion: [0, -1 - at, 2 ** 31, 1.5, Number.NaN, "1", undefined][variant % 7] },
        { ...good, type: ["", 42, undefined, null][variant % 4] },
        { ...good, metadata: [[], "m", 5, null][variant % 4] },
        [null, "event", 5, undefined][variant % 4]
      ]
      return { stream, events: batch(broken[at % broken.length]), expected: any }
    }
    case "NotUuid": {
      const ids = [`x${word}`, `${EventId.random()}0`, EventId.random().replaceAll("-", ""), 42, undefined]
      return { stream, events: batch({ ...good, eventId: ids[variant % ids.length] }), expected: any }
    }
    case "DuplicateIdInBatch": {
      const again = { ...eventOf(material), eventId: variant % 2 === 0 ? good.eventId : good.eventId.toUpperCase() }
      return { stream, events: [good, ...batch(again).slice(0, 1 + (at % 2)), again], expected: any }
    }
    case "TooLarge": {
      // Characters of 1 to 4 UTF-8 bytes fill a blob until the event is 1 to 4 bytes over the limit.
      const filler = ["x", "é", "中", "😀"][variant % 4]!
      const data = typeof good.data === "object" && good.data !== null && !Array.isArray(good.data) ? good.data : {}
      const base = Buffer.byteLength(good.type) + Buffer.byteLength(JSON.stringify({ ...data, blob: "" }))
      const room = EventStore.maxEventBytes - base - Buffer.byteLength(JSON.stringify(good.metadata))
      const blob = filler.repeat(Math.max(0, Math.floor(room / Buffer.byteLength(filler)) + 1))
      return { stream, events: batch({ ...good, data: { ...data, blob } }), expected: any }
    }
    case "NotJson":
    case "UnrepresentableText": {
      const bad = kind === "NotJson" ? notJson[variant % notJson.length]!() : spoil(word, variant, at)
      if (kind === "UnrepresentableText" && at % 4 === 0) {
        return { stream, events: batch({ ...good, type: spoil(good.type, variant, at) }), expected: any }
      }
      // For text, a quarter of the cases spoil a key rather than a value.
      const placed = kind === "UnrepresentableText" && at % 4 === 1 ? { [bad as string]: 1 } : bad
      const spoilt = inject(inMetadata ? good.metadata : good.data, placed, at)
      return {
        stream,
        events: batch(inMetadata ? { ...good, metadata: spoilt } : { ...good, data: spoilt }),
        expected: any
      }
    }
    case "BadExpectedVersion": {
      const expectations: ReadonlyArray<unknown> = [
        at,
        ExpectedVersion.exact(Number.NaN),
        ExpectedVersion.exact(Number.POSITIVE_INFINITY),
        ExpectedVersion.exact(-1 - at),
        ExpectedVersion.exact(at + 0.5),
        ExpectedVersion.exact(2 ** 31 + at),
        { _tag: "Exact", version: String(at) },
        { _tag: "Sometimes" },
        null,
        undefined,
        "any"
      ]
      return {
        stream,
        events: [good],
        expected: expectations[variant % expectations.length] as ExpectedVersion.ExpectedVersion
      }
    }
    case "InvalidStreamName":
      return { stream: `${category}-${spoil(material.id, variant, at)}`, events: [good], expected: any }
  }
}
