// vitest global setup: bring up the real parts the tests talk to, once per run.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ISO_TOOLS, ensureTools } from './system-packages.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Tools the tests need that are missing (with why); tests that need one skip out loud. */
    missingTools: string[];
    /** Where skipReason (test/support/skip.ts) records each skip, for the summary at the end. */
    skipLog: string;
  }
}

export default function setup(project: TestProject): () => void {
  const missing = ensureTools(ISO_TOOLS, (line) => console.log(line));
  for (const reason of missing) console.warn(`test setup: ${reason}; tests that need it will be skipped`);
  project.provide('missingTools', missing);
  const dir = mkdtempSync(join(tmpdir(), 'recontext-skips-'));
  const skipLog = join(dir, 'skips');
  project.provide('skipLog', skipLog);
  return () => {
    let lines: string[] = [];
    try {
      lines = readFileSync(skipLog, 'utf8').split('\n').filter(Boolean);
    } catch {
      // no skip recorded
    }
    rmSync(dir, { recursive: true, force: true });
    const counts = new Map<string, number>();
    for (const line of lines) counts.set(line, (counts.get(line) ?? 0) + 1);
    if (counts.size === 0) return;
    console.warn(`\nSKIPPED in this run (${counts.size} prerequisite${counts.size === 1 ? '' : 's'} missing; in CI each would fail the run):`);
    for (const [line, files] of counts) console.warn(`  - ${line} (${files} file${files === 1 ? '' : 's'})`);
  };
}
