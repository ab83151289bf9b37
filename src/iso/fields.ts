// Field encodings shared by every ECMA-119 structure: both-endian integers (§7.2, §7.3), the
// 7-byte directory-record date (§9.1.5), the 17-byte volume-descriptor date (§8.4.26.1) and
// space-padded character fields.

export const SECTOR_SIZE = 2048;

/**
 * A zero-filled buffer from Node's shared pool. Buffer.alloc gives every small buffer its own
 * ArrayBuffer, and the thousands of tiny structures of a layout then dominate garbage collection.
 */
export function zeroed(size: number): Buffer {
  return Buffer.allocUnsafe(size).fill(0);
}

/** ECMA-119 7.2.3: 16-bit value, little-endian then big-endian (4 bytes). */
export function writeBoth16(target: Buffer, offset: number, value: number): void {
  checkUint(value, 0xffff);
  if (offset < 0 || offset + 4 > target.length) throw new RangeError(`offset ${offset} out of range`);
  target[offset] = target[offset + 3] = value & 0xff;
  target[offset + 1] = target[offset + 2] = value >>> 8;
}

/**
 * ECMA-119 7.3.3: 32-bit value, little-endian then big-endian (8 bytes). Byte stores: a directory
 * record takes several of these, and Buffer#writeUInt32LE/BE's argument checks cost more than the writes.
 */
export function writeBoth32(target: Buffer, offset: number, value: number): void {
  checkUint(value, 0xffff_ffff);
  if (offset < 0 || offset + 8 > target.length) throw new RangeError(`offset ${offset} out of range`);
  const b0 = value & 0xff;
  const b1 = (value >>> 8) & 0xff;
  const b2 = (value >>> 16) & 0xff;
  const b3 = value >>> 24;
  target[offset] = b0;
  target[offset + 1] = b1;
  target[offset + 2] = b2;
  target[offset + 3] = b3;
  target[offset + 4] = b3;
  target[offset + 5] = b2;
  target[offset + 6] = b1;
  target[offset + 7] = b0;
}

/** What Buffer#writeUInt* would have thrown for: a value that does not fit the field is a bug, never truncated. */
function checkUint(value: number, max: number): void {
  if (!(value >= 0 && value <= max && Number.isInteger(value))) throw new RangeError(`value ${value} out of range 0–${max}`);
}

/** ECMA-119 9.1.5: years since 1900, month, day, hour, minute, second, GMT offset (always UTC here). */
export function recordingDate(date: Date): Buffer {
  const out = zeroed(7);
  out[0] = date.getUTCFullYear() - 1900;
  out[1] = date.getUTCMonth() + 1;
  out[2] = date.getUTCDate();
  out[3] = date.getUTCHours();
  out[4] = date.getUTCMinutes();
  out[5] = date.getUTCSeconds();
  out[6] = 0;
  return out;
}

/** ECMA-119 8.4.26.1: "YYYYMMDDHHMMSScc" digits then a GMT offset byte; `undefined` = not specified. */
export function writeVolumeDate(target: Buffer, offset: number, date: Date | undefined): void {
  target[offset + 16] = 0;
  if (date === undefined) {
    target.fill(0x30, offset, offset + 16);
    return;
  }
  const pad = (value: number, width: number): string => String(value).padStart(width, '0');
  const text =
    pad(date.getUTCFullYear(), 4) +
    pad(date.getUTCMonth() + 1, 2) +
    pad(date.getUTCDate(), 2) +
    pad(date.getUTCHours(), 2) +
    pad(date.getUTCMinutes(), 2) +
    pad(date.getUTCSeconds(), 2) +
    pad(Math.floor(date.getUTCMilliseconds() / 10), 2);
  target.write(text, offset, 'latin1');
}

/** An a-/d-character field: ASCII, padded with spaces to `width` (ECMA-119 7.4.3). */
export function writeAsciiField(target: Buffer, offset: number, text: string, width: number): void {
  const written = target.write(text.slice(0, width), offset, width, 'latin1');
  target.fill(0x20, offset + written, offset + width);
}

/** A Joliet character field: UCS-2 big-endian, padded with UCS-2 spaces (0x0020). */
export function writeUcs2Field(target: Buffer, offset: number, text: string, width: number): void {
  const units = Math.min(text.length, width >> 1);
  for (let i = 0; i < units; i++) {
    const unit = text.charCodeAt(i);
    target[offset + 2 * i] = unit >>> 8;
    target[offset + 2 * i + 1] = unit & 0xff;
  }
  for (let i = 2 * units; i + 1 < width; i += 2) {
    target[offset + i] = 0;
    target[offset + i + 1] = 0x20;
  }
  if (width % 2 === 1) target[offset + width - 1] = 0;
}

/** UTF-16 big-endian bytes of a string (Joliet names; surrogate pairs kept as pairs). */
export function utf16be(text: string): Buffer {
  // Node's UTF-16 encoder copies code units as they are (lone surrogates too); only the byte order differs.
  return Buffer.from(text, 'utf16le').swap16();
}

export function sectorsFor(bytes: number): number {
  return Math.ceil(bytes / SECTOR_SIZE);
}

/** The supported timestamp range of the 7-byte date (years 1900–2155); checked once up front. */
export function isRecordableDate(date: Date): boolean {
  const year = date.getUTCFullYear();
  return Number.isFinite(date.getTime()) && year >= 1900 && year <= 2155;
}
