import { describe, expect, it } from 'vitest';
import { encodeDirectoryRecord } from './directory-record.js';
import { writeJolietVolumeDescriptor, writePrimaryVolumeDescriptor, writeTerminatorDescriptor } from './volume-descriptor.js';

/** Writes a descriptor into the second sector of a zeroed buffer and returns that sector, checking nothing spilled out. */
function sector(write: (target: Buffer, offset: number) => void): Buffer {
  const out = Buffer.alloc(3 * 2048);
  write(out, 2048);
  expect(out.subarray(0, 2048).every((b) => b === 0) && out.subarray(4096).every((b) => b === 0)).toBe(true);
  return out.subarray(2048, 4096);
}

const when = new Date('2024-05-06T07:08:09Z');
const fields = {
  volumeId: 'CONTEXT_1',
  publisher: 'ACME',
  application: 'RECONTEXT',
  volumeSpaceSize: 100,
  pathTableSize: 10,
  lPathTableSector: 19,
  mPathTableSector: 20,
  rootRecord: encodeDirectoryRecord({ extent: 23, dataLength: 2048, recordedAt: when, isDirectory: true, identifier: Buffer.from([0]) }),
  createdAt: when,
};

describe('volume descriptors (ECMA-119 8.4, 8.5, 8.3)', () => {
  it('primary: identifiers, both-endian sizes, path tables, root record, dates', () => {
    const pvd = sector((target, offset) => writePrimaryVolumeDescriptor(target, offset, fields));
    expect(pvd.length).toBe(2048);
    expect(pvd[0]).toBe(1);
    expect(pvd.subarray(1, 6).toString('latin1')).toBe('CD001');
    expect(pvd[6]).toBe(1);
    expect(pvd.subarray(40, 72).toString('latin1')).toBe('CONTEXT_1'.padEnd(32));
    expect(pvd.readUInt32LE(80)).toBe(100);
    expect(pvd.readUInt32BE(84)).toBe(100);
    expect(pvd.readUInt16LE(128)).toBe(2048);
    expect(pvd.readUInt16BE(130)).toBe(2048);
    expect(pvd.readUInt32LE(132)).toBe(10);
    expect(pvd.readUInt32LE(140)).toBe(19);
    expect(pvd.readUInt32BE(148)).toBe(20);
    expect(pvd[156]).toBe(34);
    expect(pvd.readUInt32LE(156 + 2)).toBe(23);
    expect(pvd.subarray(318, 322).toString('latin1')).toBe('ACME');
    expect(pvd.subarray(813, 829).toString('latin1')).toBe('2024050607080900');
    expect(pvd.subarray(830, 847)).toEqual(pvd.subarray(813, 830));
    expect(pvd.subarray(864, 881)).toEqual(pvd.subarray(813, 830));
    expect(pvd.subarray(847, 863).toString('latin1')).toBe('0'.repeat(16));
    expect(pvd[881]).toBe(1);
    expect(pvd.subarray(88, 91).every((b) => b === 0)).toBe(true);
  });

  it('Joliet supplementary: type 2, UCS-2 level 3 escape, UCS-2 identifiers', () => {
    const svd = sector((target, offset) => writeJolietVolumeDescriptor(target, offset, { ...fields, volumeId: 'Context é' }));
    expect(svd[0]).toBe(2);
    expect(svd.subarray(88, 91).toString('latin1')).toBe('%/E');
    expect(svd.readUInt16BE(40)).toBe('C'.charCodeAt(0));
    expect(svd.readUInt16BE(40 + 8 * 2)).toBe(0xe9);
    expect(svd.readUInt16BE(40 + 9 * 2)).toBe(0x20);
  });

  it('set terminator', () => {
    const t = sector(writeTerminatorDescriptor);
    expect(t[0]).toBe(255);
    expect(t.subarray(1, 7).toString('latin1')).toBe('CD001\u0001');
  });
});
