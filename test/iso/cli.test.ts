// `recontext iso build`, run through the real CLI entry point (main), in-process.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';

let work: string;
let tree: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'iso-cli-'));
  tree = join(work, 'tree');
  mkdirSync(join(tree, 'etc', 'app'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'app', 'config.yaml'), 'cache: eu-1.example\n');
  writeFileSync(join(tree, 'Readme.TXT'), 'hello\n', { mode: 0o600 });
  symlinkSync('app/config.yaml', join(tree, 'etc', 'current'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  });
  const previous = process.exitCode;
  try {
    const code = await main(['node', 'recontext', ...args]);
    return { code, stdout, stderr };
  } finally {
    vi.restoreAllMocks();
    process.exitCode = previous;
  }
}

describe('recontext iso build', () => {
  it('writes the image and prints its sha256; rebuilding gives the same bytes', async () => {
    const first = await runCli(['iso', 'build', tree, '-o', join(work, 'a.iso'), '--label', 'site-eu1']);
    expect(first.code, first.stderr).toBe(0);
    const digest = createHash('sha256').update(readFileSync(join(work, 'a.iso'))).digest('hex');
    expect(first.stdout).toBe(`${digest}\n`);
    const second = await runCli(['iso', 'build', tree, '-o', join(work, 'b.iso'), '--label', 'site-eu1']);
    expect(second.stdout).toBe(first.stdout);
    expect(readdirSync(work).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('honours --volume-id, --timestamp and SOURCE_DATE_EPOCH', async () => {
    const a = await runCli(['iso', 'build', tree, '-o', join(work, 'c.iso'), '--volume-id', 'CTX_1', '--timestamp', '2024-05-06T07:08:09Z']);
    expect(a.code, a.stderr).toBe(0);
    const pvd = readFileSync(join(work, 'c.iso')).subarray(16 * 2048, 17 * 2048);
    expect(pvd.subarray(40, 45).toString('latin1')).toBe('CTX_1');
    expect(pvd.subarray(813, 827).toString('latin1')).toBe('20240506070809');
    vi.stubEnv('SOURCE_DATE_EPOCH', String(Date.UTC(2024, 4, 6, 7, 8, 9) / 1000));
    try {
      const b = await runCli(['iso', 'build', tree, '-o', join(work, 'd.iso'), '--volume-id', 'CTX_1']);
      expect(b.stdout).toBe(a.stdout);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('fails with exit code 1 and names the entry it cannot store', async () => {
    const bad = join(work, 'bad');
    mkdirSync(join(bad, 'run'), { recursive: true });
    execFileSync('mkfifo', [join(bad, 'run', 'pipe')]);
    const result = await runCli(['iso', 'build', bad, '-o', join(work, 'bad.iso')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/run\/pipe: not a regular file, directory or symlink/);
  });

  it('rejects an invalid volume id and a bad timestamp', async () => {
    expect((await runCli(['iso', 'build', tree, '-o', join(work, 'e.iso'), '--volume-id', 'lower'])).stderr).toMatch(/volume id "lower"/);
    expect((await runCli(['iso', 'build', tree, '-o', join(work, 'e.iso'), '--timestamp', 'yesterday'])).code).toBe(2);
  });

  it('explains itself in --help', async () => {
    const help = await runCli(['iso', 'build', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--volume-id <id>/);
    expect(help.stdout).toMatch(/SOURCE_DATE_EPOCH/);
    expect(help.stdout).toMatch(/Examples:/);
  });
});

describe('recontext iso build input checks', () => {
  it('refuses file names that are not UTF-8, naming them', async () => {
    const bad = join(work, 'latin1');
    mkdirSync(bad, { recursive: true });
    // 0xE9 alone is "é" in Latin-1 and invalid UTF-8.
    writeFileSync(Buffer.concat([Buffer.from(`${bad}/caf`), Buffer.from([0xe9])]), 'x');
    const result = await runCli(['iso', 'build', bad, '-o', join(work, 'latin1.iso')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/not valid UTF-8 \(bytes 636166e9\)/);
  });
});
