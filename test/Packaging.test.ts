/**
 * The packages as an app outside this repository gets them. Builds every publishable package, packs it with pnpm,
 * installs the tarballs with npm into a scratch app in a temporary directory (with the README's install line), then
 * typechecks the app (strict) against the published declarations alone and runs it with plain Node — the oldest
 * version the README claims, and the repo's Node 24: the README's minimal app on the zero-set-up Postgres, and an
 * in-memory app with a projection (test/packaging/), and the installed `chronicle --help` (through its `bin` link and
 * shebang, with that Node first on the PATH). Each app run must load exactly one copy of `effect`, the app's own.
 * The typecheck covers each package README's example too.
 * The app's tsconfig is strict but leaves out `exactOptionalPropertyTypes` (the NATS client's declarations fail it) and
 * adds the DOM lib (Effect's declarations name Web Crypto types that @types/node lacks); `skipLibCheck` is off, so
 * every published declaration file is checked. The runs and the typecheck go in parallel; the Node binaries and npm's
 * cache persist between runs (`node_modules/.cache/packaging`, `~/.npm`). `pnpm test` runs this file on its own, after
 * the others.
 */
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = resolve(import.meta.dirname, "..")
const fixtures = join(root, "test/packaging")
const cache = join(root, "node_modules/.cache/packaging")

interface Output {
  readonly stdout: string
  readonly stderr: string
}

/** Runs a program to completion; a non-zero exit fails with its output. */
const run = (file: string, args: ReadonlyArray<string>, options: { cwd: string; env?: NodeJS.ProcessEnv }) =>
  new Promise<Output>((resolvePromise, reject) =>
    execFile(
      file,
      args,
      { cwd: options.cwd, env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        error === null
          ? resolvePromise({ stdout, stderr })
          : reject(new Error(`${file} ${args.join(" ")} failed:\n${stdout}\n${stderr}`, { cause: error }))
    )
  )

/** The README's "Use it in your app" section: its install line, its app and the oldest Node it claims. */
const readmeApp = async () => {
  const readme = await readFile(join(root, "README.md"), "utf8")
  const start = readme.indexOf("## Use it in your app")
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1))
  const install = /```sh\n(npm install [^\n]+)\n```/.exec(section)?.[1]
  const app = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
  const oldestNode = /Node\.js (\d+\.\d+) or newer/.exec(section)?.[1]
  if (install === undefined || app === undefined || oldestNode === undefined)
    throw new Error("README.md's 'Use it in your app' section lacks its install line, its app or its Node version")
  return { install: install.split(/\s+/).slice(2), app, oldestNode: `${oldestNode}.0` }
}

/** A plain Node binary of `version` from the `node` npm package, installed once into the cache. */
const nodeBinary = async (version: string) => {
  const prefix = join(cache, `node-${version}`)
  const binary = join(prefix, "node_modules/node/bin/node")
  if (!existsSync(binary)) await run("npm", npmFlags(["install", "--prefix", prefix, `node@${version}`]), { cwd: root })
  return binary
}

const npmFlags = (args: ReadonlyArray<string>) => [...args, "--no-audit", "--no-fund"]

/** The environment of a run: no DATABASE_URL (the app starts its own Postgres) and nothing of pnpm's or vitest's. */
const plainEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env))
    if (!/^(DATABASE_URL|NODE_PATH|NODE_OPTIONS|VITEST.*|npm_.*|PNPM.*)$/i.test(key)) env[key] = value
  return { ...env, ...extra }
}

describe.concurrent("the published packages in an app of their own", () => {
  let app = ""
  let readme: Awaited<ReturnType<typeof readmeApp>>

  beforeAll(async () => {
    readme = await readmeApp()
    await run(join(root, "node_modules/.bin/tsc"), ["-b", "tsconfig.build.json"], { cwd: root })
    const work = await mkdtemp(join(tmpdir(), "chronicle-packaging-"))
    app = join(work, "app")
    const tarballs = join(work, "tarballs")
    await mkdir(app)
    const manager = JSON.parse(await readFile(join(root, "package.json"), "utf8")).packageManager as string
    await run("npx", ["-y", manager, "-r", "--filter", "./packages/*", "pack", "--pack-destination", tarballs], {
      cwd: root
    })
    const packed = new Map<string, string>()
    for (const file of await readdir(tarballs)) {
      const name = /^chronicle-(.+)-\d+\.\d+\.\d+.*\.tgz$/.exec(file)?.[1]
      // pnpm packs private packages too; an app only ever gets the published ones.
      const manifest =
        name === undefined ? {} : JSON.parse(await readFile(join(root, "packages", name, "package.json"), "utf8"))
      if (name !== undefined && manifest.private !== true) packed.set(`@chronicle/${name}`, join(tarballs, file))
    }
    // The README's install line, with each @chronicle package taken from its tarball, then the other tarballs.
    const fromReadme = readme.install.map((name) => packed.get(name) ?? name)
    const others = [...packed].filter(([name]) => !readme.install.includes(name)).map(([, file]) => file)
    const typesNode = JSON.parse(await readFile(join(root, "package.json"), "utf8")).devDependencies["@types/node"]
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "scratch-app", private: true, type: "module" }))
    await Promise.all([
      run("npm", npmFlags(["install", ...fromReadme, ...others, `@types/node@${typesNode}`]), { cwd: app }),
      nodeBinary(readme.oldestNode)
    ])
    await writeFile(join(app, "main.ts"), readme.app)
    for (const name of packed.keys()) {
      const dir = name.replace("@chronicle/", "")
      const text = await readFile(join(root, "packages", dir, "README.md"), "utf8")
      const example = /```ts\n([\s\S]*?)```/.exec(text)?.[1]
      if (example === undefined) throw new Error(`packages/${dir}/README.md has no TypeScript example`)
      await writeFile(join(app, `readme-${dir}.ts`), example)
    }
    for (const file of ["memory.ts", "trace.mjs", "tsconfig.json"])
      await copyFile(join(fixtures, file), join(app, file))
  }, 600_000)

  afterAll(async () => {
    if (app !== "") await rm(dirname(app), { recursive: true, force: true })
  })

  it("packs every publishable package", async () => {
    const publishable: Array<string> = []
    for (const dir of await readdir(join(root, "packages"))) {
      const manifest = JSON.parse(await readFile(join(root, "packages", dir, "package.json"), "utf8"))
      if (manifest.private !== true) publishable.push(manifest.name)
    }
    const installed = await readdir(join(app, "node_modules/@chronicle"))
    expect(installed.map((name) => `@chronicle/${name}`).sort()).toEqual(publishable.sort())
  }, 300_000)

  it("loads every entry point of every package with plain Node", async () => {
    const entries: Array<string> = []
    for (const name of await readdir(join(app, "node_modules/@chronicle"))) {
      const manifest = JSON.parse(await readFile(join(app, "node_modules/@chronicle", name, "package.json"), "utf8"))
      for (const [subpath, target] of Object.entries(manifest.exports ?? {}))
        if (target !== null && !subpath.includes("*") && subpath !== "./package.json")
          entries.push(`@chronicle/${name}${subpath.slice(1)}`)
    }
    const script = `for (const entry of ${JSON.stringify(entries)}) await import(entry)`
    await run(join(root, "node_modules/node/bin/node"), ["--input-type=module", "-e", script], {
      cwd: app,
      env: plainEnv({})
    })
    expect(entries).toContain("@chronicle/postgres/embedded")
  }, 300_000)

  it("typechecks the app and each package README's example (strict) against the published declarations", async () => {
    const { stdout } = await run(join(root, "node_modules/.bin/tsc"), ["-p", "tsconfig.json", "--listFiles"], {
      cwd: app
    })
    const chronicle = stdout.split("\n").filter((file) => file.includes("/node_modules/@chronicle/"))
    expect(chronicle.filter((file) => !/\/node_modules\/@chronicle\/[^/]+\/dist\/.*\.d\.ts$/.test(file))).toEqual([])
    for (const entry of [
      "core/dist/index.d.ts",
      "postgres/dist/embedded.d.ts",
      "nats/dist/index.d.ts",
      "cli/dist/index.d.ts"
    ])
      expect(chronicle.some((file) => file.endsWith(`/@chronicle/${entry}`))).toBe(true)
  }, 300_000)

  const runApp = async (node: string, file: string) => {
    const trace = join(app, `effect-${file}-${Math.random().toString(36).slice(2)}.json`)
    const { stdout } = await run(node, ["--import", "./trace.mjs", file], {
      cwd: app,
      env: plainEnv({ CHRONICLE_EFFECT_TRACE: trace })
    })
    const copies = JSON.parse(await readFile(trace, "utf8"))
    return { stdout, copies }
  }

  const nodes = [
    { label: "the oldest Node the README claims", binary: () => nodeBinary(readme.oldestNode) },
    { label: "Node 24", binary: async () => join(root, "node_modules/node/bin/node") }
  ]

  for (const { label, binary } of nodes) {
    it(`runs the README's app on the zero-set-up Postgres with ${label}`, async () => {
      const node = await binary()
      const { stdout: version } = await run(node, ["--version"], { cwd: app })
      expect(version.trim()).toMatch(label === "Node 24" ? /^v24\./ : new RegExp(`^v${readme.oldestNode}$`))
      const { stdout, copies } = await runApp(node, "main.ts")
      expect(stdout).toContain("Starting an embedded Postgres 18")
      expect(stdout).toContain("account-42: version 2, balance 15")
      expect(stdout).toMatch(/v1 Deposited\n\s+v2 Deposited/)
      expect(copies).toEqual([join(app, "node_modules/effect")])
    }, 300_000)

    it(`runs the installed chronicle command with ${label}`, async () => {
      const node = await binary()
      const env = plainEnv({ PATH: `${dirname(node)}:${process.env.PATH ?? ""}` })
      const { stdout } = await run(join(app, "node_modules/.bin/chronicle"), ["--help"], { cwd: app, env })
      expect(stdout).toContain("chronicle <subcommand>")
    }, 300_000)

    it(`runs the in-memory store and a projection with ${label}`, async () => {
      const { stdout, copies } = await runApp(await binary(), "memory.ts")
      expect(stdout).toContain("memory: account-2 at version 1, balance 7")
      expect(stdout).toContain('totals [["account-1",10],["account-2",7]]')
      expect(copies).toEqual([join(app, "node_modules/effect")])
    }, 300_000)
  }
})
