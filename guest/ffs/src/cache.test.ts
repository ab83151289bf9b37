import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dirLayer, tempDir, writeTree } from '../test/layers.js';
import { cacheOf, StackCache } from './cache.js';
import { listDirectory, resolvePath, resolvePathUncached } from './resolve.js';
import { createStack } from './stack.js';
import { Union } from './union.js';

// The per-stack resolution cache: same answers as resolving from the root, one stack's answers
// never reach another, bounded memory.
describe('per-stack resolution cache', () => {
  let base: string;
  let low: string;
  let high: string;

  beforeAll(async () => {
    base = await tempDir('cache');
    low = await writeTree(join(base, 'low'), {
      'etc/a/one.conf': 'low one\n',
      'etc/a/two.conf': 'low two\n',
      'etc/shadowed/inside': 'hidden by the file above\n',
      'etc/link': { symlink: 'a/one.conf' },
      ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`many/f${i}`, `${i}\n`])),
    });
    high = await writeTree(join(base, 'high'), { 'etc/a/one.conf': 'high one, longer\n', 'etc/shadowed': 'a file\n', 'etc/a/three.conf': '3\n' });
  });
  afterAll(async () => rm(base, { recursive: true, force: true }));

  const layers = () => [dirLayer('low', low, 100), dirLayer('high', high, 300)];

  it('answers exactly as resolution from the root, for present, absent and hidden paths', async () => {
    const stack = createStack(layers(), 1, new Date());
    const paths = ['/', '/etc', '/etc/a', '/etc/a/one.conf', '/etc/a/two.conf', '/etc/a/three.conf', '/etc/a/nope', '/etc/shadowed', '/etc/shadowed/inside', '/etc/link', '/nope/deeper/still', '/many/f7'];
    for (let pass = 0; pass < 2; pass++) {
      for (const path of paths) {
        const [cached, reference] = await Promise.all([resolvePath(stack, path), resolvePathUncached(stack, path)]);
        expect(cached && { ...cached, stats: cached.stats.ino }, path).toEqual(reference && { ...reference, stats: reference.stats.ino });
      }
    }
    expect((await resolvePath(stack, '/etc/a/one.conf'))?.layer.name).toBe('high');
    expect(await resolvePath(stack, '/etc/shadowed/inside')).toBeUndefined();
    expect((await listDirectory(stack, '/etc/a')).names).toEqual(['one.conf', 'three.conf', 'two.conf']);
  });

  it('resolves only the last component when the parent is cached, and shares concurrent lookups', async () => {
    const stack = createStack(layers(), 1, new Date());
    const cache = cacheOf(stack);
    await resolvePath(stack, '/etc/a/one.conf'); // '/', '/etc', '/etc/a', '/etc/a/one.conf'
    expect(cache.stats()).toMatchObject({ entries: 4, misses: 4 });
    await resolvePath(stack, '/etc/a/two.conf');
    expect(cache.stats()).toMatchObject({ entries: 5, misses: 5 }); // one level more, nothing above it again
    await resolvePath(stack, '/etc/a/two.conf');
    expect(cache.stats()).toMatchObject({ entries: 5, misses: 5 });
    await Promise.all(Array.from({ length: 10 }, () => resolvePath(stack, '/many/f3')));
    expect(cache.stats()).toMatchObject({ entries: 7, misses: 7 }); // '/many' and '/many/f3', once each
  });

  it('never serves a change within a stack; a swap gives a fresh cache that sees it', async () => {
    const dir = await writeTree(join(base, 'mutable'), { 'x.conf': 'v1\n' });
    const union = new Union();
    await union.setLayers([dirLayer('m', dir, 1)]);
    expect((await union.getattr('/x.conf')).size).toBe(3);
    expect(await union.readdir('/')).toEqual(['.recontext', 'x.conf']);
    await expect(union.getattr('/y.conf')).rejects.toMatchObject({ code: 'ENOENT' });
    // Layers are frozen trees; a directory layer changed in place is not seen by its stack...
    await writeFile(join(dir, 'x.conf'), 'version 2\n');
    await writeFile(join(dir, 'y.conf'), 'new\n');
    expect((await union.getattr('/x.conf')).size).toBe(3);
    await expect(union.getattr('/y.conf')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await union.readdir('/')).toEqual(['.recontext', 'x.conf']);
    const previous = union.stack;
    // ...and the next stack (even of the same layers) starts empty and sees the trees as they are.
    await union.setLayers([dirLayer('m', dir, 1)]);
    expect(union.cacheStats()).toMatchObject({ entries: 0, listings: 0, closed: false });
    expect((await union.getattr('/x.conf')).size).toBe(10);
    expect((await union.getattr('/y.conf')).size).toBe(4);
    expect(await union.readdir('/')).toEqual(['.recontext', 'x.conf', 'y.conf']);
    // The previous stack's cache was emptied at the swap and stores nothing any more.
    expect(cacheOf(previous).stats()).toMatchObject({ entries: 0, listings: 0, closed: true });
    expect((await resolvePath(previous, '/y.conf'))?.stats.size).toBe(4);
    await listDirectory(previous, '/');
    expect(cacheOf(previous).stats()).toMatchObject({ entries: 0, listings: 0 });
  });

  it('keeps at most the configured number of paths and listed names', async () => {
    const union = new Union({ cache: { entries: 8, names: 44 } });
    await union.setLayers(layers());
    for (let i = 0; i < 40; i++) expect(await union.getattr(`/many/f${i}`)).toMatchObject({ size: `${i}\n`.length });
    expect(union.cacheStats().entries).toBe(8);
    expect(await union.readdir('/many')).toHaveLength(40); // 41 names' worth: fits
    expect(await union.readdir('/etc/a')).toHaveLength(3); // 4 more: the oldest listing goes
    expect(union.cacheStats()).toMatchObject({ listings: 1, names: 4 });
    // Still right after eviction (recomputed).
    expect(await union.readdir('/many')).toHaveLength(40);
    expect((await union.getattr('/etc/a/one.conf')).size).toBe('high one, longer\n'.length);
    expect(union.cacheStats().entries).toBeLessThanOrEqual(8);
    // A listing bigger than the whole budget is served but not kept.
    const tiny = new StackCache({ entries: 2, names: 3 });
    expect(await tiny.listing('/big', async () => ['a', 'b', 'c'])).toEqual(['a', 'b', 'c']);
    expect(tiny.stats()).toMatchObject({ listings: 0, names: 0 });
  });

  it('does not cache failures', async () => {
    const cache = new StackCache();
    let calls = 0;
    const failing = async (): Promise<undefined> => {
      calls++;
      throw Object.assign(new Error('EIO'), { code: 'EIO' });
    };
    await expect(cache.resolve('/x', failing)).rejects.toThrow('EIO');
    await expect(cache.resolve('/x', failing)).rejects.toThrow('EIO');
    expect(calls).toBe(2);
    expect(cache.stats().entries).toBe(0);
  });
});
