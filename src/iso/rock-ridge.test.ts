import { describe, expect, it } from 'vitest';
import { S_IFREG, nmEntries, pxEntry, slComponents, slEntries, tfEntry } from './rock-ridge.js';

/** Reassembles NM entries as a reader does: concatenate while the CONTINUE flag is set. */
function readNm(entries: Buffer[]): string {
  return Buffer.concat(entries.map((e) => e.subarray(5))).toString('utf8');
}

/** Reads SL entries back into a path, following RRIP 4.1.3.1 component flags. */
function readSl(entries: Buffer[]): string {
  let out = '';
  let needSlash = false;
  for (const entry of entries) {
    let offset = 5;
    while (offset < entry.length) {
      const flags = entry[offset] as number;
      const length = entry[offset + 1] as number;
      const text = flags & 0x08 ? '/' : flags & 0x02 ? '.' : flags & 0x04 ? '..' : entry.subarray(offset + 2, offset + 2 + length).toString('utf8');
      if (needSlash) out += '/';
      out += text;
      needSlash = (flags & 0x01) === 0 && (flags & 0x08) === 0;
      offset += 2 + length;
    }
  }
  return out;
}

describe('Rock Ridge (RRIP 1.12) entries', () => {
  it('PX is 44 bytes: mode, links, uid 0, gid 0, serial — both-endian', () => {
    const px = pxEntry({ mode: S_IFREG | 0o640, links: 1, serial: 7 });
    expect(px.length).toBe(44);
    expect(px.subarray(0, 4).toString('latin1')).toBe('PX,\u0001');
    expect(px.readUInt32LE(4)).toBe(0o100640);
    expect(px.readUInt32BE(8)).toBe(0o100640);
    expect(px.readUInt32LE(12)).toBe(1);
    expect(px.readUInt32LE(20)).toBe(0);
    expect(px.readUInt32LE(28)).toBe(0);
    expect(px.readUInt32LE(36)).toBe(7);
    expect(px.readUInt32BE(40)).toBe(7);
  });

  it('TF records modify, access and attribute times (flags 0x0e), short form', () => {
    const tf = tfEntry(new Date('2024-05-06T07:08:09Z'));
    expect(tf.length).toBe(26);
    expect(tf[4]).toBe(0x0e);
    expect([...tf.subarray(5, 12)]).toEqual([124, 5, 6, 7, 8, 9, 0]);
  });

  it('NM keeps short names in one entry and splits 255-byte names with CONTINUE', () => {
    expect(nmEntries('Grüße')).toHaveLength(1);
    expect(nmEntries('Grüße')[0]?.[4]).toBe(0);
    const long = `${'é'.repeat(127)}x`;
    const entries = nmEntries(long);
    expect(entries.length).toBe(2);
    expect(entries[0]?.[4]).toBe(0x01);
    expect(entries[1]?.[4]).toBe(0);
    entries.forEach((e) => expect(e.length).toBeLessThanOrEqual(255));
    // Splitting on bytes may cut a UTF-8 sequence; readers concatenate before decoding.
    expect(readNm(entries)).toBe(long);
  });

  it('SL components: root, current, parent and plain names', () => {
    expect(slComponents('/').map((c) => [...c])).toEqual([[0x08, 0]]);
    expect(slComponents('../a').map((c) => [...c])).toEqual([[0x04, 0], [0, 1, 0x61]]);
    expect(slComponents('./b').map((c) => [...c])).toEqual([[0x02, 0], [0, 1, 0x62]]);
  });

  it('SL round-trips targets, long ones over several entries with CONTINUE', () => {
    for (const target of ['/', '/etc/hostname', '../bin/tool', './x/../y', 'a', `${'c'.repeat(600)}/d`, `/${'seg/'.repeat(300)}end`]) {
      const entries = slEntries(target);
      entries.forEach((e, i) => {
        expect(e.length).toBeLessThanOrEqual(255);
        expect(e[4]).toBe(i + 1 < entries.length ? 1 : 0);
      });
      expect(readSl(entries), target).toBe(target);
    }
  });
});
