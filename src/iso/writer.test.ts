import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layoutIso } from './layout.js';
import { buildTree, type IsoEntry } from './tree.js';
import { renderImage, renderWhole, WHOLE_IMAGE_LIMIT } from './writer.js';

const options = { volumeId: 'CTX', label: 'Context', publisher: 'recontext', timestamp: new Date('2024-05-06T07:08:09Z') };
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'iso-writer-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A tree with everything the writer handles: files in memory and on disk, empty files, symlinks, long names (continuation areas). */
function entries(fileCount: number, fileSize: number): IsoEntry[] {
  const out: IsoEntry[] = [
    { path: 'empty', kind: 'file', content: Buffer.alloc(0) },
    { path: 'link', kind: 'symlink', target: `../${'t'.repeat(300)}` },
    { path: `${'n'.repeat(250)}.conf`, kind: 'file', content: Buffer.from('long name') },
    { path: 'etc/mode', kind: 'dir', mode: 0o700 },
  ];
  for (let i = 0; i < fileCount; i++) {
    const bytes = Buffer.alloc(fileSize + i, i % 251);
    if (i % 2 === 0) {
      out.push({ path: `d${i % 5}/mem-${i}.txt`, kind: 'file', content: bytes });
    } else {
      const source = join(work, `source-${fileCount}-${i}`);
      writeFileSync(source, bytes);
      out.push({ path: `d${i % 5}/disk-${i}.bin`, kind: 'file', content: { fromFile: source, size: bytes.length } });
    }
  }
  return out;
}

describe('writer: whole image vs streamed chunks', () => {
  it.each([
    // Sizes relative to WHOLE_IMAGE_LIMIT (1 MiB), checked below.
    ['a small layer', 50, 4000],
    ['an image just over the whole-image limit', 40, 30_000],
    ['an image of several chunks', 30, 200_000],
  ])('%s: both ways give the same bytes', (_name, count, size) => {
    const plan = layoutIso(buildTree(entries(count, size)), options);
    const whole = renderWhole(plan);
    expect(whole.length).toBe(plan.totalSectors * 2048);
    expect(whole.length <= WHOLE_IMAGE_LIMIT).toBe(size < 10_000);
    for (const reuseChunks of [false, true]) {
      // A reused chunk is overwritten by the next one: copy each as it comes.
      const chunks: Buffer[] = [];
      for (const chunk of renderImage(plan, { reuseChunks })) chunks.push(Buffer.from(chunk));
      expect(Buffer.concat(chunks).equals(whole)).toBe(true);
    }
    expect(renderWhole(plan, { reuse: true }).equals(whole)).toBe(true);
  });

  it('reuses its memory for the next image only when asked, and clears what the last image left', () => {
    const big = layoutIso(buildTree(entries(50, 4000)), options);
    const small = layoutIso(buildTree([{ path: 'a', kind: 'file', content: Buffer.from('a') }]), options);
    const first = renderWhole(big, { reuse: true });
    const expected = renderWhole(small);
    const second = renderWhole(small, { reuse: true });
    expect(second.buffer).toBe(first.buffer);
    expect(second.equals(expected)).toBe(true);
    expect(renderWhole(small).buffer).not.toBe(second.buffer);
  });
});
