/**
 * Snapshot codecs: how an aggregate's state becomes the JSON a snapshot store keeps, and back. A codec carries the
 * fingerprint of the state's schema, derived from the schema itself: a hash of a canonical representation of both its
 * type side and its JSON side. Any change to the state's shape changes the fingerprint, so snapshots written by an
 * older release are recognised as foreign and never decoded as the new shape; nobody has to remember to bump a number.
 *
 * **Gotchas**: an opaque declaration (`Schema.declare`, a `Schema.Class`) contributes its identifier, annotations and
 * type parameters, not the code of its guard; annotations such as a description count as shape. When a change the
 * fingerprint cannot see alters what a state means, give the schema an explicit version with `withVersion`.
 */
import { createHash } from "node:crypto"
import { Result, Schema, SchemaAST, SchemaRepresentation } from "effect"

/** A state could not be encoded as a snapshot: it does not satisfy its own schema. */
export class SnapshotEncodeError extends Schema.TaggedError<SnapshotEncodeError>()("SnapshotEncodeError", {
  stream: Schema.String,
  version: Schema.Int,
  reason: Schema.String
}) {
  override get message() {
    return `cannot snapshot ${this.stream}@${this.version}: ${this.reason}`
  }
}

/** A stored snapshot of the current fingerprint could not be decoded into the state; it is ignored. */
export class SnapshotDecodeError extends Schema.TaggedError<SnapshotDecodeError>()("SnapshotDecodeError", {
  stream: Schema.String,
  version: Schema.Int,
  fingerprint: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `ignoring the snapshot of ${this.stream}@${this.version} (fingerprint ${this.fingerprint}): ${this.reason}`
  }
}

/** Turns an aggregate's state into snapshot JSON and back. */
export interface SnapshotCodec<State> {
  /** The fingerprint of the state's schema: snapshots of any other fingerprint are not this shape. */
  readonly fingerprint: string
  /** Encodes the state of `stream` at `version` as JSON. */
  readonly encode: (state: State, stream: string, version: number) => Result.Result<Schema.Json, SnapshotEncodeError>
  /** Decodes snapshot JSON of `stream` at `version` into the state. */
  readonly decode: (json: unknown, stream: string, version: number) => Result.Result<State, SnapshotDecodeError>
}

/** The annotation that holds an explicit snapshot version; `withVersion` sets it. */
export const versionAnnotation = "@chronicle/core/SnapshotCodec/version"

/**
 * Gives a state schema an explicit snapshot version, used as the fingerprint instead of the derived one: change it
 * when what a state means changes in a way its shape does not show.
 */
export const withVersion = <S extends Schema.Top>(schema: S, version: string): S["Rebuild"] =>
  schema.annotate({ [versionAnnotation]: version })

// Keys sorted and functions or symbols dropped, so equal representations print equal whatever built them.
const canonical = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(canonical)
  if (typeof value !== "object" || value === null) return typeof value === "bigint" ? `${value}n` : value
  const entries = Object.entries(value)
    .filter(([, field]) => typeof field !== "function" && typeof field !== "symbol")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return Object.fromEntries(entries.map(([key, field]) => [key, canonical(field)]))
}

/**
 * The fingerprint of a state schema: its explicit version when it has one (`withVersion`), otherwise the SHA-256 of
 * the canonical representation of its type side and its JSON side. The same schema built twice gives the same
 * fingerprint; two different shapes give different ones.
 */
export const fingerprint = (schema: Schema.Top): string => {
  const explicit = SchemaAST.resolveAt<string>(versionAnnotation)(schema.ast)
  if (explicit !== undefined) return `v:${explicit}`
  const document = SchemaRepresentation.toRepresentations([
    SchemaAST.toType(schema.ast),
    Schema.toCodecJson(schema).ast
  ])
  return createHash("sha256")
    .update(JSON.stringify(canonical(document)))
    .digest("base64url")
}

const codecs = new WeakMap<object, SnapshotCodec<any>>()

/** The codec of a state schema, made once per schema value (deriving a fingerprint walks the whole schema). */
export const make = <State>(schema: Schema.Codec<State, unknown>): SnapshotCodec<State> => {
  const known = codecs.get(schema)
  if (known !== undefined) return known
  const json = Schema.toCodecJson(schema)
  const encodeJson = Schema.encodeResult(json)
  const decodeJson = Schema.decodeUnknownResult(json)
  const codec: SnapshotCodec<State> = {
    fingerprint: fingerprint(schema),
    encode: (state, stream, version) =>
      Result.mapError(
        encodeJson(state),
        (error) => new SnapshotEncodeError({ stream, version, reason: error.message })
      ) as Result.Result<Schema.Json, SnapshotEncodeError>,
    decode: (input, stream, version) =>
      Result.mapError(
        decodeJson(input),
        (error) => new SnapshotDecodeError({ stream, version, fingerprint: codec.fingerprint, reason: error.message })
      )
  }
  codecs.set(schema, codec)
  return codec
}
