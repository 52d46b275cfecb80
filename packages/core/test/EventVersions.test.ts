import { EventCodec, EventVersions } from "@chronicle/core"
import { assert, describe, it } from "@effect/vitest"
import { Result, Schema, SchemaTransformation } from "effect"

// v1 stored a full name; v2 renamed it and added a country with a default; v3 split the name in two.
const RegisteredV1 = Schema.TaggedStruct("Registered", { name: Schema.String })
const RegisteredV2 = Schema.TaggedStruct("Registered", { fullName: Schema.String, country: Schema.String })
const Registered = Schema.TaggedStruct("Registered", {
  firstName: Schema.String,
  lastName: Schema.String,
  country: Schema.String.check(Schema.isPattern(/^[A-Z]{2}$/))
})
const Closed = Schema.TaggedStruct("Closed", {})

const RegisteredVersions = EventVersions.make(RegisteredV1)
  .next(RegisteredV2, {
    decode: ({ name }) => ({ _tag: "Registered" as const, fullName: name, country: "NL" }),
    encode: ({ fullName }) => ({ _tag: "Registered" as const, name: fullName })
  })
  .next(
    Registered,
    SchemaTransformation.transform({
      decode: ({ fullName, country }) => {
        const [firstName = "", ...rest] = fullName.split(" ")
        return { _tag: "Registered" as const, firstName, lastName: rest.join(" "), country }
      },
      encode: ({ firstName, lastName, country }) => ({
        _tag: "Registered" as const,
        fullName: `${firstName} ${lastName}`,
        country
      })
    })
  )

const codec = EventCodec.make(Schema.Union([RegisteredVersions.schema, Closed]))

const recorded = (type: string, schemaVersion: number, data: Schema.Json) => ({
  eventId: "00000000-0000-4000-8000-000000000001",
  type,
  schemaVersion,
  data,
  metadata: {},
  stream: "customer-1",
  version: 7,
  position: 42n,
  recordedAt: new Date(0)
})

const decodeError = (result: Result.Result<unknown, EventCodec.EventDecodeError>) => {
  assert.isTrue(Result.isFailure(result))
  return (result as Result.Failure<unknown, EventCodec.EventDecodeError>).failure
}

describe("EventVersions", () => {
  it("writes the current version, and plain types at version 1", () => {
    assert.strictEqual(RegisteredVersions.version, 3)
    const written = codec.encode(Registered.make({ firstName: "Ada", lastName: "Lovelace", country: "GB" }), "id", {})
    assert.strictEqual(Result.getOrThrow(written).schemaVersion, 3)
    assert.strictEqual(Result.getOrThrow(codec.encode(Closed.make({}), "id", {})).schemaVersion, 1)
  })

  it("reads every stored version as the current one", () => {
    const current = { _tag: "Registered" as const, firstName: "Ada", lastName: "King Lovelace", country: "NL" }
    assert.deepStrictEqual(
      Result.getOrThrow(codec.decode(recorded("Registered", 1, { name: "Ada King Lovelace" }))),
      current
    )
    assert.deepStrictEqual(
      Result.getOrThrow(codec.decode(recorded("Registered", 2, { fullName: "Ada King Lovelace", country: "NL" }))),
      current
    )
    assert.deepStrictEqual(
      Result.getOrThrow(
        codec.decode(recorded("Registered", 3, { firstName: "Ada", lastName: "King Lovelace", country: "NL" }))
      ),
      current
    )
  })

  it("names the facts of an unknown version, an unknown type and a failing transformation", () => {
    const unknownVersion = decodeError(codec.decode(recorded("Registered", 4, { firstName: "A" })))
    assert.deepInclude(unknownVersion, {
      stream: "customer-1",
      version: 7,
      position: 42n,
      type: "Registered",
      schemaVersion: 4
    })
    assert.include(unknownVersion.reason, "unknown schema version")
    assert.include(decodeError(codec.decode(recorded("Renamed", 1, {}))).reason, "unknown event type")
    const failed = decodeError(codec.decode(recorded("Registered", 2, { fullName: "Ada", country: "Netherlands" })))
    assert.strictEqual(failed.schemaVersion, 2)
    assert.include(failed.reason, "country")
  })

  it("registers every member of a union once, with its history", () => {
    const registry = EventVersions.registry([Schema.Union([RegisteredVersions.schema, Closed]), Closed])
    assert.deepStrictEqual([...registry.keys()], ["Registered", "Closed"])
    assert.deepStrictEqual(Result.getOrThrow(registry.get("Registered")!.upcast(1, { name: "Ada Lovelace" })), {
      firstName: "Ada",
      lastName: "Lovelace",
      country: "NL"
    })
  })

  it.prop("every v1 upcasts to a value the current schema accepts", [RegisteredV1], ([v1]) => {
    const { _tag: _, ...data } = v1
    assert.isTrue(Schema.is(Registered)(Result.getOrThrow(codec.decode(recorded("Registered", 1, data)))))
  })

  it.prop(
    "every v2 with a two-letter country upcasts to a value the current schema accepts",
    [RegisteredV2.mapFields((fields) => ({ ...fields, country: Schema.String.check(Schema.isPattern(/^[A-Z]{2}$/)) }))],
    ([v2]) => {
      const { _tag: _, ...data } = v2
      assert.isTrue(Schema.is(Registered)(Result.getOrThrow(codec.decode(recorded("Registered", 2, data)))))
    }
  )
})
