// Typechecks every ```ts block of README.md, docs/*.md and the packages' README.md. Each block is written, as its own module, to a generated
// folder (examples/cart/.doc-blocks, gitignored), so `@chronicle/*` and the cart's `../src/Cart.ts` resolve as they
// do for a user of the examples. Blocks marked ```ts fragment are skipped; a block marked ```ts file=door.ts is
// written under that name, so later blocks can import it. Unused imports are allowed; anything else
// that does not compile fails the run, with the doc and block named in tsc's output file names.
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const out = join(root, "examples/cart/.doc-blocks")
const docs = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
  ...readdirSync(join(root, "packages"))
    .map((p) => `packages/${p}/README.md`)
    .filter((f) => existsSync(join(root, f)))
]

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
const files = []
for (const doc of docs.sort()) {
  const lines = readFileSync(join(root, doc), "utf8").split("\n")
  let block
  let count = 0
  for (const [index, line] of lines.entries()) {
    const fence = line.trim()
    if (block === undefined) {
      const info = fence.match(/^```ts(?: file=(\S+))?$/)
      if (info !== null) block = { start: index + 1, lines: [], indent: line.indexOf("`"), file: info[1] }
      continue
    }
    if (fence === "```") {
      count++
      const name = block.file ?? `${doc.replace(/[/.]/g, "_")}_${count}_line${block.start}.ts`
      writeFileSync(join(out, name), `${block.lines.join("\n")}\nexport {}\n`)
      files.push(name)
      block = undefined
      continue
    }
    block.lines.push(line.slice(Math.min(block.indent, line.length - line.trimStart().length)))
  }
}
const tsconfig = {
  extends: "../../../tsconfig.json",
  compilerOptions: { noUnusedLocals: false, noUnusedParameters: false },
  // The vitest setup declares what `inject` provides, which @chronicle/testing's PgTest reads.
  files: [...files, "../../../packages/testing/src/vitestGlobalSetup.ts"],
  include: []
}
writeFileSync(join(out, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
const tsc = join(root, "node_modules/typescript/bin/tsc")
try {
  execFileSync(process.execPath, [tsc, "--noEmit", "-p", join(out, "tsconfig.json")], { stdio: "inherit" })
} catch {
  console.error(
    `doc blocks: some \`\`\`ts blocks of the docs do not compile (mark a deliberate fragment \`\`\`ts fragment)`
  )
  process.exit(1)
}
console.log(`doc blocks: ${files.length} blocks of ${docs.length} docs compile`)
