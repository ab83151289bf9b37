import { describe, expect, it } from 'vitest';
import { directoryRecordSize, encodeDirectoryRecord, FLAG_DIRECTORY } from './directory-record.js';

const when = new Date('2024-05-06T07:08:09Z');

describe('directory record (ECMA-119 9.1)', () => {
  it('lays out every field at its offset', () => {
    const record = encodeDirectoryRecord({ extent: 0x20, dataLength: 0x1000, recordedAt: when, isDirectory: true, identifier: Buffer.from('ETC'), systemUse: [Buffer.from('X'), Buffer.from('Y')] });
    expect(record.length).toBe(38); // 33 + 3 (odd: no pad byte) + 2 system use
    expect(record[0]).toBe(38);
    expect(record[1]).toBe(0);
    expect(record.readUInt32LE(2)).toBe(0x20);
    expect(record.readUInt32BE(6)).toBe(0x20);
    expect(record.readUInt32LE(10)).toBe(0x1000);
    expect(record.readUInt32BE(14)).toBe(0x1000);
    expect([...record.subarray(18, 25)]).toEqual([124, 5, 6, 7, 8, 9, 0]);
    expect(record[25]).toBe(FLAG_DIRECTORY);
    expect(record.readUInt16LE(28)).toBe(1);
    expect(record.readUInt16BE(30)).toBe(1);
    expect(record[32]).toBe(3);
    expect(record.subarray(33, 36).toString('latin1')).toBe('ETC');
    expect(record.subarray(36).toString('latin1')).toBe('XY');
  });

  it('inserts the padding byte after an even-length identifier and keeps the length even', () => {
    const record = encodeDirectoryRecord({ extent: 1, dataLength: 1, recordedAt: when, isDirectory: false, identifier: Buffer.from('AB.;1X'), systemUse: [Buffer.from('Z')] });
    expect(record[33 + 6]).toBe(0); // §9.1.12 padding field
    expect(record[40]).toBe('Z'.charCodeAt(0));
    expect(record.length % 2).toBe(0);
    expect(record[25]).toBe(0);
    expect(directoryRecordSize(1, 0)).toBe(34);
  });

  it('refuses records longer than 255 bytes', () => {
    expect(() => encodeDirectoryRecord({ extent: 1, dataLength: 1, recordedAt: when, isDirectory: false, identifier: Buffer.from('A'), systemUse: [Buffer.alloc(230)] })).toThrow(RangeError);
  });
});
