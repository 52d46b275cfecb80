/**
 * The vitest global setup: one embedded Postgres per `vitest run`, its URL handed to test files as
 * `inject("databaseUrl")`; each test file then makes its own database (see `PgTest`). `DATABASE_URL` names an
 * existing server instead.
 */

import { EmbeddedPostgres } from "@chronicle/postgres/embedded"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** The URL of the server's maintenance database; test files create their own databases on it. */
    readonly databaseUrl: string
  }
}

/** Starts the server before any test file and stops it after the last. */
export default async function setup(project: TestProject) {
  const external = process.env.DATABASE_URL
  if (external !== undefined && external !== "") {
    project.provide("databaseUrl", external)
    return
  }
  const server = await EmbeddedPostgres.start()
  project.provide("databaseUrl", server.url)
  return () => server.stop()
}
