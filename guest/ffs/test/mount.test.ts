// The union mounted through FUSE in this (vitest worker) process, read by child processes.
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountUnion, type Mounted } from '../src/fuse.js';
import type { Layer } from '../src/layer.js';
import { Union } from '../src/union.js';
import { forceUnmount, fuseUnavailable, isMounted, nodeScript, sh } from './fuse.js';
import { dirLayer, tempDir, writeTree } from './layers.js';

const V1_SIZE = 256 * 1024;
const V2_SIZE = 192 * 1024;

describe.skipIf(fuseUnavailable.length > 0)('FFS mounted through FUSE', () => {
  let base: string;
  let mnt: string;
  let union: Union;
  let mounted: Mounted | undefined;
  let service: Layer;
  let siteA: Layer;
  let siteB: Layer;
  let dataV1: Layer;
  let dataV2: Layer;

  beforeAll(async () => {
    base = await tempDir('mount');
    await chmod(base, 0o755); // other users must reach the mountpoint
    mnt = join(base, 'mnt');
    await mkdir(mnt);
    service = dirLayer(
      'service',
      await writeTree(join(base, 'service'), {
        'etc/glusterfs/client.vol': 'volume client\n',
        'etc/glusterfs/cache.conf': 'cache-server = default.example.net\n',
        'etc/secret.key': { content: 'only root\n', mode: 0o600 },
        'etc/group-readable': { content: 'g\n', mode: 0o640 },
        'usr/bin/hello': { content: '#!/bin/sh\necho hello from the union\n', mode: 0o755 },
        'etc/cache-link': { symlink: 'glusterfs/cache.conf' },
        'etc/private': { dir: 0o700 },
      }),
      100,
    );
    siteA = dirLayer('site-cache', await writeTree(join(base, 'site-a'), { 'etc/glusterfs/cache.conf': 'cache-server = cache-a.zone-a.example.net\n', 'etc/site-a-only': 'a\n' }), 300);
    siteB = dirLayer('site-cache', await writeTree(join(base, 'site-b'), { 'etc/glusterfs/cache.conf': 'cache-server = cache-b.zone-b.example.net\n' }), 300);
    dataV1 = dirLayer('data', await writeTree(join(base, 'data-v1'), { 'data.bin': Buffer.alloc(V1_SIZE, 'A') }), 500);
    dataV2 = dirLayer('data', await writeTree(join(base, 'data-v2'), { 'data.bin': Buffer.alloc(V2_SIZE, 'B') }), 500);
    union = new Union();
    await union.setLayers([service, siteA]);
    mounted = await mountUnion(union, mnt);
  });

  afterAll(async () => {
    await mounted?.unmount().catch(() => undefined);
    if (mnt !== undefined) {
      await forceUnmount(mnt);
      expect(await isMounted(mnt)).toBe(false);
    }
    await rm(base, { recursive: true, force: true });
  });

  it('serves each file from the highest-priority layer and lists the union', async () => {
    expect(await isMounted(mnt)).toBe(true);
    expect((await sh(`cat ${mnt}/etc/glusterfs/cache.conf`)).stdout).toBe('cache-server = cache-a.zone-a.example.net\n');
    expect((await sh(`cat ${mnt}/etc/glusterfs/client.vol`)).stdout).toBe('volume client\n');
    expect((await sh(`ls ${mnt}/etc`)).stdout.split('\n').filter(Boolean)).toEqual(['cache-link', 'glusterfs', 'group-readable', 'private', 'secret.key', 'site-a-only']);
    expect((await sh(`ls -A ${mnt}`)).stdout.split('\n').filter(Boolean)).toEqual(['.recontext', 'etc', 'usr']);
    expect((await sh(`readlink ${mnt}/etc/cache-link && cat ${mnt}/etc/cache-link`)).stdout).toBe('glusterfs/cache.conf\ncache-server = cache-a.zone-a.example.net\n');
    expect((await sh(`cat ${mnt}/etc/nope`)).code).not.toBe(0);
  });

  it('removing a layer reveals the file beneath; replacing it shows the new one', async () => {
    await union.setLayers([service]);
    expect((await sh(`cat ${mnt}/etc/glusterfs/cache.conf; ls ${mnt}/etc`)).stdout).toBe(
      'cache-server = default.example.net\ncache-link\nglusterfs\ngroup-readable\nprivate\nsecret.key\n',
    );
    await union.setLayers([service, siteB]);
    expect((await sh(`cat ${mnt}/etc/glusterfs/cache.conf`)).stdout).toBe('cache-server = cache-b.zone-b.example.net\n');
    await union.setLayers([service, siteA]);
  });

  it('keeps the layer files\' modes and owners and lets the kernel enforce them', async () => {
    const modes = await sh(`cd ${mnt} && stat -c '%n %a %U' etc/secret.key etc/group-readable usr/bin/hello etc/private etc/glusterfs/client.vol`);
    expect(modes.stdout.split('\n').filter(Boolean)).toEqual([
      'etc/secret.key 600 root',
      'etc/group-readable 640 root',
      'usr/bin/hello 755 root',
      'etc/private 700 root',
      'etc/glusterfs/client.vol 644 root',
    ]);
    expect((await sh(`${mnt}/usr/bin/hello`)).stdout).toBe('hello from the union\n');
    // Another user (the union is mounted allow_other + default_permissions).
    const asNobody = (cmd: string): Promise<{ code: number; stderr: string; stdout: string }> => sh(`setpriv --reuid=65534 --regid=65534 --clear-groups ${cmd}`);
    expect((await asNobody(`cat ${mnt}/etc/glusterfs/client.vol`)).stdout).toBe('volume client\n');
    const denied = await asNobody(`cat ${mnt}/etc/secret.key`);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/Permission denied/);
  });

  it('answers writes with EROFS: write, create, truncate, unlink, mkdir, rmdir, rename, chmod, symlink, touch', async () => {
    const attempts = [
      `echo x > ${mnt}/etc/glusterfs/cache.conf`,
      `echo x >> ${mnt}/etc/glusterfs/cache.conf`,
      `echo x > ${mnt}/etc/new-file`,
      `truncate -s 0 ${mnt}/etc/glusterfs/cache.conf`,
      `rm ${mnt}/etc/glusterfs/cache.conf`,
      `mkdir ${mnt}/etc/newdir`,
      `rmdir ${mnt}/etc/private`,
      `mv ${mnt}/etc/glusterfs/cache.conf ${mnt}/etc/glusterfs/moved`,
      `chmod 777 ${mnt}/etc/glusterfs/cache.conf`,
      `ln -s x ${mnt}/etc/newlink`,
      `touch ${mnt}/etc/glusterfs/cache.conf`,
    ];
    for (const cmd of attempts) {
      const r = await sh(cmd);
      expect(r.code, cmd).not.toBe(0);
      expect(r.stderr, cmd).toMatch(/Read-only file system/);
    }
    expect((await sh(`cat ${mnt}/etc/glusterfs/cache.conf`)).stdout).toBe('cache-server = cache-a.zone-a.example.net\n');
  });

  it('status.json shows the stack', async () => {
    const status = JSON.parse((await sh(`cat ${mnt}/.recontext/status.json`)).stdout) as { generation: number; layers: { name: string; priority: number; source: { kind: string } }[] };
    expect(status.generation).toBe(union.stack.generation);
    expect(status.layers.map((l) => [l.name, l.priority, l.source.kind])).toEqual([
      ['site-cache', 300, 'dir'],
      ['service', 100, 'dir'],
    ]);
  });

  it('an open file keeps its version across a swap; a new open gets the new one', async () => {
    await union.setLayers([service, siteA, dataV1]);
    const reader = nodeScript(
      `const fs = require('fs');
       const fd = fs.openSync(process.argv[1], 'r');
       console.log('opened');
       process.stdin.once('data', () => {
         const read = (fd) => { const b = Buffer.alloc(1 << 20); let off = 0, n; while ((n = fs.readSync(fd, b, off, 65536, off)) > 0) off += n; return b.subarray(0, off); };
         const old = read(fd); const fresh = read(fs.openSync(process.argv[1], 'r'));
         console.log(JSON.stringify({ old: [old.length, String.fromCharCode(old[0])], fresh: [fresh.length, String.fromCharCode(fresh[0])] }));
         process.exit(0);
       });`,
      [`${mnt}/data.bin`],
    );
    await new Promise<void>((resolve) => reader.child.stdout?.on('data', (d: Buffer) => d.toString().includes('opened') && resolve()));
    await union.setLayers([service, siteA, dataV2]);
    reader.child.stdin?.write('go\n');
    const result = await reader.done;
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout.split('\n')[1] ?? '')).toEqual({ old: [V1_SIZE, 'A'], fresh: [V2_SIZE, 'B'] });
  });

  it('a reader loop never sees torn content while the stack is swapped hundreds of times', async () => {
    await union.setLayers([service, siteA, dataV1]);
    const durationMs = 6000;
    // Reads the whole file in 16 KB requests each time (many FUSE reads per version) and checks
    // that every read is exactly one version: all 'A' and V1_SIZE long, or all 'B' and V2_SIZE long.
    const reader = nodeScript(
      `const fs = require('fs');
       const [file, ms, v1, v2] = process.argv.slice(1);
       const expected = { 65: Number(v1), 66: Number(v2) };
       const buf = Buffer.alloc(1 << 20);
       const end = Date.now() + Number(ms);
       const seen = { 65: 0, 66: 0 }; let torn = 0; let errors = 0; const samples = [];
       while (Date.now() < end) {
         let fd;
         try { fd = fs.openSync(file, 'r'); } catch (e) { errors++; samples.push(String(e)); continue; }
         let off = 0, n;
         try { while ((n = fs.readSync(fd, buf, off, 16384, off)) > 0) off += n; } catch (e) { errors++; samples.push(String(e)); }
         fs.closeSync(fd);
         const first = buf[0];
         let ok = expected[first] === off;
         for (let i = 0; ok && i < off; i++) if (buf[i] !== first) ok = false;
         if (ok) seen[first]++; else { torn++; if (samples.length < 5) samples.push({ length: off, first, last: buf[off - 1] }); }
       }
       console.log(JSON.stringify({ seen, torn, errors, samples }));`,
      [`${mnt}/data.bin`, String(durationMs), String(V1_SIZE), String(V2_SIZE)],
    );
    let swaps = 0;
    let running = true;
    void reader.done.then(() => (running = false));
    while (running) {
      await union.setLayers([service, siteA, swaps % 2 === 0 ? dataV2 : dataV1]);
      swaps++;
      await new Promise((r) => setTimeout(r, 2));
    }
    const result = await reader.done;
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { seen: Record<string, number>; torn: number; errors: number; samples: unknown[] };
    console.log(`atomic swap: ${swaps} swaps, reads ${JSON.stringify(report.seen)} (A = v1, B = v2), torn ${report.torn}, errors ${report.errors}`);
    expect(swaps).toBeGreaterThanOrEqual(200);
    expect(report.torn, JSON.stringify(report.samples)).toBe(0);
    expect(report.errors, JSON.stringify(report.samples)).toBe(0);
    expect(report.seen['65']).toBeGreaterThan(0);
    expect(report.seen['66']).toBeGreaterThan(0);
    expect(union.openFiles(dataV1.root) + union.openFiles(dataV2.root)).toBe(0);
  });
});
