import { describe, expect, it } from 'vitest';
import { pathTableRecordSize, writePathTable, type PathTableDirectory } from './path-table.js';

function encodePathTable(directories: PathTableDirectory[], endian: 'L' | 'M'): Buffer {
  const out = Buffer.alloc(directories.reduce((sum, d) => sum + pathTableRecordSize(d.identifier.length), 0));
  expect(writePathTable(out, 0, directories, endian)).toBe(out.length);
  return out;
}

const dirs = [
  { identifier: Buffer.from([0]), extent: 23, parentNumber: 1 },
  { identifier: Buffer.from('ETC'), extent: 24, parentNumber: 1 },
  { identifier: Buffer.from('VAR_'), extent: 0x01020304, parentNumber: 2 },
];

describe('path table (ECMA-119 9.4)', () => {
  it('encodes type L little-endian, with a pad byte after odd identifiers', () => {
    const table = encodePathTable(dirs, 'L');
    expect(table.length).toBe(10 + 12 + 12);
    expect([...table.subarray(0, 10)]).toEqual([1, 0, 23, 0, 0, 0, 1, 0, 0, 0]);
    expect(table.subarray(10 + 8, 10 + 11).toString('latin1')).toBe('ETC');
    expect(table[10 + 11]).toBe(0);
    expect(table.readUInt32LE(22 + 2)).toBe(0x01020304);
    expect(table.readUInt16LE(22 + 6)).toBe(2);
  });

  it('encodes type M big-endian', () => {
    const table = encodePathTable(dirs, 'M');
    expect(table.readUInt32BE(2)).toBe(23);
    expect(table.readUInt32BE(22 + 2)).toBe(0x01020304);
    expect(table.readUInt16BE(22 + 6)).toBe(2);
  });
});
