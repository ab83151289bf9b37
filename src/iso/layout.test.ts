import { describe, expect, it } from 'vitest';
import { buildIso, IsoInputError, IsoLimitError, type IsoEntry } from './index.js';

const timestamp = new Date('2024-05-06T07:08:09Z');
const SECTOR = 2048;

interface ParsedRecord {
  readonly offset: number;
  readonly extent: number;
  readonly size: number;
  readonly identifier: Buffer;
  readonly systemUse: Buffer;
}

/** Walks the records of one directory extent, skipping the zero padding at sector ends (6.8.1.1). */
function parseDirectory(image: Buffer, sector: number, size: number): ParsedRecord[] {
  const out: ParsedRecord[] = [];
  let offset = 0;
  while (offset < size) {
    const at = sector * SECTOR + offset;
    const length = image[at] as number;
    if (length === 0) {
      offset = (Math.floor(offset / SECTOR) + 1) * SECTOR;
      continue;
    }
    expect(Math.floor(offset / SECTOR), 'record straddles a sector').toBe(Math.floor((offset + length - 1) / SECTOR));
    const idLength = image[at + 32] as number;
    const suStart = 33 + idLength + (idLength % 2 === 0 ? 1 : 0);
    out.push({
      offset,
      extent: image.readUInt32LE(at + 2),
      size: image.readUInt32LE(at + 10),
      identifier: image.subarray(at + 33, at + 33 + idLength),
      systemUse: image.subarray(at + suStart, at + length),
    });
    offset += length;
  }
  return out;
}

function rootOf(image: Buffer, descriptorSector: number): { extent: number; size: number } {
  const at = descriptorSector * SECTOR + 156;
  return { extent: image.readUInt32LE(at + 2), size: image.readUInt32LE(at + 10) };
}

describe('layout', () => {
  it('places descriptors at 16–18 and the L path table right after, and fills the volume size', async () => {
    const image = buildIso([{ path: 'a', kind: 'file', content: Buffer.from('a') }], { volumeId: 'V', timestamp });
    const bytes = await image.toBuffer();
    expect(bytes.subarray(0, 16 * SECTOR).every((b) => b === 0)).toBe(true);
    expect([bytes[16 * SECTOR], bytes[17 * SECTOR], bytes[18 * SECTOR]]).toEqual([1, 2, 255]);
    expect(bytes.readUInt32LE(16 * SECTOR + 140)).toBe(19);
    expect(bytes.readUInt32LE(16 * SECTOR + 80) * SECTOR).toBe(bytes.length);
    expect(image.size).toBe(bytes.length);
  });

  it('spreads a directory of 1000 files over several sectors without splitting records', async () => {
    const entries: IsoEntry[] = Array.from({ length: 1000 }, (_, i) => ({ path: `d/file-${i}.txt`, kind: 'file', content: Buffer.from(String(i)) }));
    const bytes = await buildIso(entries, { volumeId: 'V', timestamp }).toBuffer();
    for (const descriptor of [16, 17]) {
      const root = rootOf(bytes, descriptor);
      const [, , d] = parseDirectory(bytes, root.extent, root.size);
      expect(d).toBeDefined();
      expect(d?.size).toBeGreaterThan(10 * SECTOR);
      expect((d?.size ?? 1) % SECTOR).toBe(0);
      const records = parseDirectory(bytes, d?.extent ?? 0, d?.size ?? 0);
      expect(records.length).toBe(1002);
    }
  });

  it('puts SP first in the root "." record and the ER entry in a continuation area', async () => {
    const bytes = await buildIso([], { volumeId: 'V', timestamp }).toBuffer();
    const root = rootOf(bytes, 16);
    const [self] = parseDirectory(bytes, root.extent, root.size);
    const su = self?.systemUse ?? Buffer.alloc(0);
    expect(su.subarray(0, 7)).toEqual(Buffer.from([0x53, 0x50, 7, 1, 0xbe, 0xef, 0]));
    const ceAt = su.indexOf('CE');
    expect(ceAt).toBeGreaterThan(0);
    const block = su.readUInt32LE(ceAt + 4);
    const offset = su.readUInt32LE(ceAt + 12);
    const length = su.readUInt32LE(ceAt + 20);
    const area = bytes.subarray(block * SECTOR + offset, block * SECTOR + offset + length);
    expect(area.subarray(0, 2).toString('latin1')).toBe('ER');
    expect(area.includes('IEEE_1282')).toBe(true);
  });

  it('gives empty files and symlinks no extent, and each non-empty file its own sectors', async () => {
    const image = buildIso(
      [
        { path: 'e', kind: 'file', content: Buffer.alloc(0) },
        { path: 's', kind: 'symlink', target: 'e' },
        { path: 'f', kind: 'file', content: Buffer.alloc(SECTOR + 1, 1) },
        { path: 'g', kind: 'file', content: Buffer.alloc(1, 2) },
      ],
      { volumeId: 'V', timestamp },
    );
    const bytes = await image.toBuffer();
    const root = rootOf(bytes, 16);
    const records = parseDirectory(bytes, root.extent, root.size).slice(2);
    const byId = new Map(records.map((r) => [r.identifier.toString('latin1'), r]));
    expect(byId.get('E.;1')?.extent).toBe(0);
    expect(byId.get('S.;1')?.extent).toBe(0);
    const f = byId.get('F.;1');
    const g = byId.get('G.;1');
    expect(g?.extent).toBe((f?.extent ?? 0) + 2);
    expect(bytes[(g?.extent ?? 0) * SECTOR]).toBe(2);
    expect(bytes.length).toBe(((g?.extent ?? 0) + 1) * SECTOR);
  });

  it('writes L and M path tables that agree with each other and with the directory extents', async () => {
    const entries: IsoEntry[] = ['b/c', 'a/d/e', 'a/x', 'B'].map((path) => ({ path, kind: 'dir' }));
    const bytes = await buildIso(entries, { volumeId: 'V', timestamp }).toBuffer();
    for (const descriptor of [16, 17]) {
      const base = descriptor * SECTOR;
      const size = bytes.readUInt32LE(base + 132);
      const l = bytes.readUInt32LE(base + 140) * SECTOR;
      const m = bytes.readUInt32BE(base + 148) * SECTOR;
      const decode = (at: number, big: boolean): [string, number, number][] => {
        const out: [string, number, number][] = [];
        for (let offset = 0; offset < size; ) {
          const length = bytes[at + offset] as number;
          const extent = big ? bytes.readUInt32BE(at + offset + 2) : bytes.readUInt32LE(at + offset + 2);
          const parent = big ? bytes.readUInt16BE(at + offset + 6) : bytes.readUInt16LE(at + offset + 6);
          out.push([bytes.subarray(at + offset + 8, at + offset + 8 + length).toString('hex'), extent, parent]);
          offset += 8 + length + (length % 2);
        }
        return out;
      };
      const little = decode(l, false);
      expect(decode(m, true)).toEqual(little);
      expect(little.length).toBe(8); // root, B, a, b, a/d, a/x, b/c, a/d/e
      const root = rootOf(bytes, descriptor);
      expect(little[0]).toEqual(['00', root.extent, 1]);
      // Levels ascend, and within a level parents ascend (ECMA-119 9.4).
      for (let i = 2; i < little.length; i++) expect((little[i]?.[2] ?? 0) >= (little[i - 1]?.[2] ?? 0)).toBe(true);
      // Each entry's extent holds a directory whose "." points back at that extent.
      for (const [, extent] of little) expect(bytes.readUInt32LE(extent * SECTOR + 2)).toBe(extent);
    }
  });

  it('rejects bad volume options clearly', () => {
    expect(() => buildIso([], { volumeId: 'lower', timestamp })).toThrow(/volume id "lower" must be 1–32 characters/);
    expect(() => buildIso([], { volumeId: 'V', label: 'x'.repeat(17), timestamp })).toThrow(IsoInputError);
    expect(() => buildIso([], { volumeId: 'V', timestamp: new Date('1850-01-01T00:00:00Z') })).toThrow(/between 1900 and 2155/);
    expect(() => buildIso([], { volumeId: 'V', timestamp: new Date(Number.NaN) })).toThrow(IsoInputError);
    try {
      buildIso([], { volumeId: 'V', publisher: 'tab\there', timestamp });
      throw new Error('expected buildIso to throw');
    } catch (error: unknown) {
      expect(error).toBeInstanceOf(IsoInputError);
      expect((error as IsoInputError).path).toBeUndefined();
      expect((error as IsoInputError).message).toBe('publisher must be at most 128 printable ASCII characters');
    }
  });

  it('refuses more directories than the 16-bit path table parent numbers allow', () => {
    const entries: IsoEntry[] = Array.from({ length: 65_535 }, (_, i) => ({ path: `d${i}`, kind: 'dir' }));
    expect(() => buildIso(entries, { volumeId: 'V', timestamp })).toThrow(IsoLimitError);
    expect(() => buildIso(entries, { volumeId: 'V', timestamp })).toThrow(/more than 65535 directories/);
  });
});
