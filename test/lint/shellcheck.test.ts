// Every shell script in the repository (outside node_modules and build output) passes shellcheck.
// shellcheck comes from Debian (package shellcheck), installed by the test setup when missing;
// where it cannot be installed the test skips and says why.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LINT_TOOLS, ensureTools } from '../setup/system-packages.js';
import { skipReason } from '../support/skip.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SKIP_DIRECTORIES = new Set(['node_modules', '.git', 'dist', '.demo', 'coverage']);

function shellScripts(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return SKIP_DIRECTORIES.has(entry.name) ? [] : shellScripts(path);
    return entry.isFile() && entry.name.endsWith('.sh') ? [path] : [];
  });
}

const missing = ensureTools(LINT_TOOLS, (line) => console.log(line));
const scripts = shellScripts(ROOT).map((path) => relative(ROOT, path)).sort();

describe('shell scripts', () => {
  it('there are some (the walk finds them)', () => {
    expect(scripts).toContain('test/e2e/kind/run.sh');
  });

  describe.skipIf(skipReason('shellcheck of the shell scripts', missing.length > 0 ? missing.join('; ') : undefined, 'the test setup installs Debian\'s shellcheck with apt-get as root'))('shellcheck', () => {
    it.each(scripts)('%s', (script) => {
      const result = spawnSync('shellcheck', ['--external-sources', '--format=gcc', script], { cwd: ROOT, encoding: 'utf8' });
      expect(result.error).toBeUndefined();
      expect(`${result.stdout}${result.stderr}`).toBe('');
      expect(result.status).toBe(0);
    });
  });
});
