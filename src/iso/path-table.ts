// ECMA-119 9.4: the path table, one record per directory in hierarchy order (level, then parent
// number, then identifier). Type L has little-endian numbers, type M big-endian (§6.9.1).

export interface PathTableDirectory {
  /** Identifier bytes; the root's is a single 0x00. */
  readonly identifier: Buffer;
  readonly extent: number;
  /** 1-based number of the parent in this table; the root is its own parent (1). */
  readonly parentNumber: number;
}

/** ECMA-119 9.4.4: parent directory numbers are 16-bit, which caps the number of directories. */
export const MAX_DIRECTORIES = 0xffff;

export function pathTableRecordSize(identifierLength: number): number {
  return 8 + identifierLength + (identifierLength % 2);
}

/** Writes the table into `out` from `offset` on; returns the offset after it. */
export function writePathTable(out: Buffer, offset: number, directories: readonly PathTableDirectory[], endian: 'L' | 'M'): number {
  for (const dir of directories) {
    out[offset] = dir.identifier.length;
    out[offset + 1] = 0; // extended attribute record length
    if (endian === 'L') {
      out.writeUInt32LE(dir.extent, offset + 2);
      out.writeUInt16LE(dir.parentNumber, offset + 6);
    } else {
      out.writeUInt32BE(dir.extent, offset + 2);
      out.writeUInt16BE(dir.parentNumber, offset + 6);
    }
    out.set(dir.identifier, offset + 8);
    offset += pathTableRecordSize(dir.identifier.length);
  }
  return offset;
}
