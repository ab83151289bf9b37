// The one way a test skips: a missing prerequisite. Locally, the tests that need it skip, say why
// (once per file), and the run ends with a summary of every skip (test/setup/global.ts). In CI
// (CI=true) nothing may skip: the file fails instead, naming the prerequisite and how to get it.
import { appendFileSync } from 'node:fs';
import { inject } from 'vitest';

const said = new Set<string>();

/**
 * `reason` undefined: the tests can run (returns undefined). Otherwise returns the reason to skip
 * locally, or throws in CI. `what`: which tests; `remedy`: what installs or provides it.
 * Use: describe.skipIf(skipReason('tests needing X', whyNotX(), 'apt-get install x'))(…).
 */
export function skipReason(what: string, reason: string | undefined, remedy: string, options: { log?: string } = {}): string | undefined {
  if (reason === undefined) return undefined;
  const text = `${what}: ${reason} — ${remedy}`;
  if (process.env['CI'] === 'true') throw new Error(`a prerequisite is missing, and in CI (CI=true) nothing may skip: ${text}`);
  if (!said.has(text)) {
    said.add(text);
    console.warn(`SKIPPED: ${text}`);
    const log = options.log ?? inject('skipLog');
    if (log) appendFileSync(log, `${text}\n`);
  }
  return reason;
}
