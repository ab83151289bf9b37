#!/usr/bin/env node
// Launcher: the FFS is compiled to ../dist by `npm run build -w @recontext/ffs` (npm ci runs it via `prepare`).
import { main } from '../dist/cli.js';

process.exitCode = await main(process.argv.slice(2));
