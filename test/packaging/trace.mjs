// Preloaded with `node --import ./trace.mjs`: records the directory of every copy of `effect` the app loads and
// writes them as JSON to the file named by CHRONICLE_EFFECT_TRACE when the process exits.
import { writeFileSync } from "node:fs"
import { registerHooks } from "node:module"
import { fileURLToPath } from "node:url"

const copies = new Set()
registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context)
    const match = /^(.*\/node_modules\/effect)\//.exec(resolved.url)
    if (match) copies.add(fileURLToPath(match[1]))
    return resolved
  }
})
process.on("exit", () => writeFileSync(process.env.CHRONICLE_EFFECT_TRACE, JSON.stringify([...copies])))
