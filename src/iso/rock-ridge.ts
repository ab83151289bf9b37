// RRIP 1.12 (IEEE P1282) entries: PX (mode, links, owner, serial), NM (real name), TF (times),
// SL (symlink target). Each is a SUSP entry; long NM and SL values are split over several entries
// with the CONTINUE flag, since one entry holds at most 250 data bytes.
import { recordingDate, writeBoth32 } from './fields.js';
import { suspEntry, writeSuspHeader } from './susp.js';

export const RRIP_ID = 'IEEE_1282';
export const RRIP_DESCRIPTOR = 'THE IEEE 1282 PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS.';
export const RRIP_SOURCE = 'PLEASE CONTACT THE IEEE STANDARDS DEPARTMENT, PISCATAWAY, NJ, USA FOR THE 1282 SPECIFICATION.';

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

const MAX_ENTRY_DATA = 250;
const NM_CONTINUE = 0x01;
const SL_CONTINUE = 0x01;
const SL_COMPONENT_CONTINUE = 0x01;
const SL_CURRENT = 0x02;
const SL_PARENT = 0x04;
const SL_ROOT = 0x08;

export interface PosixAttributes {
  /** File type and permission bits, as st_mode. */
  readonly mode: number;
  readonly links: number;
  readonly serial: number;
}

export const PX_ENTRY_SIZE = 44;

/** RRIP 4.1.1 PX, 44 bytes: mode, links, uid, gid (always 0: images carry no host identity), serial. */
export function pxEntry(attributes: PosixAttributes): Buffer {
  const out = Buffer.allocUnsafe(PX_ENTRY_SIZE);
  writePxEntry(out, 0, attributes);
  return out;
}

export function writePxEntry(target: Buffer, offset: number, attributes: PosixAttributes): void {
  writeSuspHeader(target, offset, 'PX', 1, PX_ENTRY_SIZE);
  writeBoth32(target, offset + 4, attributes.mode);
  writeBoth32(target, offset + 12, attributes.links);
  writeBoth32(target, offset + 20, 0);
  writeBoth32(target, offset + 28, 0);
  writeBoth32(target, offset + 36, attributes.serial);
}

/** RRIP 4.1.6 TF: modification, access and attribute-change times, all the injected timestamp. */
export function tfEntry(time: Date): Buffer {
  const stamp = recordingDate(time);
  const flags = 0x02 | 0x04 | 0x08;
  return suspEntry('TF', 1, Buffer.concat([Buffer.from([flags]), stamp, stamp, stamp]));
}

/** RRIP 4.1.4 NM: the real name, UTF-8 bytes, split into entries of ≤ 250 bytes. */
export function nmEntries(name: string): Buffer[] {
  // Most names fit one entry: encode them straight into it.
  const length = Buffer.byteLength(name, 'utf8');
  const size = singleNmEntrySize(length);
  if (size !== undefined) {
    const entry = Buffer.allocUnsafe(size);
    writeSingleNmEntry(entry, 0, name, size);
    return [entry];
  }
  const bytes = Buffer.from(name, 'utf8');
  const out: Buffer[] = [];
  for (let offset = 0; offset < bytes.length || out.length === 0; offset += MAX_ENTRY_DATA - 1) {
    const chunk = bytes.subarray(offset, offset + MAX_ENTRY_DATA - 1);
    const more = offset + MAX_ENTRY_DATA - 1 < bytes.length;
    out.push(suspEntry('NM', 1, Buffer.concat([Buffer.from([more ? NM_CONTINUE : 0]), chunk])));
  }
  return out;
}

/** Size of the one NM entry of a name of `byteLength` UTF-8 bytes; undefined if it takes several. */
export function singleNmEntrySize(byteLength: number): number | undefined {
  return byteLength < MAX_ENTRY_DATA ? 5 + byteLength : undefined;
}

/** Writes the one NM entry of `name`, `size` bytes as given by singleNmEntrySize. */
export function writeSingleNmEntry(target: Buffer, offset: number, name: string, size: number): void {
  writeSuspHeader(target, offset, 'NM', 1, size);
  target[offset + 4] = 0;
  // ASCII (the NM is one byte longer than the name's units): byte stores beat Buffer#write for short names.
  if (size === 5 + name.length) {
    for (let i = 0; i < name.length; i++) target[offset + 5 + i] = name.charCodeAt(i);
  } else {
    target.write(name, offset + 5, 'utf8');
  }
}

/** RRIP 4.1.3 SL: the target as component records; entries chained with the CONTINUE flag. */
export function slEntries(target: string): Buffer[] {
  const components = slComponents(target);
  const entries: Buffer[][] = [[]];
  let used = 0;
  for (const component of components) {
    if (used + component.length > MAX_ENTRY_DATA - 1) {
      entries.push([]);
      used = 0;
    }
    (entries[entries.length - 1] as Buffer[]).push(component);
    used += component.length;
  }
  return entries.map((parts, index) => {
    const flags = index + 1 < entries.length ? SL_CONTINUE : 0;
    return suspEntry('SL', 1, Buffer.concat([Buffer.from([flags]), ...parts]));
  });
}

/** Component records (flags, length, bytes); a name longer than one record continues in the next. */
export function slComponents(target: string): Buffer[] {
  const out: Buffer[] = [];
  const absolute = target.startsWith('/');
  if (absolute) out.push(Buffer.from([SL_ROOT, 0]));
  const names = (absolute ? target.slice(1) : target).split('/');
  if (absolute && names.length === 1 && names[0] === '') return out;
  // Records of at most 248 content bytes, so one always fits an entry next to its 2-byte header.
  const maxContent = MAX_ENTRY_DATA - 1 - 2 - 1;
  for (const name of names) {
    if (name === '.') out.push(Buffer.from([SL_CURRENT, 0]));
    else if (name === '..') out.push(Buffer.from([SL_PARENT, 0]));
    else {
      const bytes = Buffer.from(name, 'utf8');
      let offset = 0;
      do {
        const chunk = bytes.subarray(offset, offset + maxContent);
        offset += maxContent;
        const more = offset < bytes.length;
        out.push(Buffer.concat([Buffer.from([more ? SL_COMPONENT_CONTINUE : 0, chunk.length]), chunk]));
      } while (offset < bytes.length);
    }
  }
  return out;
}
