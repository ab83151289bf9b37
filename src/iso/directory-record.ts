// ECMA-119 9.1: a directory record. Records never cross a sector boundary (§6.8.1.1); the layout
// step packs them, this module only encodes one.
import { recordingDate, writeBoth16, writeBoth32, zeroed } from './fields.js';

export const FLAG_DIRECTORY = 0x02;
/** Fixed part of a record before the identifier. */
export const RECORD_HEADER_SIZE = 33;
export const MAX_RECORD_SIZE = 255;

/** The identifiers of "." and ".." (§6.8.2.2). */
export const SELF_IDENTIFIER = Buffer.from([0x00]);
export const PARENT_IDENTIFIER = Buffer.from([0x01]);

export interface DirectoryRecordFields {
  readonly extent: number;
  readonly dataLength: number;
  readonly recordedAt: Date;
  readonly isDirectory: boolean;
  readonly identifier: Buffer;
  /** SUSP entries; padded to an even record length. */
  readonly systemUse?: Buffer;
}

/** Bytes before the system use area: header, identifier and the padding byte of §9.1.12. */
export function recordPrefixSize(identifierLength: number): number {
  return RECORD_HEADER_SIZE + identifierLength + (identifierLength % 2 === 0 ? 1 : 0);
}

export function directoryRecordSize(identifierLength: number, systemUseLength: number): number {
  const size = recordPrefixSize(identifierLength) + systemUseLength;
  return size + (size % 2);
}

export function encodeDirectoryRecord(fields: DirectoryRecordFields): Buffer {
  const systemUse = fields.systemUse ?? Buffer.alloc(0);
  const size = directoryRecordSize(fields.identifier.length, systemUse.length);
  if (size > MAX_RECORD_SIZE) throw new RangeError(`directory record of ${size} bytes exceeds ${MAX_RECORD_SIZE}`);
  const out = zeroed(size);
  out[0] = size;
  out[1] = 0; // extended attribute record length
  writeBoth32(out, 2, fields.extent);
  writeBoth32(out, 10, fields.dataLength);
  recordingDate(fields.recordedAt).copy(out, 18);
  out[25] = fields.isDirectory ? FLAG_DIRECTORY : 0;
  out[26] = 0; // file unit size (not interleaved)
  out[27] = 0; // interleave gap
  writeBoth16(out, 28, 1); // volume sequence number
  out[32] = fields.identifier.length;
  fields.identifier.copy(out, RECORD_HEADER_SIZE);
  systemUse.copy(out, recordPrefixSize(fields.identifier.length));
  return out;
}
