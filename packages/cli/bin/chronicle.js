#!/usr/bin/env node
// The `chronicle` executable: a thin entry that runs the command (Node 24 strips the TypeScript of the sources).
import { Cli } from "../src/index.ts"

Cli.main()
