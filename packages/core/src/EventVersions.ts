/**
 * Versioned event definitions. An event type has a current schema and any number of older shapes it was once stored
 * in, each with a schema transformation to the next shape (rename a field, add one with a default, split one in
 * two). Events are stored with the number of the shape they were written in; reading decodes any stored version up
 * to the current one, and writing always uses the current one. The history travels inside the current schema as an
 * annotation, so an aggregate's event union (and `EventCodec.make`) picks it up without being told.
 *
 * ```ts
 * const Deposited = EventVersions.make(DepositedV1)
 *   .next(Deposited, SchemaTransformation.transform({ decode: (v1) => ({ ...v1, currency: "EUR" }), encode: ... }))
 * const Event = Schema.Union([Deposited.schema, Withdrawn]) // Deposited is now stored at version 2
 * ```
 */
import { Result, Schema, SchemaAST, SchemaTransformation } from "effect"
import type { Tagged } from "./Envelope.ts"

const annotationKey = "@chronicle/core/EventVersions"

/** The history of one event type: its shapes from version 1 to the current one. */
export interface EventVersions<T extends Tagged> {
  /** The event's type tag, the same in every version. */
  readonly type: string
  /** The current version: the number of shapes. */
  readonly version: number
  /** The current schema, carrying this history: put it in the aggregate's event union. */
  readonly schema: Schema.Codec<T, unknown>
  /** The schema each version was stored in, by version (for generators in tests, and personal fields of old rows). */
  readonly shapes: ReadonlyMap<number, Schema.Top>
  /** Codecs from each stored version's encoded shape to the current type, by version. */
  readonly readers: ReadonlyMap<number, Schema.Codec<T, unknown>>
  /**
   * A newer shape, with the transformation from this shape's type to the newer shape's encoded form: a
   * `SchemaTransformation`, or its two functions.
   */
  readonly next: <Next extends Tagged, NextEncoded>(
    schema: Schema.Codec<Next, NextEncoded>,
    transformation: Transformation<NextEncoded, T>
  ) => EventVersions<Next>
}

/** How one shape becomes the next: `decode` upcasts, `encode` maps back (only used if an old shape is ever written). */
export type Transformation<NextEncoded, Previous> =
  | SchemaTransformation.Transformation<NextEncoded, Previous>
  | { readonly decode: (previous: Previous) => NextEncoded; readonly encode: (next: NextEncoded) => Previous }

const isFunctions = <NextEncoded, Previous>(
  transformation: Transformation<NextEncoded, Previous>
): transformation is Exclude<Transformation<NextEncoded, Previous>, SchemaTransformation.Transformation<any, any>> =>
  !SchemaTransformation.isTransformation(transformation)

/** The literal `_tag` of a tagged struct, if it is one. */
export const tagOf = (ast: SchemaAST.AST): string | undefined => {
  if (!SchemaAST.isObjects(ast)) return undefined
  const tag = ast.propertySignatures.find((property) => property.name === "_tag")
  return tag !== undefined && SchemaAST.isLiteral(tag.type) && typeof tag.type.literal === "string"
    ? tag.type.literal
    : undefined
}

const build = <T extends Tagged>(
  current: Schema.Codec<T, unknown>,
  shapes: ReadonlyMap<number, Schema.Top>,
  readers: ReadonlyMap<number, Schema.Codec<T, unknown>>
): EventVersions<T> => {
  const type = tagOf(current.ast)
  if (type === undefined) throw new Error("EventVersions: an event schema must be a tagged struct")
  const history: Omit<EventVersions<T>, "schema"> = {
    type,
    version: shapes.size,
    shapes,
    readers,
    next: <Next extends Tagged, NextEncoded>(
      schema: Schema.Codec<Next, NextEncoded>,
      transformation: Transformation<NextEncoded, T>
    ) => {
      if (tagOf(schema.ast) !== type) throw new Error(`EventVersions: every version of ${type} must keep its tag`)
      const step: SchemaTransformation.Transformation<NextEncoded, T> = isFunctions(transformation)
        ? SchemaTransformation.transform(transformation)
        : transformation
      const upcast = new Map<number, Schema.Codec<Next, unknown>>()
      for (const [version, reader] of readers) upcast.set(version, reader.pipe(Schema.decodeTo(schema, step)))
      return build(schema, new Map(shapes).set(shapes.size + 1, schema), upcast.set(shapes.size + 1, schema))
    }
  }
  return { ...history, schema: current.annotate({ [annotationKey]: history }) }
}

/** Starts the history of an event type with its first shape, stored as version 1. */
export const make = <T extends Tagged>(schema: Schema.Codec<T, unknown>): EventVersions<T> =>
  build(schema, new Map([[1, schema]]), new Map([[1, schema]]))

/** What a store-side reader knows about one event type. */
export interface Entry {
  readonly type: string
  /** The version events of this type are written in now. */
  readonly version: number
  /** The schema events of `version` were stored in, if that version exists. */
  readonly shape: (version: number) => Schema.Top | undefined
  /** Decodes stored JSON data (without the tag) of any known version into the current type. */
  readonly decode: (version: number, data: Schema.Json) => Result.Result<unknown, string>
  /** Rewrites stored JSON data of any known version as the current version's JSON data. */
  readonly upcast: (version: number, data: Schema.Json) => Result.Result<Schema.Json, string>
}

/** The event types a process knows, by type tag. */
export type Registry = ReadonlyMap<string, Entry>

const entry = (member: Schema.Top, type: string): Entry => {
  const history = SchemaAST.resolveAt<Omit<EventVersions<Tagged>, "schema">>(annotationKey)(member.ast)
  const shapes = history?.shapes ?? new Map([[1, member]])
  const readers = history?.readers ?? new Map([[1, member as Schema.Codec<Tagged, unknown>]])
  const version = history?.version ?? 1
  const decoders = new Map(
    [...readers].map(([v, reader]) => [v, Schema.decodeUnknownResult(Schema.toCodecJson(reader))] as const)
  )
  const encodeCurrent = Schema.encodeResult(Schema.toCodecJson(readers.get(version)!))
  const decode = (stored: number, data: Schema.Json): Result.Result<unknown, string> => {
    const decoder = decoders.get(stored)
    if (decoder === undefined) return Result.fail(`unknown schema version (known: 1 to ${version})`)
    return Result.mapError(decoder({ ...(data as Schema.JsonObject), _tag: type }), (error) => error.message)
  }
  return {
    type,
    version,
    shape: (v) => shapes.get(v),
    decode,
    upcast: (stored, data) =>
      Result.flatMap(decode(stored, data), (event) =>
        encodeCurrent(event as Tagged).pipe(
          Result.map((encoded) => {
            const { _tag: _, ...rest } = encoded as Schema.JsonObject
            return rest
          }),
          Result.mapError((error) => error.message)
        )
      )
  }
}

const members = (ast: SchemaAST.AST): ReadonlyArray<SchemaAST.AST> =>
  SchemaAST.isUnion(ast) ? ast.types.flatMap(members) : [ast]

/**
 * Builds the registry of the event types in some event schemas (aggregates' unions, or single event schemas).
 * Types with no history are version 1. **Gotcha:** two different schemas with the same tag are a definition error
 * (the store keeps only the tag), so this throws.
 */
export const registry = (schemas: ReadonlyArray<Schema.Top>): Registry => {
  const found = new Map<string, { readonly ast: SchemaAST.AST; readonly entry: Entry }>()
  for (const ast of schemas.flatMap((schema) => members(schema.ast))) {
    const type = tagOf(SchemaAST.toType(ast))
    if (type === undefined) continue
    const known = found.get(type)
    if (known !== undefined && known.ast !== ast) {
      throw new Error(`EventVersions.registry: two different schemas are tagged ${type}`)
    }
    if (known === undefined) found.set(type, { ast, entry: entry(Schema.make(ast), type) })
  }
  return new Map([...found].map(([type, { entry }]) => [type, entry]))
}
