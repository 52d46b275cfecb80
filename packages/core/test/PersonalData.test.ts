import { CryptoShredding, EventId, EventStore, ExpectedVersion, KeyStore, PersonalData } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Result, Schema, SchemaGetter, Stream } from "effect"
import fc from "fast-check"

const text = Schema.String.pipe(PersonalData.personal({ redacted: "[forgotten]" }))
const subjectField = { customerId: Schema.String.pipe(PersonalData.subject) }

class Address extends Schema.Class<Address>("Address")({ street: text, city: Schema.String }) {}

/** One mark in every position the module supports. */
const Everywhere = Schema.TaggedStruct("Everywhere", {
  ...subjectField,
  name: text,
  nickname: Schema.optionalKey(text),
  maiden: Schema.optional(text),
  phone: Schema.NullOr(text),
  fax: Schema.UndefinedOr(text),
  contact: Schema.Union([Schema.Struct({ kind: Schema.Literal("mail"), email: text }), Schema.Number]),
  emails: Schema.Array(text),
  pair: Schema.Tuple([text, Schema.Int]),
  labels: Schema.Record(Schema.String, text),
  home: Address,
  profile: Schema.Struct({ bio: text, friends: Schema.Array(Schema.Struct({ name: text, since: Schema.Int })) }),
  notes: Schema.Array(Schema.String).pipe(PersonalData.personal({ redacted: [] })),
  birthYear: Schema.Int.pipe(PersonalData.personal({ redacted: 0 }))
})

const everywhere: Schema.JsonObject = {
  customerId: "c-1",
  name: "Ada Lovelace",
  nickname: "Enchantress",
  phone: "+44 1234",
  fax: null,
  contact: { kind: "mail", email: "ada@example.com" },
  emails: ["ada@one.example", "ada@two.example"],
  pair: ["Byron Street", 7],
  labels: { mother: "Annabella", tutor: "De Morgan" },
  home: { street: "St James Square", city: "London" },
  profile: { bio: "Analyst", friends: [{ name: "Charles Babbage", since: 1833 }] },
  notes: ["poetical science"],
  birthYear: 1815
}
const secrets = [
  "Ada Lovelace",
  "Enchantress",
  "+44 1234",
  "ada@example.com",
  "ada@one.example",
  "ada@two.example",
  "Byron Street",
  "Annabella",
  "De Morgan",
  "St James Square",
  "Analyst",
  "Charles Babbage",
  "poetical science",
  "1815"
]

const declared = (shape: Schema.Top) => Result.getOrThrow(PersonalData.declarationOf(shape))!
const refusalOf = (shape: Schema.Top) =>
  Result.getOrThrowWith(Result.flip(PersonalData.declarationOf(shape)), () => "accepted")

describe("PersonalData", () => {
  it("seals a mark in every supported position, opens it, and redacts it to values the schema accepts", () => {
    const declaration = declared(Everywhere)
    const key = KeyStore.generateKey()
    const sealed = PersonalData.seal(declaration, everywhere, "c-1", "e-1", key)
    const stored = JSON.stringify(sealed)
    for (const secret of secrets) assert.notInclude(stored, secret)
    assert.include(stored, "London") // not personal: stays in the clear
    assert.deepStrictEqual(Result.getOrThrow(PersonalData.open(sealed, "e-1", key)), everywhere)
    const redacted = Result.getOrThrow(PersonalData.open(sealed, "e-1", undefined)) as Schema.JsonObject
    assert.deepStrictEqual(redacted, {
      ...everywhere,
      name: "[forgotten]",
      nickname: "[forgotten]",
      phone: "[forgotten]",
      contact: { kind: "mail", email: "[forgotten]" },
      emails: ["[forgotten]", "[forgotten]"],
      pair: ["[forgotten]", 7],
      labels: { mother: "[forgotten]", tutor: "[forgotten]" },
      home: { street: "[forgotten]", city: "London" },
      profile: { bio: "[forgotten]", friends: [{ name: "[forgotten]", since: 1833 }] },
      notes: [],
      birthYear: 0
    })
    assert.isTrue(
      Result.isSuccess(Schema.decodeUnknownResult(Schema.toCodecJson(Everywhere))({ ...redacted, _tag: "Everywhere" }))
    )
  })

  it("leaves values of unmarked union members, nulls and absent keys as they are", () => {
    const declaration = declared(Everywhere)
    const { nickname: _, ...data } = { ...everywhere, contact: 42, phone: null } as Schema.JsonObject
    const sealed = PersonalData.seal(declaration, data, "c-1", "e-1", KeyStore.generateKey()) as Schema.JsonObject
    assert.strictEqual(sealed.contact, 42)
    assert.strictEqual(sealed.phone, null)
    assert.notProperty(sealed, "nickname")
  })

  it("refuses marks it cannot locate in the stored JSON, naming the path", () => {
    interface Tree {
      readonly label: string
      readonly children: ReadonlyArray<Tree>
    }
    const Tree: Schema.Codec<Tree> = Schema.Struct({
      label: text,
      children: Schema.Array(Schema.suspend((): Schema.Codec<Tree> => Tree))
    })
    const Renamed = Schema.Struct({ stored: Schema.String }).pipe(
      Schema.decodeTo(Schema.Struct({ shown: text }), {
        decode: SchemaGetter.transform(({ stored }) => ({ shown: stored })),
        encode: SchemaGetter.transform(({ shown }) => ({ stored: shown }))
      })
    )
    const event = (fields: Schema.Struct.Fields) => Schema.TaggedStruct("E", { ...subjectField, ...fields })
    assert.deepStrictEqual(refusalOf(event({ tree: Schema.Array(Tree) })), {
      path: "tree[].children[]",
      reason: "marks inside a recursive schema are not supported; mark the whole value"
    })
    assert.deepStrictEqual(refusalOf(event({ inner: Schema.Struct({ renamed: Renamed }) })), {
      path: "inner.renamed",
      reason: "a transformation's stored shape does not keep this mark"
    })
    assert.deepStrictEqual(
      refusalOf(
        event({
          people: Schema.Array(Schema.Struct({ age: Schema.Int.pipe(PersonalData.personal({ redacted: "?" })) }))
        })
      ),
      {
        path: "people[].age",
        reason: "the value does not accept its redaction marker"
      }
    )
    assert.deepStrictEqual(
      refusalOf(event({ owner: Schema.Struct({ id: Schema.String.pipe(PersonalData.subject) }) })),
      {
        path: "owner.id",
        reason: "the subject must be a top-level field"
      }
    )
    assert.deepStrictEqual(refusalOf(Schema.TaggedStruct("NoSubject", { name: text })), {
      path: "(the event)",
      reason: "it has personal values but no field marked as the subject"
    })
  })

  it.effect("the shredding layer refuses to build over an unsupported mark, naming the event type and path", () =>
    Effect.gen(function* () {
      const Broken = Schema.TaggedStruct("Broken", {
        ...subjectField,
        owner: Schema.Struct({ age: Schema.Int.pipe(PersonalData.personal({ redacted: "?" })) })
      })
      const error = yield* CryptoShredding.make(yield* EventStore.makeMemory, { events: [Broken] }).pipe(Effect.flip)
      assert.deepStrictEqual(
        { ...error },
        {
          _tag: "UnsupportedMark",
          type: "Broken",
          schemaVersion: 1,
          path: "owner.age",
          reason: "the value does not accept its redaction marker"
        }
      )
    }).pipe(Effect.provide(KeyStore.layerMemory))
  )
})

// ── Property: marks at random positions ──────────────────────────────────────────────────────────────────────────

/** A schema with some marks inside, and JSON values of it whose personal strings all start with "secret-". */
interface Generated {
  readonly schema: Schema.Top
  readonly value: fc.Arbitrary<Schema.Json>
}

const personalString: Generated = {
  schema: text,
  value: fc.uuid().map((uuid) => `secret-${uuid}`)
}
const plainString: Generated = { schema: Schema.String, value: fc.stringMatching(/^[a-z]{0,6}$/) }
const plainInt: Generated = { schema: Schema.Int, value: fc.integer({ min: -1000, max: 1000 }) }

const asCodec = (schema: Schema.Top) => schema as Schema.Codec<unknown, unknown>

const generated: fc.Arbitrary<Generated> = fc.letrec<{ node: Generated }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(personalString, plainString, plainInt),
    tie("node").map((element) => ({
      schema: Schema.Array(element.schema),
      value: fc.array(element.value, { maxLength: 3 })
    })),
    tie("node").map((element) => ({
      schema: Schema.Array(element.schema).pipe(PersonalData.personal({ redacted: [] })),
      value: fc.array(element.value, { maxLength: 3 })
    })),
    fc.tuple(tie("node"), tie("node")).map(([a, b]) => ({
      schema: Schema.Tuple([a.schema, b.schema]),
      value: fc.tuple(a.value, b.value)
    })),
    tie("node").map((element) => ({
      schema: Schema.Record(Schema.String, element.schema),
      value: fc.dictionary(fc.constantFrom("a", "b", "c"), element.value, { maxKeys: 3 })
    })),
    tie("node").map((element) => ({
      schema: Schema.NullOr(element.schema),
      value: fc.option(element.value, { nil: null })
    })),
    fc.tuple(tie("node"), tie("node"), fc.boolean()).map(([a, b, optional]) => ({
      schema: Schema.Struct({ first: a.schema, second: optional ? Schema.optionalKey(b.schema) : b.schema }),
      value: fc.record({ first: a.value, second: b.value }, optional ? { requiredKeys: ["first"] } : {})
    })),
    fc.tuple(tie("node"), tie("node")).map(([a, b]) => ({
      schema: Schema.Union([
        Schema.Struct({ kind: Schema.Literal("a"), a: a.schema }),
        Schema.Struct({ kind: Schema.Literal("b"), b: b.schema })
      ]),
      value: fc.oneof(
        fc.record({ kind: fc.constant("a"), a: a.value }),
        fc.record({ kind: fc.constant("b"), b: b.value })
      )
    }))
  )
})).node

const secretsIn = (value: Schema.Json): ReadonlyArray<string> =>
  PersonalData.strings([value]).filter((string) => string.startsWith("secret-"))

describe("PersonalData (property)", () => {
  it("marks at random positions: decode ∘ encode = id before forget; no plaintext stored; redacted data decodes", () =>
    fc.assert(
      fc.property(
        generated.chain((body) => fc.tuple(fc.constant(body), body.value)),
        ([body, value]) => {
          const Event = Schema.TaggedStruct("Random", { ...subjectField, body: body.schema })
          const codec = Schema.decodeUnknownResult(Schema.toCodecJson(asCodec(Event)))
          const data = { customerId: "c-1", body: value }
          const program = Effect.gen(function* () {
            const raw = yield* EventStore.makeMemory
            const store = yield* CryptoShredding.make(raw, { events: [Event] })
            yield* store.append(
              "random-1",
              [{ eventId: EventId.random(), type: "Random", schemaVersion: 1, data, metadata: {} }],
              ExpectedVersion.noStream
            )
            const [stored] = yield* Stream.runCollect(raw.readAll())
            const row = JSON.stringify([stored!.stream, stored!.data, stored!.metadata])
            for (const secret of secretsIn(value)) assert.notInclude(row, secret)
            const [read] = yield* Stream.runCollect(store.readAll())
            assert.deepStrictEqual(read!.data, data)
            yield* KeyStore.forget("c-1")
            const [forgotten] = yield* Stream.runCollect(store.readAll())
            assert.deepStrictEqual(secretsIn(forgotten!.data), [])
            assert.isTrue(Result.isSuccess(codec({ ...(forgotten!.data as object), _tag: "Random" })))
          })
          Effect.runSync(program.pipe(Effect.provide(Layer.mergeAll(KeyStore.layerMemory))))
        }
      ),
      { numRuns: 200 }
    ))
})
