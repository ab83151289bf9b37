// Cross-check with xorriso (libisofs, an independent ISO9660/Rock Ridge reader): extracting the
// image must reproduce the input tree exactly — names, contents, modes and symlink targets.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso } from '../../src/iso/index.js';
import { FIXED_TIME, expectedTree, missingTool, run, sampleEntries, treeOnDisk } from './helpers.js';

describe.skipIf(missingTool('xorriso', 'xorriso cross-check'))('xorriso reads our images', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'iso-xorriso-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('extracts the sample tree exactly (Rock Ridge names, modes, symlinks, contents)', async () => {
    const source = join(work, 'source.bin');
    const sourceBytes = Buffer.alloc(5 * 1024 * 1024 + 3);
    for (let i = 0; i < sourceBytes.length; i++) sourceBytes[i] = (i * 31) & 0xff;
    writeFileSync(source, sourceBytes);
    const entries = sampleEntries({ path: source, size: sourceBytes.length });
    const image = join(work, 'sample.iso');
    writeFileSync(image, await buildIso(entries, { volumeId: 'SAMPLE', timestamp: FIXED_TIME }).toBuffer());

    const out = join(work, 'out');
    const result = run('xorriso', ['-abort_on', 'FAILURE', '-osirrox', 'on', '-indev', image, '-extract', '/', out]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/WARNING|SORRY|FAILURE|FATAL/);
    expect(treeOnDisk(out)).toEqual(expectedTree(entries));
  });

  it('reports the volume id and no damage', async () => {
    const image = join(work, 'small.iso');
    writeFileSync(image, await buildIso([{ path: 'a', kind: 'file', content: Buffer.from('a') }], { volumeId: 'VOL_1', timestamp: FIXED_TIME }).toBuffer());
    const result = run('xorriso', ['-indev', image, '-pvd_info', '-check_media', '--']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout + result.stderr).toMatch(/Volume Id\s*:\s*VOL_1/);
    expect(result.stdout + result.stderr).toMatch(/Media region\s*:\s*0\s*,\s*\d+\s*,\s*\+\s*good/);
  });
});
