import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dirLayer, tempDir, writeTree } from '../../test/layers.js';
import { Union } from '../union.js';
import { diffViews, indexView } from './diff.js';

describe('indexView / diffViews', () => {
  let base: string;
  beforeAll(async () => {
    base = await tempDir('diff');
  });
  afterAll(async () => rm(base, { recursive: true, force: true }));

  it('indexes only the watched paths (and walks only towards them); the diff over them is the same as over everything', async () => {
    const union = new Union();
    const low = dirLayer('low', await writeTree(join(base, 'low'), { 'etc/app/a.conf': 'a1', 'etc/app/sub/b.conf': 'b1', 'etc/other.conf': 'o1', 'srv/x': 'x1', 'bench/switch': 's' }), 100);
    const high1 = dirLayer('high', await writeTree(join(base, 'high1'), { 'etc/app/a.conf': 'A1', 'srv/x': 'X1' }), 300);
    const high2 = dirLayer('high', await writeTree(join(base, 'high2'), { 'etc/app/a.conf': 'A2', 'srv/x': 'X2', 'etc/app/sub/c.conf': 'c' }), 300);
    await union.setLayers([low, high1]);
    const before = union.stack;
    await union.setLayers([low, high2]);
    const after = union.stack;

    const within = ['/etc/app', '/bench/switch'];
    expect([...(await indexView(before, within)).keys()].sort()).toEqual(['/bench/switch', '/etc/app', '/etc/app/a.conf', '/etc/app/sub', '/etc/app/sub/b.conf']);
    expect(await diffViews(await indexView(before, within), await indexView(after, within))).toEqual(['/etc/app/a.conf', '/etc/app/sub/c.conf']);
    const everything = await diffViews(await indexView(before), await indexView(after));
    expect(everything).toEqual(['/etc/app/a.conf', '/etc/app/sub/c.conf', '/srv/x']);
    expect([...(await indexView(before, ['/'])).keys()]).toContain('/srv/x');
  });
});
