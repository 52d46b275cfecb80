/**
 * Error causes, read for messages and for whether a retry may help: drivers wrap the server's words several levels
 * deep.
 */

/**
 * The message of the innermost error in a chain of causes (following `cause`, then `reason`, five levels at most);
 * never throws, whatever the cause is (a string, an object without a prototype, nothing).
 */
export const describeCause = (cause: unknown): string => {
  let message = typeof cause === "string" ? cause : "unknown cause"
  for (let current = cause, depth = 0; typeof current === "object" && current !== null && depth < 5; depth++) {
    if ("message" in current && typeof current.message === "string" && current.message !== "") message = current.message
    current = "cause" in current ? current.cause : "reason" in current ? current.reason : undefined
  }
  return message
}

/**
 * SQLSTATE classes that no retry can fix: data exceptions (22), integrity (23), authorization (28), catalog and
 * schema names (3D, 3F), syntax and access rules (42), unsupported features (0A).
 */
const permanentClasses = new Set(["0A", "22", "23", "28", "3D", "3F", "42"])

/**
 * Whether retrying the failed operation may succeed: not when a server's SQLSTATE in the chain of causes is of a
 * permanent class, or a cause says it is not retryable (`retryable: false`, as `EventDecodeError`); otherwise yes (a connection lost, a server shutting down or
 * starting, a deadlock, a timeout, no code at all). Never throws.
 */
export const retryMayHelp = (cause: unknown): boolean => {
  for (let current = cause, depth = 0; typeof current === "object" && current !== null && depth < 5; depth++) {
    if ("retryable" in current && current.retryable === false) return false
    if ("code" in current && typeof current.code === "string" && /^[0-9A-Z]{5}$/.test(current.code)) {
      return !permanentClasses.has(current.code.slice(0, 2))
    }
    current = "cause" in current ? current.cause : "reason" in current ? current.reason : undefined
  }
  return true
}
