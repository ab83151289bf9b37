// docs/getting-started.md, section 2, copy-pasted: every sh block between the "offline" markers
// runs in order in one empty directory, `npx recontext` being the CLI from source, and prints
// exactly the text block that follows it in the doc. A block with "# exits 1" must exit 1.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');
const DOC = readFileSync(join(REPO, 'docs', 'getting-started.md'), 'utf8');

interface Step {
  readonly script: string;
  readonly expected?: string;
}

/** The sh blocks of the offline section, each with the text block right after it (if any). */
function offlineSteps(markdown: string): Step[] {
  const section = markdown.split('<!-- offline: begin')[1]?.split('<!-- offline: end -->')[0];
  if (section === undefined) throw new Error('docs/getting-started.md has no offline markers');
  const blocks = [...section.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, body: m[2]! }));
  const steps: Step[] = [];
  blocks.forEach((block, i) => {
    if (block.lang !== 'sh') return;
    const next = blocks[i + 1];
    steps.push({ script: block.body, ...(next?.lang === 'text' ? { expected: next.body } : {}) });
  });
  return steps;
}

describe('docs/getting-started.md, offline part, as a new user types it', () => {
  const steps = offlineSteps(DOC);

  it('has the steps the test runs', () => {
    expect(steps.length).toBeGreaterThanOrEqual(4);
    expect(steps.every((s) => s.expected !== undefined)).toBe(true);
  });

  it('every command prints what the doc shows, with the exit status it says', () => {
    const dir = mkdtempSync(join(tmpdir(), 'getting-started-'));
    const tsx = join(REPO, 'node_modules', '.bin', 'tsx');
    const cli = join(REPO, 'test', 'support', 'run-cli.ts');
    for (const step of steps) {
      // `npx recontext` in the doc is the installed CLI; here the same CLI from source.
      const script = `set -u\nnpx() { if [ "$1" = recontext ]; then shift; "${tsx}" "${cli}" "$@"; else command npx "$@"; fi; }\n${step.script}`;
      const result = spawnSync('bash', ['-c', script], { cwd: dir, encoding: 'utf8' });
      const expectedCode = /# exits 1/.test(step.script) ? 1 : 0;
      expect(result.stderr, step.script).toBe('');
      expect(result.status, step.script).toBe(expectedCode);
      expect(result.stdout, step.script).toBe(step.expected);
    }
  }, 120_000);
});
