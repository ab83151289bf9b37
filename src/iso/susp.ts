// SUSP 1.12 (IEEE P1281): the entries that frame Rock Ridge — SP, CE, ER — and the packing of a
// record's entries into its system use area plus continuation areas when they do not fit.
import { SECTOR_SIZE, writeBoth32 } from './fields.js';

/** Every SUSP entry: 2-byte signature, length, version, data (SUSP 4.1). */
export function suspEntry(signature: string, version: number, data: Buffer): Buffer {
  const out = newSuspEntry(signature, version, data.length);
  data.copy(out, 4);
  return out;
}

/** An entry with its header written and `dataLength` bytes from offset 4 left to the caller to fill. */
function newSuspEntry(signature: string, version: number, dataLength: number): Buffer {
  const out = Buffer.allocUnsafe(4 + dataLength);
  writeSuspHeader(out, 0, signature, version, 4 + dataLength);
  return out;
}

export function writeSuspHeader(target: Buffer, offset: number, signature: string, version: number, length: number): void {
  if (length > 255) throw new RangeError(`SUSP ${signature} entry of ${length} bytes exceeds 255`);
  target[offset] = signature.charCodeAt(0);
  target[offset + 1] = signature.charCodeAt(1);
  target[offset + 2] = length;
  target[offset + 3] = version;
}

/** SUSP 5.3 SP: marks SUSP in use; first entry of the root's "." record. No bytes skipped. */
export function spEntry(): Buffer {
  return suspEntry('SP', 1, Buffer.from([0xbe, 0xef, 0]));
}

export const CE_ENTRY_SIZE = 28;

/** SUSP 5.1 CE: where the rest of this record's entries continue. */
export function ceEntry(location: ContinuationLocation): Buffer {
  const out = newSuspEntry('CE', 1, 24);
  writeBoth32(out, 4, location.sector);
  writeBoth32(out, 12, location.offset);
  writeBoth32(out, 20, location.length);
  return out;
}

/** SUSP 5.5 ER: names the extension in use (Rock Ridge, RRIP 1.12 = "IEEE_1282"). */
export function erEntry(identifier: string, descriptor: string, source: string, extensionVersion: number): Buffer {
  const id = Buffer.from(identifier, 'latin1');
  const des = Buffer.from(descriptor, 'latin1');
  const src = Buffer.from(source, 'latin1');
  const head = Buffer.from([id.length, des.length, src.length, extensionVersion]);
  return suspEntry('ER', 1, Buffer.concat([head, id, des, src]));
}

export interface ContinuationLocation {
  readonly sector: number;
  readonly offset: number;
  readonly length: number;
}

/** A record's entries split between its own system use area and chained continuation areas. */
export interface SystemUsePacking {
  readonly inline: readonly Buffer[];
  /** Each area ≤ one sector, so it never straddles a block; all but the last end with a CE. */
  readonly areas: readonly (readonly Buffer[])[];
}

/**
 * Keeps entries in the record while they fit in `inlineCapacity`; otherwise leaves room for a CE
 * and moves the rest into areas of at most one sector each.
 */
export function packSystemUse(entries: readonly Buffer[], inlineCapacity: number): SystemUsePacking {
  const total = entries.reduce((sum, e) => sum + e.length, 0);
  if (total <= inlineCapacity) return { inline: entries, areas: [] };
  const inline: Buffer[] = [];
  let used = 0;
  let i = 0;
  while (i < entries.length && used + (entries[i] as Buffer).length + CE_ENTRY_SIZE <= inlineCapacity) {
    used += (entries[i] as Buffer).length;
    inline.push(entries[i] as Buffer);
    i++;
  }
  const areas: Buffer[][] = [];
  while (i < entries.length) {
    const area: Buffer[] = [];
    let areaUsed = 0;
    while (i < entries.length) {
      const entry = entries[i] as Buffer;
      const restFits = remaining(entries, i) <= SECTOR_SIZE - areaUsed;
      if (!restFits && areaUsed + entry.length + CE_ENTRY_SIZE > SECTOR_SIZE) break;
      area.push(entry);
      areaUsed += entry.length;
      i++;
    }
    areas.push(area);
  }
  return { inline, areas };
}

function remaining(entries: readonly Buffer[], from: number): number {
  let sum = 0;
  for (let i = from; i < entries.length; i++) sum += (entries[i] as Buffer).length;
  return sum;
}

/** Byte length of a continuation area as written (entries plus the CE that chains to the next). */
export function areaLength(packing: SystemUsePacking, index: number): number {
  const area = packing.areas[index] ?? [];
  const chained = index + 1 < packing.areas.length ? CE_ENTRY_SIZE : 0;
  return area.reduce((sum, e) => sum + e.length, 0) + chained;
}

export function inlineLength(packing: SystemUsePacking): number {
  return packing.inline.reduce((sum, e) => sum + e.length, 0) + (packing.areas.length > 0 ? CE_ENTRY_SIZE : 0);
}
