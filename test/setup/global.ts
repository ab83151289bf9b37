// vitest global setup: bring up the real parts the tests talk to.
import { ISO_TOOLS, ensureTools } from './system-packages.js';

export default function setup(): void {
  const missing = ensureTools(ISO_TOOLS, (line) => console.log(line));
  // Tests read this to skip (out loud) what cannot run on this machine.
  process.env.RECONTEXT_TEST_MISSING_TOOLS = missing.join('\n');
  for (const reason of missing) console.warn(`test setup: ${reason}; tests that need it will be skipped`);
}
