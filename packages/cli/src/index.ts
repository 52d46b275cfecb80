export * as Export from "./Export.ts"
