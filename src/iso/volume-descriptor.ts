// ECMA-119 8.4 / 8.5 / 8.3: the primary volume descriptor, the Joliet supplementary volume
// descriptor (escape sequence "%/E" = UCS-2 level 3) and the set terminator. One sector each.
import { SECTOR_SIZE, writeAsciiField, writeBoth16, writeBoth32, writeUcs2Field, writeVolumeDate } from './fields.js';

export interface VolumeDescriptorFields {
  readonly volumeId: string;
  readonly publisher: string;
  readonly application: string;
  readonly volumeSpaceSize: number;
  readonly pathTableSize: number;
  readonly lPathTableSector: number;
  readonly mPathTableSector: number;
  /** The 34-byte "." record of the root directory (§8.4.18). */
  readonly rootRecord: Buffer;
  readonly createdAt: Date;
}

const STANDARD_ID = 'CD001';
const TYPE_PRIMARY = 1;
const TYPE_SUPPLEMENTARY = 2;
const TYPE_TERMINATOR = 255;
const JOLIET_LEVEL3_ESCAPE = Buffer.from('%/E', 'latin1');

/** Each writer fills one sector of `target` from `offset` on; the sector must hold zeros. */
export function writePrimaryVolumeDescriptor(target: Buffer, offset: number, fields: VolumeDescriptorFields): void {
  writeVolumeDescriptor(target, offset, TYPE_PRIMARY, fields, writeAsciiField);
}

export function writeJolietVolumeDescriptor(target: Buffer, offset: number, fields: VolumeDescriptorFields): void {
  writeVolumeDescriptor(target, offset, TYPE_SUPPLEMENTARY, fields, writeUcs2Field);
}

export function writeTerminatorDescriptor(target: Buffer, offset: number): void {
  target[offset] = TYPE_TERMINATOR;
  target.write(STANDARD_ID, offset + 1, 'latin1');
  target[offset + 6] = 1;
}

type TextField = (target: Buffer, offset: number, value: string, width: number) => void;

function writeVolumeDescriptor(out: Buffer, at: number, type: number, fields: VolumeDescriptorFields, text: TextField): void {
  out[at] = type;
  out.write(STANDARD_ID, at + 1, 'latin1');
  out[at + 6] = 1; // descriptor version
  text(out, at + 8, '', 32); // system identifier
  text(out, at + 40, fields.volumeId, 32);
  writeBoth32(out, at + 80, fields.volumeSpaceSize);
  if (type === TYPE_SUPPLEMENTARY) JOLIET_LEVEL3_ESCAPE.copy(out, at + 88);
  writeBoth16(out, at + 120, 1); // volume set size
  writeBoth16(out, at + 124, 1); // volume sequence number
  writeBoth16(out, at + 128, SECTOR_SIZE); // logical block size
  writeBoth32(out, at + 132, fields.pathTableSize);
  out.writeUInt32LE(fields.lPathTableSector, at + 140);
  out.writeUInt32BE(fields.mPathTableSector, at + 148);
  fields.rootRecord.copy(out, at + 156);
  text(out, at + 190, '', 128); // volume set identifier
  text(out, at + 318, fields.publisher, 128);
  text(out, at + 446, '', 128); // data preparer
  text(out, at + 574, fields.application, 128);
  text(out, at + 702, '', 37); // copyright file
  text(out, at + 739, '', 37); // abstract file
  text(out, at + 776, '', 37); // bibliographic file
  writeVolumeDate(out, at + 813, fields.createdAt);
  out.copy(out, at + 830, at + 813, at + 830); // modification: the same date
  writeVolumeDate(out, at + 847, undefined); // expiration: none
  out.copy(out, at + 864, at + 813, at + 830); // effective: the same date
  out[at + 881] = 1; // file structure version
}
