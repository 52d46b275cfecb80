/**
 * Personal data in event schemas. `subject` marks the field that names whose data an event holds (a customer id:
 * pseudonymous, stored in the clear); `personal` marks a field as that subject's personal data and declares the value
 * it reads as once the subject is forgotten. Stores encrypt personal fields with the subject's key (see
 * `CryptoShredding`); this module holds the declarations and the pure encryption of one event's JSON data.
 *
 * ```ts
 * const CustomerRegistered = Schema.TaggedStruct("CustomerRegistered", {
 *   customerId: Schema.String.pipe(PersonalData.subject),
 *   email: Schema.String.pipe(PersonalData.personal({ redacted: "[forgotten]" }))
 * })
 * ```
 */
import { Result, Schema, SchemaAST } from "effect"
import * as KeyStore from "./KeyStore.ts"

const subjectKey = "@chronicle/core/PersonalData/subject"
const personalKey = "@chronicle/core/PersonalData/personal"

/** Marks a field as naming the subject whose key encrypts the event's personal fields. */
export const subject = <S extends Schema.Top>(schema: S): S["Rebuild"] => schema.annotate({ [subjectKey]: true })

/**
 * Marks a field as personal data of the event's subject. `redacted` is the stored (JSON) value the field reads as
 * once the subject is forgotten; the field's schema must accept it, so aggregates and projections still load.
 */
export const personal =
  (options: { readonly redacted: Schema.Json }) =>
  <S extends Schema.Top>(schema: S): S["Rebuild"] =>
    schema.annotate({ [personalKey]: { redacted: options.redacted } })

/** Which fields of one event shape are personal, and which field names their subject. */
export interface Declaration {
  readonly subject: string
  readonly fields: ReadonlyArray<{ readonly name: string; readonly redacted: Schema.Json }>
}

/**
 * Reads the declaration of an event shape from its annotations: `undefined` when it has no personal fields, a reason
 * when it is not usable (personal fields without a subject field, a redaction marker the field does not accept).
 */
export const declarationOf = (shape: Schema.Top): Result.Result<Declaration | undefined, string> => {
  if (!SchemaAST.isObjects(shape.ast)) return Result.succeed(undefined)
  let subjectField: string | undefined
  const fields: Array<{ readonly name: string; readonly redacted: Schema.Json }> = []
  for (const property of shape.ast.propertySignatures) {
    const name = String(property.name)
    if (SchemaAST.resolveAt(subjectKey)(property.type) === true) subjectField = name
    const marked = SchemaAST.resolveAt<{ readonly redacted: Schema.Json }>(personalKey)(property.type)
    if (marked === undefined) continue
    const accepted = Schema.decodeUnknownResult(
      Schema.toCodecJson(Schema.make<Schema.Codec<unknown, unknown>>(property.type))
    )(marked.redacted)
    if (Result.isFailure(accepted)) return Result.fail(`field ${name} does not accept its redaction marker`)
    fields.push({ name, redacted: marked.redacted })
  }
  if (fields.length === 0) return Result.succeed(undefined)
  if (subjectField === undefined) return Result.fail("it has personal fields but no field marked as the subject")
  return Result.succeed({ subject: subjectField, fields })
}

/** A personal field's value as stored: sealed with the subject's key. */
export interface Sealed {
  readonly $sealed: string
}

/** Whether a stored field value is sealed. */
export const isSealed = (value: unknown): value is Sealed =>
  typeof value === "object" && value !== null && typeof (value as { $sealed?: unknown }).$sealed === "string"

/** The subject named by an event's data, if its subject field holds a non-empty string or a number. */
export const subjectOf = (declaration: Declaration, data: Schema.Json): string | undefined => {
  const value = (data as Schema.JsonObject)[declaration.subject]
  return (typeof value === "string" && value !== "") || typeof value === "number" ? String(value) : undefined
}

/** Seals every personal field present in `data` with the subject's key, bound to the subject and the field name. */
export const encrypt = (
  declaration: Declaration,
  data: Schema.Json,
  subjectId: string,
  key: KeyStore.DataKey
): Schema.JsonObject => {
  const sealed: Record<string, Schema.Json> = { ...(data as Schema.JsonObject) }
  for (const { name } of declaration.fields) {
    const value = sealed[name]
    if (value !== undefined)
      sealed[name] = { $sealed: KeyStore.seal(key, JSON.stringify(value), `${subjectId}/${name}`) }
  }
  return sealed
}

/**
 * Opens every sealed personal field of `data` with the subject's key, or replaces it with its redaction marker when
 * there is no key (the subject was forgotten). Fails with a reason when a sealed field does not open (altered, or
 * sealed under another key). Unsealed fields pass through.
 */
export const decrypt = (
  declaration: Declaration,
  data: Schema.Json,
  subjectId: string,
  key: KeyStore.DataKey | undefined
): Result.Result<Schema.JsonObject, string> => {
  const opened: Record<string, Schema.Json> = { ...(data as Schema.JsonObject) }
  for (const { name, redacted } of declaration.fields) {
    const value = opened[name]
    if (!isSealed(value)) continue
    if (key === undefined) {
      opened[name] = redacted
      continue
    }
    const plaintext = KeyStore.open(key, value.$sealed, `${subjectId}/${name}`)
    if (Result.isFailure(plaintext)) return Result.fail(`personal field ${name}: ${plaintext.failure}`)
    opened[name] = JSON.parse(plaintext.success)
  }
  return Result.succeed(opened)
}

/** The string values (at any depth) of the personal fields in unsealed `data`, to look for leaks elsewhere. */
export const plaintexts = (declaration: Declaration, data: Schema.Json): ReadonlyArray<string> => {
  const found: Array<string> = []
  const collect = (value: Schema.Json | undefined): void => {
    if (typeof value === "string") found.push(value)
    else if (Array.isArray(value)) value.forEach(collect)
    else if (typeof value === "object" && value !== null) Object.values(value).forEach(collect)
  }
  for (const { name } of declaration.fields) collect((data as Schema.JsonObject)[name])
  return found
}
