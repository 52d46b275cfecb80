/**
 * What a store can hold: text Postgres can store (UTF-8 without NUL, so no NUL and no lone UTF-16 surrogate) and JSON
 * values (null, booleans, finite numbers, such strings, arrays and plain objects, nested at most `maxJsonDepth` deep).
 * Every store checks with these functions (through `EventStore.prepareAppend` and `StreamName.validate`), so the
 * in-memory and Postgres stores accept exactly the same input.
 */
import { Result } from "effect"

/** How deeply arrays and objects may nest inside one JSON value. */
export const maxJsonDepth = 1_000

/** Why a string cannot be stored, or `undefined` when it can. */
export const textProblem = (text: string): string | undefined =>
  text.includes("\u0000")
    ? "contains a NUL character"
    : text.isWellFormed()
      ? undefined
      : "contains a lone UTF-16 surrogate (not Unicode text)"

/** A value that is not storable JSON: where it is, and what is wrong with it. */
export interface JsonProblem {
  /** The path of the first bad value, such as `data.items[2].price`. */
  readonly path: string
  /** `"NotJson"` for a value JSON cannot hold, `"UnrepresentableText"` for a string Postgres cannot store. */
  readonly kind: "NotJson" | "UnrepresentableText"
  readonly detail: string
}

const identifier = /^[A-Za-z_$][\w$]*$/
const member = (path: string, key: string) =>
  identifier.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`

const describeType = (value: unknown): string => {
  if (typeof value !== "object" || value === null) return `a ${typeof value}`
  const name: unknown = Object.getPrototypeOf(value)?.constructor?.name
  return typeof name === "string" && name !== "" ? `a ${name}` : "an object with a custom prototype"
}

/**
 * Encodes `value` as JSON text if all of it is storable JSON, or finds the first part that is not, walking it depth
 * first. An object property whose value is `undefined` is left out, as `JSON.stringify` does; anywhere else
 * `undefined` is refused. Objects must be plain (a class instance, a `Date` or a `Map` is refused: encode it first),
 * so no `toJSON` runs. **Gotcha:** a getter or proxy that throws is reported as the problem at its path, so encoding
 * never throws.
 */
export const encodeJson = (value: unknown, root: string): Result.Result<string, JsonProblem> => {
  const ancestors = new Set<object>()
  let at = root
  const visit = (value: unknown, path: string, depth: number): JsonProblem | undefined => {
    at = path
    switch (typeof value) {
      case "string": {
        const problem = textProblem(value)
        return problem === undefined ? undefined : { path, kind: "UnrepresentableText", detail: problem }
      }
      case "number":
        return Number.isFinite(value) ? undefined : { path, kind: "NotJson", detail: `${value} is not a JSON number` }
      case "boolean":
        return undefined
      case "object": {
        if (value === null) return undefined
        if (ancestors.has(value)) return { path, kind: "NotJson", detail: "circular: it contains itself" }
        if (depth >= maxJsonDepth) {
          return { path, kind: "NotJson", detail: `nested deeper than ${maxJsonDepth} levels` }
        }
        const isArray = Array.isArray(value)
        if (!isArray) {
          const prototype = Object.getPrototypeOf(value)
          if (prototype !== Object.prototype && prototype !== null) {
            return { path, kind: "NotJson", detail: `${describeType(value)} is not a plain object or array` }
          }
        }
        ancestors.add(value)
        if (isArray) {
          for (let index = 0; index < value.length; index++) {
            const item: unknown = value[index]
            const itemPath = `${path}[${index}]`
            const problem =
              item === undefined
                ? { path: itemPath, kind: "NotJson" as const, detail: "undefined (or a hole) is not JSON" }
                : visit(item, itemPath, depth + 1)
            if (problem !== undefined) return problem
          }
        } else {
          for (const key of Object.keys(value)) {
            const keyProblem = textProblem(key)
            if (keyProblem !== undefined) {
              return { path: member(path, key), kind: "UnrepresentableText", detail: `the key ${keyProblem}` }
            }
            const itemPath = member(path, key)
            at = itemPath
            const item: unknown = (value as Record<string, unknown>)[key]
            if (item === undefined) continue
            const problem = visit(item, itemPath, depth + 1)
            if (problem !== undefined) return problem
          }
        }
        ancestors.delete(value)
        return undefined
      }
      default:
        return { path, kind: "NotJson", detail: `${describeType(value)} is not JSON` }
    }
  }
  // A getter or a proxy may throw while it is read: that is a value no store can hold, not a crash.
  try {
    const problem =
      value === undefined
        ? { path: root, kind: "NotJson" as const, detail: "undefined is not JSON" }
        : visit(value, root, 0)
    return problem === undefined ? Result.succeed(JSON.stringify(value)) : Result.fail(problem)
  } catch (error) {
    const reason = error instanceof Error ? error.message : "a thrown value"
    return Result.fail({ path: at, kind: "NotJson", detail: `reading it threw: ${reason}` })
  }
}
