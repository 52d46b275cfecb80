/** Error causes as text for messages: drivers wrap the server's words several levels deep. */

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
