/**
 * The app's config module: what the `chronicle` command needs to know about one application. A TypeScript (or
 * JavaScript) module, named with `--config` or found as `chronicle.config.ts` in the working directory, exports any
 * of these (as named exports, or fields of its default export):
 *
 * - `aggregates`: the app's aggregates. `streams show` decodes their streams (upcast through the `EventVersions`
 *   histories their event schemas carry) and prints the state after each event; `events migrate` rewrites the old
 *   versions of their event types.
 * - `projections`: the app's Postgres read models (`PgProjection.ReadModel`), for `projections rebuild | reset` and
 *   `dead-letters retry`. Their handlers may need only the `SqlClient`.
 * - `keyStore`: a layer providing the `KeyStore` on the `SqlClient` (such as `PgKeyStore.layerConfig`), for
 *   `forget`, and to open sealed personal fields in `streams show`, `events migrate` and `ui`.
 * - `renderers`: for `ui`, a text rendering of a category's state (a chess board...), by category.
 *
 * ```ts
 * // chronicle.config.ts
 * export const aggregates = [Cart]
 * export const projections = [CartSummary.model]
 * ```
 *
 * Commands that need none of this (migrate, status, streams list, export...) work without a config module.
 */
import { access } from "node:fs/promises"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import type { Aggregate, KeyStore } from "@chronicle/core"
import type { PgProjection } from "@chronicle/postgres"
import { Effect, Layer, Schema } from "effect"
import type { SqlClient } from "effect/sql"

/** A Postgres read model the command can rebuild, reset and retry dead letters for. */
export type ReadModel = PgProjection.ReadModel<any, any, SqlClient.SqlClient>

/** What a config module exports; every field is optional. */
export interface AppConfig {
  /** The app's aggregates, for decoding streams, states after each event, and the event migration. */
  readonly aggregates?: ReadonlyArray<Aggregate.Any>
  /** The app's Postgres read models. */
  readonly projections?: ReadonlyArray<ReadModel>
  /** The app's key store, built on the `SqlClient`. */
  readonly keyStore?: Layer.Layer<KeyStore.KeyStore, unknown, SqlClient.SqlClient>
  /** Text renderings of states for the stream browser, by category. */
  readonly renderers?: Readonly<Record<string, (state: any) => string>>
}

/** A loaded config module, with the path it came from (none when no module was found or named). */
export interface Loaded extends AppConfig {
  readonly path: string | undefined
}

/** The file names looked for in the working directory when `--config` is not given, in order. */
export const defaultFileNames = ["chronicle.config.ts", "chronicle.config.js", "chronicle.config.mjs"] as const

/** The config module could not be found, loaded, or does not export what the command expects. */
export class ConfigModuleError extends Schema.TaggedError<ConfigModuleError>()("ConfigModuleError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `config ${this.path}: ${this.reason}`
  }
}

/** The command needs a part of the config module that is missing. */
export class ConfigMissing extends Schema.TaggedError<ConfigMissing>()("ConfigMissing", {
  command: Schema.String,
  needs: Schema.String
}) {
  override get message() {
    return `${this.command} needs ${this.needs} from a config module: pass --config FILE or add ${defaultFileNames[0]} (see docs/cli.md)`
  }
}

const exists = (path: string) =>
  Effect.promise(() =>
    access(path).then(
      () => true,
      () => false
    )
  )

const isArrayOf = (value: unknown, check: (item: unknown) => boolean) => Array.isArray(value) && value.every(check)
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

/** Checks the shape of what a module exports, naming the first export that is wrong. */
const validate = (path: string, module: Record<string, unknown>): Effect.Effect<Loaded, ConfigModuleError> => {
  const source = isObject(module.default) ? { ...module.default, ...module } : module
  const fail = (reason: string) => Effect.fail(new ConfigModuleError({ path, reason }))
  const { aggregates, projections, keyStore, renderers } = source
  if (
    aggregates !== undefined &&
    !isArrayOf(aggregates, (a) => isObject(a) && typeof a.category === "string" && isObject(a.events))
  ) {
    return fail("`aggregates` must be an array of aggregates (Aggregate.make)")
  }
  if (
    projections !== undefined &&
    !isArrayOf(
      projections,
      (p) => isObject(p) && typeof p.name === "string" && typeof p.table === "string" && typeof p.handle === "function"
    )
  ) {
    return fail("`projections` must be an array of Postgres read models (PgProjection.make)")
  }
  if (keyStore !== undefined && !Layer.isLayer(keyStore)) return fail("`keyStore` must be a layer providing KeyStore")
  if (
    renderers !== undefined &&
    !(isObject(renderers) && Object.values(renderers).every((render) => typeof render === "function"))
  ) {
    return fail("`renderers` must map categories to functions from a state to text")
  }
  return Effect.succeed({
    path,
    ...(aggregates === undefined ? {} : { aggregates: aggregates as ReadonlyArray<Aggregate.Any> }),
    ...(projections === undefined ? {} : { projections: projections as ReadonlyArray<ReadModel> }),
    ...(keyStore === undefined ? {} : { keyStore: keyStore as AppConfig["keyStore"] & {} }),
    ...(renderers === undefined ? {} : { renderers: renderers as AppConfig["renderers"] & {} })
  })
}

/**
 * Loads the config module at `path` (relative to the working directory), or the first default file name present
 * when `path` is not given; an empty config when there is none.
 */
export const load = (path: string | undefined): Effect.Effect<Loaded, ConfigModuleError> =>
  Effect.gen(function* () {
    let file: string | undefined
    if (path !== undefined) {
      file = resolve(path)
      if (!(yield* exists(file))) return yield* new ConfigModuleError({ path, reason: "no such file" })
    } else {
      for (const name of defaultFileNames) {
        if (yield* exists(resolve(name))) {
          file = resolve(name)
          break
        }
      }
    }
    if (file === undefined) return { path: undefined }
    const shown = path ?? file
    const module = yield* Effect.tryPromise({
      try: () => import(pathToFileURL(file).href) as Promise<Record<string, unknown>>,
      catch: (cause) =>
        new ConfigModuleError({
          path: shown,
          reason: `cannot be loaded: ${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}`
        })
    })
    return yield* validate(shown, module)
  })

/** The aggregate whose streams are in `category`, if the config has one. */
export const aggregateOf = (config: AppConfig, category: string): Aggregate.Any | undefined =>
  config.aggregates?.find((aggregate) => aggregate.category === category)

/** The read model named `name`, if the config has one. */
export const projectionOf = (config: AppConfig, name: string): ReadModel | undefined =>
  config.projections?.find((model) => model.name === name)
