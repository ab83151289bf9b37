import { constants } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dirLayer, tempDir, writeTree } from '../test/layers.js';
import { LayerError } from './layer.js';
import { FsError } from './resolve.js';
import { STATUS_FILE, Union } from './union.js';

// The union's operations without a mount (the FUSE adapter only forwards to them).
describe('Union', () => {
  let base: string;
  let service: string;
  let infra: string;
  let infraB: string;

  beforeAll(async () => {
    base = await tempDir('union');
    service = await writeTree(join(base, 'service'), {
      'etc/app/app.conf': 'service app.conf\n',
      'etc/app/cache.conf': 'cache = default\n',
      'etc/app/only-service': 'x',
      'etc/motd': { content: 'motd\n', mode: 0o600 },
      'opt/tool': 'a file in service',
      'etc/link': { symlink: 'app/app.conf' },
      '.recontext/manifest.json': '{"layer":"service"}',
    });
    infra = await writeTree(join(base, 'infra'), {
      'etc/app/cache.conf': 'cache = cache-a.zone-a\n',
      'etc/app/only-infra': 'y',
      'opt/tool/inside': 'a directory in infra, hidden by the file in service? no: infra is higher',
    });
    infraB = await writeTree(join(base, 'infra-b'), { 'etc/app/cache.conf': 'cache = cache-b.zone-b\n' });
  });
  afterAll(async () => rm(base, { recursive: true, force: true }));

  const read = async (union: Union, path: string): Promise<string> => {
    const h = await union.open(path, constants.O_RDONLY);
    const buf = Buffer.alloc(4096);
    const n = await union.read(h, buf, buf.length, 0);
    await union.release(h);
    return buf.subarray(0, n).toString();
  };

  it('serves each path from the highest-priority layer that has it, and lists the union', async () => {
    const union = new Union();
    await union.setLayers([dirLayer('service', service, 100), dirLayer('infra', infra, 300)]);
    expect(await read(union, '/etc/app/cache.conf')).toBe('cache = cache-a.zone-a\n');
    expect(await read(union, '/etc/app/app.conf')).toBe('service app.conf\n');
    expect(await union.readdir('/etc/app')).toEqual(['app.conf', 'cache.conf', 'only-infra', 'only-service']);
    expect(await union.readdir('/')).toEqual(['.recontext', 'etc', 'opt']);
    // A higher layer's directory hides a lower layer's file of the same name (and vice versa).
    expect((await union.getattr('/opt/tool')).mode & constants.S_IFMT).toBe(constants.S_IFDIR);
    expect(await union.readdir('/opt/tool')).toEqual(['inside']);
    expect(await union.readlink('/etc/link')).toBe('app/app.conf');
    expect((await union.getattr('/etc/motd')).mode & 0o7777).toBe(0o600);
  });

  it('removing a layer reveals what was beneath; a swap is whole and immediate', async () => {
    const union = new Union();
    await union.setLayers([dirLayer('service', service, 100), dirLayer('infra', infra, 300)]);
    const pending = union.setLayers([dirLayer('service', service, 100)]);
    expect(union.stack.generation).toBe(2); // swapped before setLayers returned
    await pending;
    expect(await read(union, '/etc/app/cache.conf')).toBe('cache = default\n');
    await expect(union.getattr('/etc/app/only-infra')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await union.getattr('/opt/tool')).mode & constants.S_IFMT).toBe(constants.S_IFREG);
  });

  it('an open file keeps reading the version it opened; a new open sees the new stack', async () => {
    const union = new Union();
    await union.setLayers([dirLayer('service', service, 100), dirLayer('infra', infra, 300)]);
    const h = await union.open('/etc/app/cache.conf', constants.O_RDONLY);
    await union.setLayers([dirLayer('service', service, 100), dirLayer('infra', infraB, 300)]);
    const buf = Buffer.alloc(100);
    expect(buf.subarray(0, await union.read(h, buf, 100, 0)).toString()).toBe('cache = cache-a.zone-a\n');
    expect(union.openFiles(infra)).toBe(1);
    const released = union.released(infra);
    await union.release(h);
    await released;
    expect(union.openFiles(infra)).toBe(0);
    expect(await read(union, '/etc/app/cache.conf')).toBe('cache = cache-b.zone-b\n');
  });

  it('answers every write intent with EROFS and hides the layers\' .recontext directory', async () => {
    const union = new Union();
    await union.setLayers([dirLayer('service', service, 100)]);
    for (const flags of [constants.O_WRONLY, constants.O_RDWR, constants.O_RDONLY | constants.O_TRUNC, constants.O_WRONLY | constants.O_CREAT]) {
      await expect(union.open('/etc/motd', flags)).rejects.toEqual(new FsError('EROFS'));
    }
    await expect(union.access('/etc/motd', constants.W_OK)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(union.getattr('/.recontext/manifest.json')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await union.readdir('/.recontext')).toEqual(['status.json']);
  });

  it('refuses a bad stack and keeps the current one', async () => {
    const union = new Union();
    await union.setLayers([dirLayer('service', service, 100)]);
    await expect(union.setLayers([dirLayer('a', service, 1), dirLayer('a', infra, 2)])).rejects.toThrow(LayerError);
    await expect(union.setLayers([dirLayer('bad name', service, 1)])).rejects.toThrow(LayerError);
    await expect(union.setLayers([dirLayer('rel', 'relative/dir', 1)])).rejects.toThrow(LayerError);
    expect(union.stack.generation).toBe(1);
    expect(union.stack.layers.map((l) => l.name)).toEqual(['service']);
  });

  it('an empty stack is an empty root; status shows the stack with since kept for unchanged layers', async () => {
    let now = new Date('2030-01-01T00:00:00Z');
    const union = new Union({ now: () => now });
    expect(await union.readdir('/')).toEqual(['.recontext']);
    expect((await union.getattr('/')).mode & constants.S_IFMT).toBe(constants.S_IFDIR);
    await union.setLayers([dirLayer('service', service, 100, { class: 'service', digest: 'sha256:aa' })]);
    now = new Date('2030-01-01T00:01:00Z');
    await union.setLayers([dirLayer('service', service, 100, { class: 'service', digest: 'sha256:aa' }), dirLayer('infra', infra, 300)]);
    const status = JSON.parse(await read(union, STATUS_FILE)) as { generation: number; changedAt: string; layers: { name: string; since: string; digest?: string }[] };
    expect(status.generation).toBe(2);
    expect(status.changedAt).toBe('2030-01-01T00:01:00.000Z');
    expect(status.layers.map((l) => [l.name, l.since, l.digest])).toEqual([
      ['infra', '2030-01-01T00:01:00.000Z', undefined],
      ['service', '2030-01-01T00:00:00.000Z', 'sha256:aa'],
    ]);
  });

  it('equal priorities: the name that sorts first wins', async () => {
    const union = new Union();
    await union.setLayers([dirLayer('zz', service, 5), dirLayer('aa', infra, 5)]);
    expect(await read(union, '/etc/app/cache.conf')).toBe('cache = cache-a.zone-a\n');
  });
});
