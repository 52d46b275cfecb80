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
  // The keys and indexes from the root to the value being read: the path is built from them only for a problem.
  const trail: Array<string | number> = []
  const pathHere = () => {
    let path = root
    for (const step of trail) path = typeof step === "number" ? `${path}[${step}]` : member(path, step)
    return path
  }
  const problem = (kind: JsonProblem["kind"], detail: string): JsonProblem => ({ path: pathHere(), kind, detail })
  const visit = (value: unknown, depth: number): JsonProblem | undefined => {
    switch (typeof value) {
      case "string": {
        const text = textProblem(value)
        return text === undefined ? undefined : problem("UnrepresentableText", text)
      }
      case "number":
        return Number.isFinite(value) ? undefined : problem("NotJson", `${value} is not a JSON number`)
      case "boolean":
        return undefined
      case "object": {
        if (value === null) return undefined
        if (ancestors.has(value)) return problem("NotJson", "circular: it contains itself")
        if (depth >= maxJsonDepth) return problem("NotJson", `nested deeper than ${maxJsonDepth} levels`)
        const isArray = Array.isArray(value)
        if (!isArray) {
          const prototype = Object.getPrototypeOf(value)
          if (prototype !== Object.prototype && prototype !== null) {
            return problem("NotJson", `${describeType(value)} is not a plain object or array`)
          }
        }
        ancestors.add(value)
        if (isArray) {
          for (let index = 0; index < value.length; index++) {
            trail.push(index)
            const item: unknown = value[index]
            const found =
              item === undefined ? problem("NotJson", "undefined (or a hole) is not JSON") : visit(item, depth + 1)
            if (found !== undefined) return found
            trail.pop()
          }
        } else {
          for (const key of Object.keys(value)) {
            trail.push(key)
            const keyProblem = textProblem(key)
            if (keyProblem !== undefined) return problem("UnrepresentableText", `the key ${keyProblem}`)
            const item: unknown = (value as Record<string, unknown>)[key]
            const found = item === undefined ? undefined : visit(item, depth + 1)
            if (found !== undefined) return found
            trail.pop()
          }
        }
        ancestors.delete(value)
        return undefined
      }
      default:
        return problem("NotJson", `${describeType(value)} is not JSON`)
    }
  }
  // A getter or a proxy may throw while it is read: that is a value no store can hold, not a crash.
  try {
    const found = value === undefined ? problem("NotJson", "undefined is not JSON") : visit(value, 0)
    return found === undefined ? Result.succeed(JSON.stringify(value)) : Result.fail(found)
  } catch (error) {
    const reason = error instanceof Error ? error.message : "a thrown value"
    return Result.fail({ path: pathHere(), kind: "NotJson", detail: `reading it threw: ${reason}` })
  }
}
