// Cross-check with 7-Zip (p7zip), which reads the Joliet tree — what Windows guests see: names of up
// to 64 UTF-16 units exactly as given (unicode included), contents intact, every entry present.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso } from '../../src/iso/index.js';
import { FIXED_TIME, expectedTree, missingTool, runOk, sampleEntries, type Snapshot } from './helpers.js';

describe.skipIf(missingTool('7z', '7z cross-check'))('7z reads the Joliet tree of our images', () => {
  let work: string;
  let image: string;
  let expected: Map<string, Snapshot>;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'iso-7z-'));
    const source = join(work, 'source.bin');
    writeFileSync(source, Buffer.alloc(3000, 1));
    const entries = sampleEntries({ path: source, size: 3000 });
    expected = new Map([...expectedTree(entries)].filter(([, s]) => s.kind !== 'symlink'));
    image = join(work, 'sample.iso');
    writeFileSync(image, await buildIso(entries, { volumeId: 'SAMPLE', timestamp: FIXED_TIME }).toBuffer());
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('lists every non-symlink entry; names within the Joliet limit are exact', () => {
    const listing = runOk('7z', ['l', '-slt', image]).stdout;
    const items = listing.split('\n\n').flatMap((block) => {
      const path = /^Path = (.*)$/m.exec(block)?.[1];
      const folder = /^Folder = ([+-])$/m.exec(block)?.[1];
      const size = /^Size = (\d*)$/m.exec(block)?.[1];
      return path === undefined || folder === undefined ? [] : [{ path, folder: folder === '+', size: Number(size ?? 0) }];
    });
    expect(items.length).toBe(expected.size);
    const byPath = new Map(items.map((i) => [i.path, i]));
    for (const [path, s] of expected) {
      if (!path.split('/').every((name) => name.length <= 64)) continue;
      const item = byPath.get(path);
      expect(item, path).toBeDefined();
      expect(item?.folder, path).toBe(s.kind === 'dir');
      if (s.kind === 'file') expect(item?.size, path).toBe(Buffer.from(s.content ?? '', 'base64').length);
    }
  });

  it('extracts contents intact', () => {
    const out = join(work, 'out');
    runOk('7z', ['x', '-y', `-o${out}`, image]);
    for (const [path, s] of expected) {
      if (s.kind !== 'file' || !path.split('/').every((name) => name.length <= 64)) continue;
      expect(readFileSync(join(out, path)).toString('base64'), path).toBe(s.content);
    }
  });
});
