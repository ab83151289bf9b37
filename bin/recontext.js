#!/usr/bin/env node
// Launcher: the CLI is compiled to dist/ by `npm run build` (npm ci runs it via `prepare`).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
