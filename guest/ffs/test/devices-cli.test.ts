// recontext-ffs mount --devices as a process, on a real FUSE mount, with a scripted stand-in for
// ffs-devd (CD-ROM drives exist only in the test guest, where the real helper runs): an image in
// a drive becomes a layer by its manifest, a newer image of the layer takes over when the host
// swaps it in (the hook sees the new content), and the old drive is released when asked for.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forceUnmount, fuseUnavailable, sh } from './fuse.js';
import { tempDir, writeTree } from './layers.js';

const CLI = fileURLToPath(new URL('./run-cli.ts', import.meta.url));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(fuseUnavailable.length > 0)('recontext-ffs mount --devices', () => {
  let base: string;
  let mnt: string;
  let server: ChildProcess | undefined;
  let logs = '';

  const manifest = (digest: string) => JSON.stringify({ apiVersion: 'recontext.dev/v1alpha1', kind: 'LayerImage', layer: 'site-cache', class: 'infrastructure', priority: 300, digest, files: 1 });

  beforeAll(async () => {
    base = await tempDir('devices');
    await chmod(base, 0o755);
    mnt = join(base, 'mnt');
    await mkdir(mnt);
    const hookLog = join(base, 'hook.log');
    await writeTree(join(base, 'service'), {
      'etc/glusterfs/cache.conf': 'cache-server = default\n',
      '.recontext/hooks.json': JSON.stringify({ hooks: [{ name: 'reload', paths: ['/etc/glusterfs/'], run: ['/bin/sh', '-c', `cat "$RECONTEXT_MOUNTPOINT/etc/glusterfs/cache.conf" >> ${hookLog}`], debounceMs: 50 }] }),
    });
    await writeTree(join(base, 'media', 'sr0.1'), { 'etc/glusterfs/cache.conf': 'cache-server = cache-a\n', '.recontext/manifest.json': manifest(`sha256:${'a'.repeat(64)}`) });
    await writeTree(join(base, 'media', 'sr1.1'), { 'etc/glusterfs/cache.conf': 'cache-server = cache-b\n', '.recontext/manifest.json': manifest(`sha256:${'b'.repeat(64)}`) });
    // The stand-in: reports sr0's image at start; when `go` appears, the host's swap: a new image
    // in sr1, then the eject request for sr0. It records the commands FFS sends back.
    await writeFile(
      join(base, 'helper.mjs'),
      `import { appendFileSync, existsSync } from 'node:fs';
       import { createInterface } from 'node:readline';
       const base = ${JSON.stringify(base)};
       const say = (l) => process.stdout.write(l + '\\n');
       say('MOUNTED sr0 1 ' + base + '/media/sr0.1'); say('READY');
       const timer = setInterval(() => { if (existsSync(base + '/go')) { clearInterval(timer); say('MOUNTED sr1 1 ' + base + '/media/sr1.1'); say('EJECT-REQUEST sr0'); } }, 20);
       createInterface({ input: process.stdin })
         .on('line', (l) => { appendFileSync(base + '/commands.log', l + '\\n'); say('UNMOUNTED sr0 1'); say('EJECTED sr0 ok'); })
         .on('close', () => process.exit(0));`,
    );
    await writeFile(join(base, 'ffs-devd'), `#!/bin/sh\nexec '${process.execPath}' '${join(base, 'helper.mjs')}' "$@"\n`, { mode: 0o755 });
    server = spawn(process.execPath, ['--import', 'tsx', CLI, 'mount', mnt, '--layer', `service=${base}/service:100`, '--devices', join(base, 'ffs-devd'), '--media-dir', join(base, 'media')], { stdio: ['ignore', 'ignore', 'pipe'] });
    server.stderr?.setEncoding('utf8').on('data', (d: string) => (logs += d));
    await until('watching context devices', async () => (logs.includes('"msg":"watching context devices"') ? true : undefined), 20_000);
  });

  afterAll(async () => {
    server?.kill('SIGTERM');
    await new Promise((r) => server?.once('exit', r));
    await forceUnmount(mnt);
  });

  it('serves the image in a drive as its layer, over the directory layers', async () => {
    expect((await sh(`cat '${mnt}/etc/glusterfs/cache.conf'`)).stdout).toBe('cache-server = cache-a\n');
    const status = JSON.parse((await sh(`cat '${mnt}/.recontext/status.json'`)).stdout) as { layers: { name: string; source: { kind: string; device?: string } }[] };
    expect(status.layers.map((l) => `${l.name}:${l.source.kind}:${l.source.device ?? ''}`)).toEqual(['site-cache:device:/dev/sr0', 'service:dir:']);
  });

  it('follows the host swapping the image: new content, the hook told, the old drive released', async () => {
    await writeFile(join(base, 'go'), '');
    await until('the new cache address', async () => ((await sh(`cat '${mnt}/etc/glusterfs/cache.conf'`)).stdout.includes('cache-b') ? true : undefined));
    await until('the hook', async () => ((await readFile(join(base, 'hook.log'), 'utf8').catch(() => '')).includes('cache-server = cache-b') ? true : undefined));
    await until('the release of sr0', async () => ((await readFile(join(base, 'commands.log'), 'utf8').catch(() => '')) === 'RELEASE sr0\n' ? true : undefined));
    expect(logs).toContain('"msg":"released a drive the host asked for"');
  });
});
