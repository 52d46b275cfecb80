import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["./packages/testing/src/vitestGlobalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})
