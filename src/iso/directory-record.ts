// ECMA-119 9.1: a directory record. Records never cross a sector boundary (§6.8.1.1); the layout
// step packs them, this module only encodes one.
import { recordingDate, writeBoth16, writeBoth32, zeroed } from './fields.js';

export const FLAG_DIRECTORY = 0x02;
/** Fixed part of a record before the identifier. */
export const RECORD_HEADER_SIZE = 33;
export const MAX_RECORD_SIZE = 255;

export interface DirectoryRecordFields {
  readonly extent: number;
  readonly dataLength: number;
  readonly recordedAt: Date;
  readonly isDirectory: boolean;
  readonly identifier: Buffer;
  /** SUSP entries, in order; the record is padded to an even length. */
  readonly systemUse?: readonly Buffer[];
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
  const out = zeroed(directoryRecordSize(fields.identifier.length, systemUseLength(fields.systemUse)));
  writeDirectoryRecord(out, 0, fields);
  return out;
}

/**
 * Writes the record into `target` at `offset` (which must hold zeros: padding bytes are not
 * written) and returns its length. Directories are rendered this way, without a buffer per record.
 */
export function writeDirectoryRecord(target: Buffer, offset: number, fields: DirectoryRecordFields): number {
  const size = directoryRecordSize(fields.identifier.length, systemUseLength(fields.systemUse));
  writeRecordHeader(target, offset, size, fields.extent, fields.dataLength, fields.recordedAt, fields.isDirectory, fields.identifier.length);
  target.set(fields.identifier, offset + RECORD_HEADER_SIZE);
  let at = offset + recordPrefixSize(fields.identifier.length);
  for (const entry of fields.systemUse ?? []) {
    target.set(entry, at);
    at += entry.length;
  }
  return size;
}

/**
 * Writes the fixed 33 bytes of a record of `size` bytes; the identifier (`identifierLength` bytes)
 * and the system use area are the caller's to write. `target` must hold zeros there.
 */
export function writeRecordHeader(
  target: Buffer,
  offset: number,
  size: number,
  extent: number,
  dataLength: number,
  recordedAt: Date,
  isDirectory: boolean,
  identifierLength: number,
): void {
  if (size > MAX_RECORD_SIZE) throw new RangeError(`directory record of ${size} bytes exceeds ${MAX_RECORD_SIZE}`);
  target[offset] = size;
  target[offset + 1] = 0; // extended attribute record length
  writeBoth32(target, offset + 2, extent);
  writeBoth32(target, offset + 10, dataLength);
  // TypedArray#set: for a few bytes, Buffer#copy's argument handling costs more than the copy.
  target.set(recordingDateOf(recordedAt), offset + 18);
  target[offset + 25] = isDirectory ? FLAG_DIRECTORY : 0;
  target[offset + 26] = 0; // file unit size (not interleaved)
  target[offset + 27] = 0; // interleave gap
  writeBoth16(target, offset + 28, 1); // volume sequence number
  target[offset + 32] = identifierLength;
}

function systemUseLength(entries: readonly Buffer[] | undefined): number {
  let length = 0;
  for (const entry of entries ?? []) length += entry.length;
  return length;
}

/** Every record of an image carries the same date: keep the last encoding (keyed by its time value). */
let cachedTime = Number.NaN;
let cachedDate: Buffer = Buffer.alloc(7);
function recordingDateOf(date: Date): Buffer {
  if (date.getTime() !== cachedTime) {
    cachedDate = recordingDate(date);
    cachedTime = date.getTime();
  }
  return cachedDate;
}
