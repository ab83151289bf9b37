import { describe, expect, it } from 'vitest';
import { CE_ENTRY_SIZE, areaLength, ceEntry, erEntry, inlineLength, packSystemUse, spEntry, suspEntry } from './susp.js';

describe('SUSP 1.12 entries', () => {
  it('SP: signature, length 7, version 1, check bytes BE EF, skip 0', () => {
    expect([...spEntry()]).toEqual([0x53, 0x50, 7, 1, 0xbe, 0xef, 0]);
  });

  it('CE: both-endian location, offset and length', () => {
    const ce = ceEntry({ sector: 40, offset: 100, length: 237 });
    expect(ce.length).toBe(CE_ENTRY_SIZE);
    expect(ce.subarray(0, 4).toString('latin1')).toBe('CE\u001c\u0001');
    expect(ce.readUInt32LE(4)).toBe(40);
    expect(ce.readUInt32BE(8)).toBe(40);
    expect(ce.readUInt32LE(12)).toBe(100);
    expect(ce.readUInt32LE(20)).toBe(237);
    expect(ce.readUInt32BE(24)).toBe(237);
  });

  it('ER: lengths, extension version, identifier/descriptor/source', () => {
    const er = erEntry('IEEE_1282', 'DES', 'SRC', 1);
    expect([...er.subarray(0, 8)]).toEqual([0x45, 0x52, 8 + 9 + 3 + 3, 1, 9, 3, 3, 1]);
    expect(er.subarray(8).toString('latin1')).toBe('IEEE_1282DESSRC');
  });

  it('rejects entries over 255 bytes', () => {
    expect(() => suspEntry('NM', 1, Buffer.alloc(252))).toThrow(RangeError);
  });
});

describe('packing entries into the record and continuation areas', () => {
  const entry = (size: number): Buffer => suspEntry('XX', 1, Buffer.alloc(size - 4));

  it('keeps everything inline when it fits', () => {
    const packing = packSystemUse([entry(44), entry(26)], 100);
    expect(packing.areas).toEqual([]);
    expect(inlineLength(packing)).toBe(70);
  });

  it('reserves room for CE and moves the rest into one area', () => {
    const packing = packSystemUse([entry(44), entry(26), entry(200)], 100);
    expect(packing.inline.length).toBe(2);
    expect(inlineLength(packing)).toBe(70 + CE_ENTRY_SIZE);
    expect(packing.areas.length).toBe(1);
    expect(areaLength(packing, 0)).toBe(200);
  });

  it('chains areas of at most one sector each', () => {
    const entries = Array.from({ length: 30 }, () => entry(250));
    const packing = packSystemUse(entries, 200);
    expect(packing.areas.length).toBeGreaterThan(3);
    packing.areas.forEach((_, i) => expect(areaLength(packing, i)).toBeLessThanOrEqual(2048));
    expect(packing.inline.length + packing.areas.reduce((n, a) => n + a.length, 0)).toBe(30);
  });
});
