/**
 * A real NATS server with JetStream for tests and the bench: `start` runs the `nats-server` binary (Debian package
 * `nats-server`) with `-js` on a free port and a throw-away store directory. `pause` and `resume` stop it and start it
 * again on the same port and store, to simulate a broker outage; `stop` ends it and deletes the store. When the binary
 * is missing, `skip()` tells a test file to skip with a warning naming the install command, except under `CI=true`,
 * where the tests run and fail because CI installs it.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, type Scope } from "effect"

/** The command that installs the server on Debian and Ubuntu. */
export const installCommand = "apt-get install -y nats-server"

/** Whether a `nats-server` binary is on the `PATH`. */
export const isInstalled = (): boolean => spawnSync("nats-server", ["--version"]).status === 0

/**
 * Whether tests that need a NATS server should be skipped: only when the binary is missing outside CI, with a warning
 * saying why. Use it as `describe.skipIf(NatsServer.skip())`.
 */
export const skip = (): boolean => {
  if (isInstalled() || process.env.CI === "true") return false
  console.warn(`nats-server is not installed: skipping the NATS tests (install it with \`${installCommand}\`)`)
  return true
}

/** A running NATS server. */
export interface Server {
  /** The client URL, `nats://127.0.0.1:<port>`. */
  readonly url: string
  /** Stops the server and keeps its port and JetStream store, as in an outage. */
  readonly pause: () => Promise<void>
  /** Starts a paused server again on the same port and store. */
  readonly resume: () => Promise<void>
  /** Stops the server and deletes its store. */
  readonly stop: () => Promise<void>
}

const readyTimeoutMs = 20_000

/** Runs `nats-server` until it logs that it is ready; resolves with the process and the port it listens on. */
const launch = (storeDir: string, port: number) =>
  new Promise<{ readonly process: ChildProcess; readonly port: number }>((resolve, reject) => {
    const child = spawn("nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
      stdio: ["ignore", "ignore", "pipe"]
    })
    let log = ""
    const fail = (reason: string) => {
      clearTimeout(timer)
      child.kill("SIGKILL")
      const hint = isInstalled() ? "" : ` (nats-server is not installed: ${installCommand})`
      reject(new Error(`nats-server did not start: ${reason}${hint}\n${log}`))
    }
    const timer = setTimeout(() => fail(`not ready after ${readyTimeoutMs} ms`), readyTimeoutMs)
    child.once("error", (error) => fail(error.message))
    child.once("exit", (code) => fail(`exited with code ${code}`))
    child.stderr?.on("data", (chunk: Buffer) => {
      log += chunk.toString()
      const listening = /Listening for client connections on [^\s]+:(\d+)/.exec(log)
      if (listening !== null && log.includes("Server is ready")) {
        clearTimeout(timer)
        child.removeAllListeners("exit")
        child.stderr?.removeAllListeners("data")
        child.stderr?.resume()
        resolve({ process: child, port: Number(listening[1]) })
      }
    })
  })

const terminate = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
  })

/** Starts a fresh server with JetStream on a port the system picks, with an empty store. */
export const start = async (): Promise<Server> => {
  const storeDir = await mkdtemp(join(tmpdir(), "chronicle-nats-"))
  let current = await launch(storeDir, -1)
  const { port } = current
  return {
    url: `nats://127.0.0.1:${port}`,
    pause: () => terminate(current.process),
    resume: async () => {
      current = await launch(storeDir, port)
    },
    stop: async () => {
      await terminate(current.process)
      await rm(storeDir, { recursive: true, force: true })
    }
  }
}

/** A server that lives as long as the scope: started now, stopped and deleted when the scope closes. */
export const scoped: Effect.Effect<Server, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(start),
  (server) => Effect.promise(server.stop)
)
