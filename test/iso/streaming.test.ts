// "Building a 1 GiB tree must not hold it in memory" (issue 4): a separate process builds the
// image of a 1 GiB (sparse) file into /dev/null and reports its peak RSS.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const GIB = 1024 ** 3;

describe('streaming', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'iso-stream-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('writes the image of a 1 GiB file with a peak RSS far below 1 GiB', { timeout: 300_000 }, () => {
    const big = join(work, 'big.img');
    writeFileSync(big, '');
    truncateSync(big, GIB); // sparse: costs no disk, reads as zeros
    const library = fileURLToPath(new URL('../../src/iso/index.ts', import.meta.url));
    const script = join(work, 'build.mts');
    writeFileSync(
      script,
      `import { readFileSync } from 'node:fs';
import { buildIso } from ${JSON.stringify(library)};
const image = buildIso([{ path: 'big.img', kind: 'file', content: { fromFile: ${JSON.stringify(big)}, size: ${GIB} } }], { volumeId: 'BIG', timestamp: new Date(0) });
const result = await image.writeToFile('/dev/null', { sha256: false });
const hwm = /VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
process.stdout.write(JSON.stringify({ bytes: result.bytes, peakKiB: Number(hwm) }));
`,
    );
    const output = execFileSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const { bytes, peakKiB } = JSON.parse(output) as { bytes: number; peakKiB: number };
    expect(bytes).toBeGreaterThan(GIB);
    // Node + the tsx loader alone take ~60–90 MiB; the image streams through 1 MiB chunks.
    console.log(`1 GiB image written with a peak RSS of ${(peakKiB / 1024).toFixed(0)} MiB`);
    expect(peakKiB / 1024).toBeLessThan(256);
  });
});
