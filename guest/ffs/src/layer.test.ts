import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { tempDir, writeTree } from '../test/layers.js';
import { LayerError, directoryLayer, parseLayerArgument, readManifest } from './layer.js';

describe('layers', () => {
  it('parses NAME=DIR:PRIORITY (DIR may hold colons) and refuses the rest', () => {
    expect(parseLayerArgument('site=/srv/a:b:300', '/')).toEqual({ name: 'site', dir: '/srv/a:b', priority: 300 });
    expect(parseLayerArgument('svc=rel:-5', '/work')).toEqual({ name: 'svc', dir: '/work/rel', priority: -5 });
    for (const bad of ['noequals:1', '=dir:1', 'a=dir', 'a=dir:x', 'a b=dir:1', 'a=:1']) expect(() => parseLayerArgument(bad)).toThrow(LayerError);
  });

  it('reads the manifest that render.ts writes into every image; a directory layer takes class and digest from it', async () => {
    const dir = await tempDir('manifest');
    try {
      // The exact shape of src/reconcile/render.ts manifestFile().
      const manifest = { apiVersion: 'recontext.dev/v1alpha1', kind: 'LayerImage', layer: 'site-cache', class: 'infrastructure', priority: 300, digest: 'sha256:' + 'ab'.repeat(32), files: 1 };
      await writeTree(dir, { '.recontext/manifest.json': JSON.stringify(manifest, null, 2) + '\n' });
      expect(await readManifest(dir)).toEqual({ layer: 'site-cache', class: 'infrastructure', priority: 300, digest: manifest.digest });
      const layer = await directoryLayer({ name: 'cache', dir, priority: 7 });
      expect(layer).toEqual({ name: 'cache', priority: 7, root: dir, source: { kind: 'dir', path: dir }, class: 'infrastructure', digest: manifest.digest });
      expect(await readManifest(join(dir, 'nothing-here'))).toBeUndefined();
      await writeTree(dir, { '.recontext/manifest.json': '{broken' });
      await expect(readManifest(dir)).rejects.toThrow(LayerError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
