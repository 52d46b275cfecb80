/**
 * How the `chronicle` command fails: the errors of its own (an unknown stream or projection, a database that cannot
 * be reached, a bad value), the exit code of each failure (2 for bad usage, 1 for everything else; an interrupted
 * job exits 130), and the one line a person reads for it. A stack trace is printed only with `--verbose`.
 */
import { Cause, Config, Schema } from "effect"
import { CliError } from "effect/cli"
import { SqlError } from "effect/sql"

/** The command line asks for something it cannot mean (a bad value, a missing flag, no confirmation possible). */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { reason: Schema.String }) {
  override get message() {
    return this.reason
  }
}

/** The stream has no events. */
export class UnknownStream extends Schema.TaggedError<UnknownStream>()("UnknownStream", { stream: Schema.String }) {
  override get message() {
    return `unknown stream ${this.stream}: it has no events`
  }
}

/** No projection of that name has a checkpoint, dead letters or an entry in the config module. */
export class UnknownProjection extends Schema.TaggedError<UnknownProjection>()("UnknownProjection", {
  projection: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message() {
    const known = this.known.length === 0 ? "none is known" : `known: ${this.known.join(", ")}`
    return `unknown projection ${this.projection} (${known})`
  }
}

/** The projection has no dead letter at that position. */
export class NoSuchDeadLetter extends Schema.TaggedError<NoSuchDeadLetter>()("NoSuchDeadLetter", {
  projection: Schema.String,
  position: Schema.BigInt
}) {
  override get message() {
    return `${this.projection} has no dead letter at position ${this.position}`
  }
}

/** Some parked events still failed when retried; they stay parked. */
export class RetryFailed extends Schema.TaggedError<RetryFailed>()("RetryFailed", {
  projection: Schema.String,
  failed: Schema.Int
}) {
  override get message() {
    return `${this.failed} dead letter(s) of ${this.projection} still fail and stay parked`
  }
}

/** Chronicle's tables do not exist in this database yet. */
export class NotMigrated extends Schema.TaggedError<NotMigrated>()("NotMigrated", {}) {
  override get message() {
    return "Chronicle's tables do not exist in this database: run `chronicle migrate` first"
  }
}

/** The person asked did not confirm, so nothing was done. */
export class NotConfirmed extends Schema.TaggedError<NotConfirmed>()("NotConfirmed", { action: Schema.String }) {
  override get message() {
    return `not confirmed: ${this.action} was not done`
  }
}

/** The exit code for a failure: 2 for bad usage, 1 otherwise. */
export const exitCode = (error: unknown): number =>
  error instanceof UsageError || (CliError.isCliError(error) && error._tag === "ShowHelp") ? 2 : 1

const sqlErrorIn = (error: unknown, depth = 0): SqlError.SqlError | undefined => {
  if (depth > 5 || typeof error !== "object" || error === null) return undefined
  if (SqlError.isSqlError(error)) return error
  return sqlErrorIn((error as { readonly cause?: unknown }).cause, depth + 1)
}

const serverMessage = (error: SqlError.SqlError): string => {
  const cause: unknown = error.reason.cause
  const text = cause instanceof Error ? cause.message : typeof cause === "string" ? cause : error.message
  return text.split("\n")[0] ?? text
}

/** The one line a person reads for a failure. */
export const describe = (error: unknown, databaseHost?: string): string => {
  const sql = sqlErrorIn(error)
  const at = databaseHost === undefined ? "" : ` at ${databaseHost}`
  if (sql !== undefined) {
    switch (sql.reason._tag) {
      case "ConnectionError":
        return `cannot reach the database${at}: ${serverMessage(sql)}`
      case "AuthenticationError":
        return `the database${at} refused the login: ${serverMessage(sql)}`
      case "AuthorizationError":
        return `the database${at} refused an operation: ${serverMessage(sql)}`
    }
    // A login the server turned down for another reason (such as a database that does not exist).
    if (sql.message.endsWith("Failed to connect")) return `cannot reach the database${at}: ${serverMessage(sql)}`
  }
  if (error instanceof Config.ConfigError) {
    const text = String((error.cause as { readonly message?: unknown }).message ?? error.cause)
    const setting = /at \["([^"]+)"\]/.exec(text)?.[1]
    return setting === undefined
      ? `a setting is missing or invalid: ${text.split("\n")[0]}`
      : `the setting ${setting} is missing or invalid`
  }
  if (CliError.isCliError(error) && error._tag === "ShowHelp") {
    return error.errors.map((e) => e.message).join("; ")
  }
  if (error instanceof Error) return error.message.split("\n")[0] ?? error.message
  return String(error)
}

/** The details printed with `--verbose`: the whole cause, with stack traces. */
export const details = (cause: Cause.Cause<unknown>): string => Cause.pretty(cause)
