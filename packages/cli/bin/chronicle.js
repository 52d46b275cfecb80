#!/usr/bin/env node
// The `chronicle` executable: a thin entry that runs the command. It imports the package by its own name, so the
// package's exports pick the code: the TypeScript sources in the workspace (Node 24 strips their types), dist/ once
// packed (publishConfig.exports replaces exports).
import { Cli } from "@chronicle/cli"

Cli.main()
