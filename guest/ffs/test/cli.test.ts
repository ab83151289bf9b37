// recontext-ffs as a separate process: mount, set (through the control socket), status, hooks
// firing on a change, and a clean unmount on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forceUnmount, fuseUnavailable, isMounted, sh } from './fuse.js';
import { tempDir, writeTree } from './layers.js';

const CLI = fileURLToPath(new URL('./run-cli.ts', import.meta.url));
const cli = (args: string): string => `'${process.execPath}' --import tsx '${CLI}' ${args}`;

describe('recontext-ffs command line', () => {
  it('refuses bad usage with exit 2', async () => {
    expect((await sh(cli('mount'))).code).toBe(2);
    expect((await sh(cli('mount /tmp/x --layer nonsense'))).code).toBe(2);
    const unknown = await sh(cli('frobnicate'));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command frobnicate/);
    expect((await sh(cli('status /nonexistent-mount'))).code).toBe(1);
  });
});

describe.skipIf(fuseUnavailable.length > 0)('recontext-ffs mount as a process', () => {
  let base: string;
  let mnt: string;
  let hookLog: string;
  let server: ChildProcess | undefined;
  let logs = '';
  let exited: Promise<number | null>;

  beforeAll(async () => {
    base = await tempDir('cli');
    await chmod(base, 0o755);
    mnt = join(base, 'mnt');
    hookLog = join(base, 'hook.log');
    await mkdir(mnt);
    await writeTree(join(base, 'service'), {
      'etc/glusterfs/cache.conf': 'cache-server = default\n',
      'etc/unrelated.conf': 'u1\n',
      '.recontext/manifest.json': JSON.stringify({ apiVersion: 'recontext.dev/v1alpha1', kind: 'LayerImage', layer: 'service', class: 'service', priority: 100, digest: 'sha256:' + '1'.repeat(64), files: 2 }),
      '.recontext/hooks.json': JSON.stringify({
        hooks: [
          {
            name: 'gluster-reload',
            paths: ['/etc/glusterfs/'],
            run: ['/bin/sh', '-c', `echo "gen=$RECONTEXT_GENERATION paths=$RECONTEXT_CHANGED_PATHS content=$(cat "$RECONTEXT_MOUNTPOINT/etc/glusterfs/cache.conf")" >> ${hookLog}`],
            debounceMs: 100,
          },
        ],
      }),
    });
    await writeTree(join(base, 'site-a'), { 'etc/glusterfs/cache.conf': 'cache-server = cache-a\n' });
    await writeTree(join(base, 'site-b'), { 'etc/glusterfs/cache.conf': 'cache-server = cache-b\n' });
    await writeTree(join(base, 'site-b2'), { 'etc/glusterfs/cache.conf': 'cache-server = cache-b\n', 'etc/unrelated.conf': 'u2\n' });
    server = spawn(process.execPath, ['--import', 'tsx', CLI, 'mount', mnt, '--layer', `service=${base}/service:100`, '--layer', `site=${base}/site-a:300`], { stdio: ['ignore', 'ignore', 'pipe'] });
    exited = new Promise((resolve) => server?.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      server?.stderr?.setEncoding('utf8').on('data', (d: string) => {
        logs += d;
        if (logs.includes('"control socket ready"')) resolve();
      });
      void exited.then((code) => reject(new Error(`recontext-ffs mount exited ${code}: ${logs}`)));
    });
  });

  afterAll(async () => {
    if (server?.exitCode === null) server.kill('SIGKILL');
    if (mnt !== undefined) await forceUnmount(mnt);
    await rm(base, { recursive: true, force: true });
  });

  it('serves the layers, prints the stack, and swaps it with set', async () => {
    expect((await sh(`cat ${mnt}/etc/glusterfs/cache.conf`)).stdout).toBe('cache-server = cache-a\n');
    const status = await sh(cli(`status ${mnt}`));
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/generation 1, last change /);
    expect(status.stdout).toMatch(/^300\s+site\s+-\s+-\s+dir .*site-a/m);
    expect(status.stdout).toMatch(/^100\s+service\s+service\s+sha256:1{12}\s+dir .*service/m);

    const set = await sh(cli(`set ${mnt} --layer service=${base}/service:100 --layer site=${base}/site-b:300`));
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe('generation 2: service:100 site:300\n');
    expect((await sh(`cat ${mnt}/etc/glusterfs/cache.conf`)).stdout).toBe('cache-server = cache-b\n');
  });

  it('runs the hook once for a change under its paths, with the changed paths, and logs its exit status', async () => {
    // The set in the previous test changed /etc/glusterfs/cache.conf: one run.
    await expect.poll(async () => readFile(hookLog, 'utf8').catch(() => ''), { timeout: 10_000 }).toBe('gen=2 paths=/etc/glusterfs/cache.conf content=cache-server = cache-b\n');
    await expect.poll(() => logs, { timeout: 5000 }).toMatch(/"msg":"hook ran","hook":"gluster-reload".*"exitCode":0/);
    // An unrelated change (same cache.conf content, another file changed): no run.
    expect((await sh(cli(`set ${mnt} --layer service=${base}/service:100 --layer site=${base}/site-b2:300`))).code).toBe(0);
    await new Promise((r) => setTimeout(r, 600));
    expect(await readFile(hookLog, 'utf8')).toBe('gen=2 paths=/etc/glusterfs/cache.conf content=cache-server = cache-b\n');
    const status = JSON.parse((await sh(cli(`status ${mnt} --json`))).stdout) as { generation: number; hooks: { inForce: { name: string; runs: number; lastRun?: { exitCode: number } }[] } };
    expect(status.generation).toBe(3);
    expect(status.hooks.inForce).toMatchObject([{ name: 'gluster-reload', runs: 1, lastRun: { exitCode: 0 } }]);
  });

  it('refuses a bad set and keeps the stack', async () => {
    const bad = await sh(cli(`set ${mnt} --layer a=${base}/service:1 --layer a=${base}/site-a:2`));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/twice/);
    expect((await sh(`cat ${mnt}/etc/glusterfs/cache.conf`)).stdout).toBe('cache-server = cache-b\n');
  });

  it('unmounts cleanly on SIGTERM and exits 0', async () => {
    expect(await isMounted(mnt)).toBe(true);
    server?.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
    expect(logs).toMatch(/"msg":"unmounted"/);
  });
});
