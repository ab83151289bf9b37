// ECMA-119 8.4 / 8.5 / 8.3: the primary volume descriptor, the Joliet supplementary volume
// descriptor (escape sequence "%/E" = UCS-2 level 3) and the set terminator. One sector each.
import { SECTOR_SIZE, asciiField, ucs2Field, volumeDate, writeBoth16, writeBoth32 } from './fields.js';

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

export function primaryVolumeDescriptor(fields: VolumeDescriptorFields): Buffer {
  return volumeDescriptor(TYPE_PRIMARY, fields, asciiField);
}

export function jolietVolumeDescriptor(fields: VolumeDescriptorFields): Buffer {
  return volumeDescriptor(TYPE_SUPPLEMENTARY, fields, ucs2Field);
}

export function terminatorDescriptor(): Buffer {
  const out = Buffer.alloc(SECTOR_SIZE);
  out[0] = TYPE_TERMINATOR;
  out.write(STANDARD_ID, 1, 'latin1');
  out[6] = 1;
  return out;
}

function volumeDescriptor(type: number, fields: VolumeDescriptorFields, text: (value: string, width: number) => Buffer): Buffer {
  const out = Buffer.alloc(SECTOR_SIZE);
  out[0] = type;
  out.write(STANDARD_ID, 1, 'latin1');
  out[6] = 1; // descriptor version
  text('', 32).copy(out, 8); // system identifier
  text(fields.volumeId, 32).copy(out, 40);
  writeBoth32(out, 80, fields.volumeSpaceSize);
  if (type === TYPE_SUPPLEMENTARY) JOLIET_LEVEL3_ESCAPE.copy(out, 88);
  writeBoth16(out, 120, 1); // volume set size
  writeBoth16(out, 124, 1); // volume sequence number
  writeBoth16(out, 128, SECTOR_SIZE); // logical block size
  writeBoth32(out, 132, fields.pathTableSize);
  out.writeUInt32LE(fields.lPathTableSector, 140);
  out.writeUInt32BE(fields.mPathTableSector, 148);
  fields.rootRecord.copy(out, 156);
  text('', 128).copy(out, 190); // volume set identifier
  text(fields.publisher, 128).copy(out, 318);
  text('', 128).copy(out, 446); // data preparer
  text(fields.application, 128).copy(out, 574);
  text('', 37).copy(out, 702); // copyright file
  text('', 37).copy(out, 739); // abstract file
  text('', 37).copy(out, 776); // bibliographic file
  volumeDate(fields.createdAt).copy(out, 813);
  volumeDate(fields.createdAt).copy(out, 830);
  volumeDate(undefined).copy(out, 847); // expiration: none
  volumeDate(fields.createdAt).copy(out, 864);
  out[881] = 1; // file structure version
  return out;
}
