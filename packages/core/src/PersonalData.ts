/**
 * Personal data in event schemas. `subject` marks the top-level field that names whose data an event holds (a
 * customer id: pseudonymous, stored in the clear); `personal` marks a value as that subject's personal data and
 * declares what it reads as once the subject is forgotten. A mark may sit wherever a value can: a field, an optional
 * key, a member of `NullOr`/`UndefinedOr` or of any union, the elements of an array, tuple or record, and fields of
 * nested structs and classes. This module holds the declarations and the pure sealing of one event's JSON data.
 *
 * ```ts
 * const CustomerRegistered = Schema.TaggedStruct("CustomerRegistered", {
 *   customerId: Schema.String.pipe(PersonalData.subject),
 *   email: Schema.String.pipe(PersonalData.personal({ redacted: "[forgotten]" })),
 *   phones: Schema.Array(Schema.String.pipe(PersonalData.personal({ redacted: "" })))
 * })
 * ```
 *
 * Sealed data keeps its shape: each personal value is replaced by a placeholder `{ "$sealed": i, "$redacted": marker }`,
 * and the values themselves are sealed together, once per event, under the subject's key in one more top-level key,
 * `"$personal": { "subject": id, "sealed": base64 }`. Opening needs no schema: the placeholders say where each value
 * goes, and what it reads as without the key. Data sealed field by field (`{ "$sealed": "<base64>" }` on top-level
 * fields, the format before) still opens.
 *
 * **Gotchas:** a mark the stored JSON cannot locate is refused by `declarationOf`: one inside a recursive
 * (`Schema.suspend`) schema, inside a declared type with no structural encoding (`Schema.declare`), or inside a
 * transformation whose encoded side drops it. Mark the whole value instead.
 */
import { Result, Schema, SchemaAST } from "effect"
import * as KeyStore from "./KeyStore.ts"

const subjectKey = "@chronicle/core/PersonalData/subject"
const personalKey = "@chronicle/core/PersonalData/personal"

/** Marks a top-level field as naming the subject whose key seals the event's personal values. */
export const subject = <S extends Schema.Top>(schema: S): S["Rebuild"] => schema.annotate({ [subjectKey]: true })

/**
 * Marks a value as personal data of the event's subject. `redacted` is the stored (JSON) value it reads as once the
 * subject is forgotten; the value's schema must accept it, so aggregates and projections still load.
 */
export const personal =
  (options: { readonly redacted: Schema.Json }) =>
  <S extends Schema.Top>(schema: S): S["Rebuild"] =>
    schema.annotate({ [personalKey]: { redacted: options.redacted } })

/** Where personal values sit in an event's JSON data: only the branches that lead to a mark. */
export type Plan =
  | { readonly _tag: "Seal"; readonly redacted: Schema.Json }
  | {
      readonly _tag: "Object"
      readonly fields: ReadonlyArray<readonly [string, Plan]>
      /** The plan of every other key's value (a record's values). */
      readonly values: Plan | undefined
    }
  | {
      readonly _tag: "Array"
      readonly elements: ReadonlyArray<Plan | undefined>
      /** The plan of the elements after `elements` (an array's elements). */
      readonly rest: Plan | undefined
    }
  | {
      readonly _tag: "Union"
      /** The members in order; a value follows the first member whose stored shape it has. */
      readonly members: ReadonlyArray<{ readonly is: (value: unknown) => boolean; readonly plan: Plan | undefined }>
    }

/** Which values of one event shape are personal, and which top-level field names their subject. */
export interface Declaration {
  readonly subject: string
  readonly plan: Plan
}

/** Why a shape's marks cannot be sealed: the path of the mark (`addresses[].street`) and the reason. */
export interface Refusal {
  readonly path: string
  readonly reason: string
}

type Step = string | number

const showPath = (path: ReadonlyArray<Step>): string =>
  path.reduce<string>(
    (shown, step) =>
      typeof step === "number"
        ? `${shown}[${step}]`
        : step === "[]" || step === "{}"
          ? `${shown}${step}`
          : shown === ""
            ? step
            : `${shown}.${step}`,
    ""
  ) || "(the event)"

const children = (ast: SchemaAST.AST): ReadonlyArray<SchemaAST.AST> => {
  switch (ast._tag) {
    case "Objects":
      return [...ast.propertySignatures.map((p) => p.type), ...ast.indexSignatures.map((s) => s.type)]
    case "Arrays":
      return [...ast.elements, ...ast.rest]
    case "Union":
      return ast.types
    case "Declaration":
      return ast.typeParameters
    default:
      return []
  }
}

/** How many marks a schema holds on its type side (not following encodings or recursion). */
const countMarks = (ast: SchemaAST.AST): number =>
  SchemaAST.resolveAt(personalKey)(ast) !== undefined
    ? 1
    : children(ast).reduce((sum, child) => sum + countMarks(child), 0)

const countSeals = (plan: Plan | undefined): number => {
  if (plan === undefined) return 0
  switch (plan._tag) {
    case "Seal":
      return 1
    case "Object":
      return plan.fields.reduce((sum, [, field]) => sum + countSeals(field), countSeals(plan.values))
    case "Array":
      return plan.elements.reduce((sum, element) => sum + countSeals(element), countSeals(plan.rest))
    case "Union":
      return plan.members.reduce((sum, member) => sum + countSeals(member.plan), 0)
  }
}

// Walks the JSON side of a schema: where a value sits in stored data is where its encoded form sits. The first
// refusal is kept in `refused`; the walk goes on, and the caller discards its plan.
const planOf = (ast: SchemaAST.AST, path: ReadonlyArray<Step>, refused: Array<Refusal>): Plan | undefined => {
  const refuse = (reason: string): undefined => void refused.push({ path: showPath(path), reason })
  const marked = SchemaAST.resolveAt<{ readonly redacted: Schema.Json }>(personalKey)(ast)
  if (marked !== undefined) {
    if (SchemaAST.resolveAt(subjectKey)(ast) === true) return refuse("the subject cannot be personal")
    const accepted = Schema.decodeUnknownResult(Schema.make<Schema.Codec<unknown, unknown>>(ast))(marked.redacted)
    if (Result.isFailure(accepted)) return refuse("the value does not accept its redaction marker")
    return { _tag: "Seal", redacted: marked.redacted }
  }
  if (path.length !== 1 && SchemaAST.resolveAt(subjectKey)(ast) === true) {
    return refuse("the subject must be a top-level field")
  }
  if (ast.encoding !== undefined) {
    const encoded = planOf(ast.encoding[ast.encoding.length - 1]!.to, path, refused)
    if (countMarks(ast) > countSeals(encoded)) return refuse("a transformation's stored shape does not keep this mark")
    return encoded
  }
  switch (ast._tag) {
    case "Objects": {
      const fields: Array<readonly [string, Plan]> = []
      for (const property of ast.propertySignatures) {
        if (typeof property.name !== "string") continue
        const plan = planOf(property.type, [...path, property.name], refused)
        if (plan !== undefined) fields.push([property.name, plan])
      }
      const values = ast.indexSignatures.map((signature) => planOf(signature.type, [...path, "{}"], refused))
      if (values.filter((plan) => plan !== undefined).length > 1) return refuse("several index signatures hold marks")
      const rest = values.find((plan) => plan !== undefined)
      return fields.length === 0 && rest === undefined ? undefined : { _tag: "Object", fields, values: rest }
    }
    case "Arrays": {
      const elements = ast.elements.map((element, index) => planOf(element, [...path, index], refused))
      const rests = ast.rest.map((element) => planOf(element, [...path, "[]"], refused))
      if (rests.length > 1 && rests.some((plan) => plan !== undefined)) {
        return refuse("elements after a rest element cannot be located")
      }
      const rest = rests[0]
      return elements.every((plan) => plan === undefined) && rest === undefined
        ? undefined
        : { _tag: "Array", elements, rest }
    }
    case "Union": {
      const plans = ast.types.map((member) => planOf(member, path, refused))
      if (plans.every((plan) => plan === undefined)) return undefined
      return {
        _tag: "Union",
        members: ast.types.map((member, index) => ({
          is: Schema.is(Schema.make(SchemaAST.toEncoded(member))),
          plan: plans[index]
        }))
      }
    }
    case "Declaration":
      return countMarks(ast) > 0 ? refuse("a declared type without a structural encoding hides this mark") : undefined
    case "Suspend":
      return countMarks(ast.thunk()) > 0
        ? refuse("marks inside a recursive schema are not supported; mark the whole value")
        : undefined
    default:
      return undefined
  }
}

/**
 * Reads the declaration of an event shape from its marks: `undefined` when it has no personal values, a refusal
 * naming the path when a mark cannot be sealed (see the module's Gotchas) or the shape has personal values but no
 * subject field.
 */
export const declarationOf = (shape: Schema.Top): Result.Result<Declaration | undefined, Refusal> => {
  const ast = Schema.toCodecJson(shape).ast
  const refused: Array<Refusal> = []
  const plan = planOf(ast, [], refused)
  if (refused[0] !== undefined) return Result.fail(refused[0])
  if (plan === undefined) return Result.succeed(undefined)
  const subjectField = SchemaAST.isObjects(ast)
    ? ast.propertySignatures.find((property) => SchemaAST.resolveAt(subjectKey)(property.type) === true)
    : undefined
  if (subjectField === undefined) {
    return Result.fail({ path: "(the event)", reason: "it has personal values but no field marked as the subject" })
  }
  return Result.succeed({ subject: String(subjectField.name), plan })
}

/** The subject named by an event's data, if its subject field holds a non-empty string or a number. */
export const subjectOf = (declaration: Declaration, data: Schema.Json): string | undefined => {
  const value = (data as Schema.JsonObject)[declaration.subject]
  return (typeof value === "string" && value !== "") || typeof value === "number" ? String(value) : undefined
}

const isObject = (value: unknown): value is Schema.JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Rebuilds `value` with every personal value in it replaced by what `at` returns for it. */
const replace = (
  plan: Plan,
  value: Schema.Json,
  at: (value: Schema.Json, redacted: Schema.Json) => Schema.Json
): Schema.Json => {
  switch (plan._tag) {
    case "Seal":
      return at(value, plan.redacted)
    case "Object": {
      if (!isObject(value)) return value
      const copy: Record<string, Schema.Json> = { ...value }
      for (const [name, field] of plan.fields) {
        const inner = copy[name]
        if (inner !== undefined) copy[name] = replace(field, inner, at)
      }
      if (plan.values !== undefined) {
        const named = new Set(plan.fields.map(([name]) => name))
        for (const [name, inner] of Object.entries(value)) {
          if (!named.has(name)) copy[name] = replace(plan.values, inner, at)
        }
      }
      return copy
    }
    case "Array":
      if (!Array.isArray(value)) return value
      return value.map((element, index) => {
        const inner = index < plan.elements.length ? plan.elements[index] : plan.rest
        return inner === undefined ? element : replace(inner, element, at)
      })
    case "Union": {
      const member = plan.members.find((candidate) => candidate.is(value))
      return member?.plan === undefined ? value : replace(member.plan, value, at)
    }
  }
}

/** The personal values of `data`, in the order `seal` seals them. */
export const personalValues = (declaration: Declaration, data: Schema.Json): ReadonlyArray<Schema.Json> => {
  const values: Array<Schema.Json> = []
  replace(declaration.plan, data, (value) => {
    values.push(value)
    return value
  })
  return values
}

/** `data` with every personal value replaced by its redaction marker (for a forgotten subject). */
export const redact = (declaration: Declaration, data: Schema.Json): Schema.JsonObject =>
  replace(declaration.plan, data, (_, redacted) => redacted) as Schema.JsonObject

/** The key under which sealed data keeps its sealed values and the subject they belong to. */
export const sealedKey = "$personal"

/** What `seal` adds to an event's data: the subject and its personal values, sealed under its key. */
export interface SealedValues {
  readonly subject: string
  readonly sealed: string
}

const additionalData = (subjectId: string, context: string) => `${subjectId}\u0000${context}`

/**
 * Seals the personal values of `data` under the subject's key, as one sealed value bound to the subject and to
 * `context` (the event id, for events); `data` comes back unchanged when it holds none.
 */
export const seal = (
  declaration: Declaration,
  data: Schema.Json,
  subjectId: string,
  context: string,
  key: KeyStore.DataKey
): Schema.JsonObject => {
  const values: Array<Schema.Json> = []
  const placed = replace(declaration.plan, data, (value, redacted) => {
    values.push(value)
    return { $sealed: values.length - 1, $redacted: redacted }
  }) as Schema.JsonObject
  if (values.length === 0) return placed
  const sealed = KeyStore.seal(key, JSON.stringify(values), additionalData(subjectId, context))
  return { ...placed, [sealedKey]: { subject: subjectId, sealed } }
}

/** The sealed values of data that `seal` sealed, if it holds any. */
export const sealedValuesOf = (data: Schema.Json): SealedValues | undefined => {
  const found = isObject(data) ? data[sealedKey] : undefined
  return isObject(found) && typeof found["subject"] === "string" && typeof found["sealed"] === "string"
    ? (found as unknown as SealedValues)
    : undefined
}

// A copy of `value` with each placeholder replaced by its value (its marker when `values` is undefined), leaving out
// the key `skip`. Written with plain loops: it runs once per value of every event read.
const fill = (value: Schema.Json, values: ReadonlyArray<Schema.Json> | undefined, skip?: string): Schema.Json => {
  if (typeof value !== "object" || value === null) return value
  if (Array.isArray(value)) {
    const copy = new Array<Schema.Json>(value.length)
    for (let index = 0; index < value.length; index++) copy[index] = fill(value[index]!, values)
    return copy
  }
  const object = value as Schema.JsonObject
  const sealed = object["$sealed"]
  if (typeof sealed === "number") return values === undefined ? object["$redacted"]! : values[sealed]!
  const copy: Record<string, Schema.Json> = {}
  for (const name of Object.keys(object)) if (name !== skip) copy[name] = fill(object[name]!, values)
  return copy
}

/** What opening sealed data takes: the subject whose key opens it, and the sealed text with its context. */
export interface Opening {
  readonly subject: string
  readonly sealed: string
  readonly context: string
}

/** What opening `data`, sealed by `seal` with `context`, takes; `undefined` when it holds no sealed values. */
export const openingOf = (data: Schema.Json, context: string): Opening | undefined => {
  const sealedValues = sealedValuesOf(data)
  return sealedValues === undefined
    ? undefined
    : {
        subject: sealedValues.subject,
        sealed: sealedValues.sealed,
        context: additionalData(sealedValues.subject, context)
      }
}

/**
 * Sealed `data` with its values put in place: `plaintext` is what its sealed values opened to, `undefined` puts every
 * value's redaction marker in its place (the subject was forgotten). Fails with a reason when the values did not open.
 */
export const withValues = (
  data: Schema.Json,
  plaintext: Result.Result<string, string> | undefined
): Result.Result<Schema.Json, string> => {
  if (plaintext === undefined) return Result.succeed(fill(data, undefined, sealedKey))
  if (Result.isFailure(plaintext)) return Result.fail(`personal values: ${plaintext.failure}`)
  const values = JSON.parse(plaintext.success)
  return Array.isArray(values)
    ? Result.succeed(fill(data, values, sealedKey))
    : Result.fail("personal values: not an array")
}

/**
 * Opens data that `seal` sealed with the subject's key and the same `context`, or puts every value's redaction marker
 * in its place when `key` is undefined (the subject was forgotten). Fails with a reason when the sealed values do not
 * open (altered, or sealed under another key). Data without sealed values comes back unchanged.
 */
export const open = (
  data: Schema.Json,
  context: string,
  key: KeyStore.DataKey | undefined
): Result.Result<Schema.Json, string> => {
  const opening = openingOf(data, context)
  if (opening === undefined) return Result.succeed(data)
  return withValues(data, key === undefined ? undefined : KeyStore.open(key, opening.sealed, opening.context))
}

/** A top-level field sealed on its own, the format before `seal` sealed all of an event's values at once. */
interface SealedField {
  readonly $sealed: string
}

const isSealedField = (value: unknown): value is SealedField => isObject(value) && typeof value["$sealed"] === "string"

/** Whether `data` holds top-level fields sealed one by one (the format before `seal`). */
export const hasSealedFields = (data: Schema.Json): boolean => isObject(data) && Object.values(data).some(isSealedField)

/**
 * Opens top-level fields sealed one by one (the format before `seal`), bound to the subject and the field name, or
 * puts their redaction markers in their place when `key` is undefined.
 */
export const openFields = (
  declaration: Declaration,
  data: Schema.Json,
  subjectId: string,
  key: KeyStore.DataKey | undefined
): Result.Result<Schema.JsonObject, string> => {
  const opened: Record<string, Schema.Json> = { ...(data as Schema.JsonObject) }
  const fields = declaration.plan._tag === "Object" ? declaration.plan.fields : []
  for (const [name, value] of Object.entries(opened)) {
    if (!isSealedField(value)) continue
    const field = fields.find(([candidate]) => candidate === name)?.[1]
    if (field?._tag !== "Seal") return Result.fail(`personal field ${name}: the schema no longer marks it personal`)
    if (key === undefined) {
      opened[name] = field.redacted
      continue
    }
    const plaintext = KeyStore.open(key, value.$sealed, `${subjectId}/${name}`)
    if (Result.isFailure(plaintext)) return Result.fail(`personal field ${name}: ${plaintext.failure}`)
    opened[name] = JSON.parse(plaintext.success)
  }
  return Result.succeed(opened)
}

/** Every string inside some JSON values, to look for the ones that leak elsewhere. */
export const strings = (values: ReadonlyArray<Schema.Json>): ReadonlyArray<string> => {
  const found: Array<string> = []
  const collect = (value: Schema.Json): void => {
    if (typeof value === "string") found.push(value)
    else if (Array.isArray(value)) value.forEach(collect)
    else if (isObject(value)) Object.values(value).forEach(collect)
  }
  values.forEach(collect)
  return found
}
