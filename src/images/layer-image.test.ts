import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RenderedLayer } from '../reconcile/render.js';
import { LayerImageStore } from './layer-image.js';

const layer: RenderedLayer = {
  name: 'site-cache',
  class: 'infrastructure',
  priority: 300,
  files: [{ path: 'etc/cache.conf', mode: 0o644, content: Buffer.from('cache-server = a\n'), sensitive: false }],
  bytes: 17,
  digest: `sha256:${'1'.repeat(64)}`,
  nodeDependent: true,
};

describe('LayerImageStore', () => {
  it('builds an image once, however many reconciliations ask for it at the same time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'layer-image-'));
    const store = new LayerImageStore(dir);
    const results = await Promise.all(Array.from({ length: 8 }, () => store.ensure(layer)));
    expect(results.filter((r) => r.built)).toHaveLength(1);
    expect(new Set(results.map((r) => r.path)).size).toBe(1);
    expect(readdirSync(dir).filter((f) => f.endsWith('.iso'))).toEqual([`${'1'.repeat(64)}.iso`]);
    expect((await store.ensure(layer)).built).toBe(false);
  });
});
