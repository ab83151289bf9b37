import { describe, expect, it } from 'vitest';
import { recordingDate, utf16be, writeAsciiField, writeBoth16, writeBoth32, writeUcs2Field, writeVolumeDate } from './fields.js';

/** Runs a field writer on a buffer of `width` bytes (plus a guard byte that must stay untouched). */
function field(width: number, write: (target: Buffer, offset: number) => void): Buffer {
  const out = Buffer.alloc(width + 1, 0xaa);
  write(out, 0);
  expect(out[width]).toBe(0xaa);
  return out.subarray(0, width);
}

describe('ECMA-119 field encodings', () => {
  it('writes 16- and 32-bit numbers in both byte orders (7.2.3, 7.3.3)', () => {
    const b16 = Buffer.alloc(4);
    writeBoth16(b16, 0, 0x1234);
    expect([...b16]).toEqual([0x34, 0x12, 0x12, 0x34]);
    const b32 = Buffer.alloc(8);
    writeBoth32(b32, 0, 0x12345678);
    expect([...b32]).toEqual([0x78, 0x56, 0x34, 0x12, 0x12, 0x34, 0x56, 0x78]);
  });

  it('encodes the 7-byte record date in UTC (9.1.5)', () => {
    expect([...recordingDate(new Date('2024-05-06T07:08:09Z'))]).toEqual([124, 5, 6, 7, 8, 9, 0]);
  });

  it('encodes the 17-byte volume date, and all-zero digits for "not specified" (8.4.26.1)', () => {
    const date = field(17, (target, offset) => writeVolumeDate(target, offset, new Date('2024-05-06T07:08:09.120Z')));
    expect(date.subarray(0, 16).toString('latin1')).toBe('2024050607080912');
    expect(date[16]).toBe(0);
    const none = field(17, (target, offset) => writeVolumeDate(target, offset, undefined));
    expect(none.subarray(0, 16).toString('latin1')).toBe('0'.repeat(16));
    expect(none[16]).toBe(0);
  });

  it('pads character fields with spaces, Joliet fields with UCS-2 spaces', () => {
    expect(field(4, (target, offset) => writeAsciiField(target, offset, 'AB', 4)).toString('latin1')).toBe('AB  ');
    expect(field(2, (target, offset) => writeAsciiField(target, offset, 'ABC', 2)).toString('latin1')).toBe('AB');
    expect([...field(6, (target, offset) => writeUcs2Field(target, offset, 'A', 6))]).toEqual([0, 0x41, 0, 0x20, 0, 0x20]);
    expect([...field(5, (target, offset) => writeUcs2Field(target, offset, 'ABC', 5))]).toEqual([0, 0x41, 0, 0x42, 0]);
    expect([...utf16be('😀')]).toEqual([0xd8, 0x3d, 0xde, 0x00]);
  });
});
