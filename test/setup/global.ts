// vitest global setup: bring up the real parts the tests talk to, once per run.
import type { TestProject } from 'vitest/node';
import { ISO_TOOLS, ensureTools } from './system-packages.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Tools the tests need that are missing (with why); tests that need one skip out loud. */
    missingTools: string[];
  }
}

export default function setup(project: TestProject): void {
  const missing = ensureTools(ISO_TOOLS, (line) => console.log(line));
  for (const reason of missing) console.warn(`test setup: ${reason}; tests that need it will be skipped`);
  project.provide('missingTools', missing);
}
