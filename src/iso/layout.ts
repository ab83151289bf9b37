// The pure layout step: a checked tree becomes a sector plan. Nothing here touches the disk or the
// clock; the same tree and options always give the same plan, hence the same image bytes.
//
// Sector map: 0–15 system area (zeros) · 16 primary VD · 17 Joliet SVD · 18 terminator · path tables
// (ISO L, ISO M, Joliet L, Joliet M) · ISO directories · Joliet directories · continuation areas ·
// file contents (in depth-first name order, each starting on a sector).
import { IsoInputError, IsoLimitError } from './errors.js';
import { SECTOR_SIZE, isRecordableDate, sectorsFor, utf16be } from './fields.js';
import { MAX_RECORD_SIZE, directoryRecordSize, recordPrefixSize } from './directory-record.js';
import { compareIsoIdentifiers, isoIdentifiers, jolietIdentifiers } from './identifiers.js';
import { MAX_DIRECTORIES, pathTableRecordSize } from './path-table.js';
import { PX_ENTRY_SIZE, S_IFDIR, S_IFLNK, S_IFREG, RRIP_DESCRIPTOR, RRIP_ID, RRIP_SOURCE, nmEntries, pxEntry, singleNmEntrySize, slEntries, tfEntry, type PosixAttributes } from './rock-ridge.js';
import { areaLength, erEntry, inlineLength, packSystemUse, spEntry, type ContinuationLocation, type SystemUsePacking } from './susp.js';
import type { TreeNode } from './tree.js';

export interface LayoutOptions {
  /** ISO9660 volume identifier: 1–32 d-characters (A–Z, 0–9, _). */
  readonly volumeId: string;
  /** Joliet volume identifier (what Windows shows): up to 16 UTF-16 units. */
  readonly label: string;
  /** Publisher identifier: printable ASCII, up to 128 characters. */
  readonly publisher: string;
  /** Every timestamp in the image: volume dates, record dates, Rock Ridge TF. */
  readonly timestamp: Date;
}

export interface FilePlan {
  readonly node: TreeNode;
  /** 0 for empty files: they own no sector. */
  sector: number;
}

export interface RecordPlan {
  /**
   * The identifier as text, encoded by the writer straight into the directory: one byte per
   * character (ISO d-characters, and "." = 0x00 / ".." = 0x01 in both trees), or UTF-16 big-endian
   * when `utf16` (Joliet names). No buffer per record.
   */
  readonly identifier: string;
  readonly utf16: boolean;
  /** Bytes of the encoded identifier. */
  readonly identifierLength: number;
  /** What the record describes: itself for ".", the parent for "..", else the child. */
  readonly node: TreeNode;
  /** Rock Ridge entries as buffers (ISO tree: ".", "..", and children whose entries need more than the record). */
  readonly systemUse: SystemUsePlan | undefined;
  /**
   * Nearly every child: its Rock Ridge entries are PX, TF and a single NM that fit the record, and
   * the writer encodes them in place from this identity (systemUse is then undefined).
   */
  readonly direct: DirectRockRidge | undefined;
}

export interface DirectRockRidge {
  readonly identity: Identity;
  /** Bytes of the NM entry. */
  readonly nmSize: number;
  /** PX + TF + NM. */
  readonly length: number;
}

export interface SystemUsePlan {
  readonly packing: SystemUsePacking;
  /** Where each continuation area of `packing` was placed. */
  readonly areas: ContinuationLocation[];
}

export interface DirectoryPlan {
  readonly node: TreeNode;
  /** 1-based number in the path table. */
  readonly number: number;
  readonly parent: DirectoryPlan | undefined;
  /** Identifier in the parent (root: 0x00). */
  readonly identifier: Buffer;
  readonly records: RecordPlan[];
  /** Byte offset of each record inside the directory extent. */
  readonly recordOffsets: number[];
  /** Bytes, a whole number of sectors. */
  readonly size: number;
  sector: number;
}

export interface HierarchyPlan {
  /** In path-table order, which is also the order they are written in. */
  readonly directories: DirectoryPlan[];
  readonly directoryOf: ReadonlyMap<TreeNode, DirectoryPlan>;
  readonly pathTableSize: number;
  lPathTableSector: number;
  mPathTableSector: number;
}

export interface IsoPlan {
  readonly options: LayoutOptions;
  readonly iso: HierarchyPlan;
  readonly joliet: HierarchyPlan;
  readonly continuationSector: number;
  readonly continuationSectors: number;
  /** TF of every Rock Ridge record: all carry the same times. */
  readonly tf: Buffer;
  /** Every continuation area with its records, in sector order, for the writer. */
  readonly continuationAreas: { readonly location: ContinuationLocation; readonly entries: readonly Buffer[]; readonly next: ContinuationLocation | undefined }[];
  readonly files: FilePlan[];
  readonly fileOf: ReadonlyMap<TreeNode, FilePlan>;
  readonly totalSectors: number;
}

export const FIRST_DESCRIPTOR_SECTOR = 16;
const DESCRIPTOR_SECTORS = 3;
const MAX_SECTORS = 0xffff_ffff;
/** Root "." carries SP first (SUSP 5.3), then attributes, then ER (it lands in a continuation area). Entries are never modified: shared. */
const SP = spEntry();
const RRIP_ER = erEntry(RRIP_ID, RRIP_DESCRIPTOR, RRIP_SOURCE, 1);
/** The identifiers of "." and ".." (§6.8.2.2), one byte each in both trees. */
const SELF_ID = '\0';
const PARENT_ID = '\x01';

export function layoutIso(root: TreeNode, options: LayoutOptions): IsoPlan {
  checkOptions(options);
  const { files, serials } = visitTree(root);
  const fileOf = new Map(files.map((f) => [f.node, f]));
  // Every record carries the same times: encode TF once.
  const tf = tfEntry(options.timestamp);
  const iso = planHierarchy(root, 'iso', serials, tf);
  const joliet = planHierarchy(root, 'joliet', serials, tf);

  let sector = FIRST_DESCRIPTOR_SECTOR + DESCRIPTOR_SECTORS;
  for (const tree of [iso, joliet]) {
    tree.lPathTableSector = sector;
    sector += sectorsFor(tree.pathTableSize);
    tree.mPathTableSector = sector;
    sector += sectorsFor(tree.pathTableSize);
  }
  for (const tree of [iso, joliet]) {
    for (const dir of tree.directories) {
      dir.sector = sector;
      sector += dir.size / SECTOR_SIZE;
    }
  }
  const continuationSector = sector;
  const continuationAreas = placeContinuationAreas(iso, continuationSector);
  const continuationSectors = continuationAreas.length === 0 ? 0 : (continuationAreas[continuationAreas.length - 1] as { location: ContinuationLocation }).location.sector - continuationSector + 1;
  sector += continuationSectors;
  for (const file of files) {
    if (file.node.size === 0) continue;
    file.sector = sector;
    sector += sectorsFor(file.node.size);
    if (sector > MAX_SECTORS) throw new IsoLimitError(file.node.path, 'image would exceed 2^32 sectors (8 TiB)');
  }
  return { options, iso, joliet, tf, continuationSector, continuationSectors, continuationAreas, files, fileOf, totalSectors: sector };
}

function checkOptions(options: LayoutOptions): void {
  if (!/^[A-Z0-9_]{1,32}$/.test(options.volumeId)) {
    throw new IsoInputError(undefined, `volume id ${JSON.stringify(options.volumeId)} must be 1–32 characters of A–Z, 0–9, _`);
  }
  if (options.label.length > 16 || options.label.includes('\0')) {
    throw new IsoInputError(undefined, `label ${JSON.stringify(options.label)} must be at most 16 characters without NUL (Joliet volume identifier)`);
  }
  if (!/^[\x20-\x7e]{0,128}$/.test(options.publisher)) {
    throw new IsoInputError(undefined, 'publisher must be at most 128 printable ASCII characters');
  }
  if (!isRecordableDate(options.timestamp)) {
    throw new IsoInputError(undefined, 'timestamp must be a valid date between 1900 and 2155 (ECMA-119 9.1.5)');
  }
}

export interface Identity {
  /** Rock Ridge PX serial number ("inode number"): depth-first order, root = 1. */
  readonly serial: number;
  /** POSIX link count: 1 for files and symlinks, 2 + subdirectories for directories. */
  readonly links: number;
  /** The node's PX entry, encoded on first use: a directory's appears in up to three records. */
  px: Buffer | undefined;
}

/**
 * One depth-first walk: the files in content order, each node's identity (serials in the same
 * order, root = 1), and the check that the path table can number every directory.
 */
function visitTree(root: TreeNode): { files: FilePlan[]; serials: Map<TreeNode, Identity> } {
  const files: FilePlan[] = [];
  const serials = new Map<TreeNode, Identity>();
  let directories = 0;
  const visit = (node: TreeNode): void => {
    let subdirectories = 0;
    if (node.kind === 'dir') {
      directories++;
      if (directories > MAX_DIRECTORIES) throw new IsoLimitError(node.path, `more than ${MAX_DIRECTORIES} directories (ECMA-119 path table limit)`);
      for (const child of node.children) if (child.kind === 'dir') subdirectories++;
    } else if (node.kind === 'file') {
      files.push({ node, sector: 0 });
    }
    serials.set(node, { serial: serials.size + 1, links: node.kind === 'dir' ? 2 + subdirectories : 1, px: undefined });
    for (const child of node.children) visit(child);
  };
  visit(root);
  return { files, serials };
}

function planHierarchy(root: TreeNode, kind: 'iso' | 'joliet', identities: Map<TreeNode, Identity>, tf: Buffer): HierarchyPlan {
  const rockRidge = kind === 'iso';
  const px = (node: TreeNode): Buffer => pxOf(node, identities);
  const directories: DirectoryPlan[] = [];
  const directoryOf = new Map<TreeNode, DirectoryPlan>();
  const pending: { node: TreeNode; parent: DirectoryPlan | undefined; identifier: Buffer }[] = [{ node: root, parent: undefined, identifier: Buffer.from([0]) }];
  const systemUse = (entries: Buffer[], identifierLength: number): SystemUsePlan => ({ packing: packSystemUse(entries, inlineCapacity(identifierLength)), areas: [] });
  let pathTableBytes = 0;

  // Breadth-first with children in identifier order = ECMA-119 9.4 path table order.
  for (let i = 0; i < pending.length; i++) {
    const { node, parent, identifier } = pending[i] as (typeof pending)[number];
    // Joliet has no symlinks: a Joliet-only reader would see an empty file, which is worse than nothing.
    const children = rockRidge ? node.children : node.children.filter((c) => c.kind !== 'symlink');
    const specs = children.map((c) => ({ name: c.name, isDir: c.kind === 'dir' }));
    const ids = rockRidge ? isoIdentifiers(specs) : jolietIdentifiers(specs);
    const named = children.map((child, index) => ({ child, id: ids[index] as string }));
    // Joliet order is the order of the UCS-2 code units, which is how JavaScript compares strings.
    named.sort(rockRidge ? (a, b) => compareIsoIdentifiers(a.id, b.id) : (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

    const parentNode = parent?.node ?? node;
    const records: RecordPlan[] = [
      { identifier: SELF_ID, utf16: false, identifierLength: 1, node, systemUse: rockRidge ? systemUse(parent === undefined ? [SP, px(node), tf, RRIP_ER] : [px(node), tf], 1) : undefined, direct: undefined },
      { identifier: PARENT_ID, utf16: false, identifierLength: 1, node: parentNode, systemUse: rockRidge ? systemUse([px(parentNode), tf], 1) : undefined, direct: undefined },
    ];
    for (const { child, id } of named) {
      // ISO identifiers are d-characters (one byte each); Joliet ones UTF-16 (two per code unit).
      const identifierLength = rockRidge ? id.length : 2 * id.length;
      if (!rockRidge) {
        records.push({ identifier: id, utf16: true, identifierLength, node: child, systemUse: undefined, direct: undefined });
        continue;
      }
      const direct = directRockRidge(child, identities, tf.length, identifierLength);
      records.push({
        identifier: id,
        utf16: false,
        identifierLength,
        node: child,
        systemUse: direct === undefined ? systemUse(childEntries(child, identities, tf), identifierLength) : undefined,
        direct,
      });
    }
    const recordOffsets: number[] = [];
    const size = packRecords(records, recordOffsets);
    const plan: DirectoryPlan = { node, number: directories.length + 1, parent, identifier, records, recordOffsets, size, sector: 0 };
    directories.push(plan);
    directoryOf.set(node, plan);
    pathTableBytes += pathTableRecordSize(identifier.length);
    for (let r = 2; r < records.length; r++) {
      const record = records[r] as RecordPlan;
      // Directories are few: only their identifiers become buffers (for the path tables).
      if (record.node.kind === 'dir') pending.push({ node: record.node, parent: plan, identifier: record.utf16 ? utf16be(record.identifier) : Buffer.from(record.identifier, 'latin1') });
    }
  }
  return { directories, directoryOf, pathTableSize: pathTableBytes, lPathTableSector: 0, mPathTableSector: 0 };
}

/** Where a record points: its directory's extent, its file's extent, or nothing (symlinks, empty files). */
export function recordExtent(plan: IsoPlan, tree: HierarchyPlan, record: RecordPlan): { sector: number; dataLength: number } {
  const node = record.node;
  if (node.kind === 'dir') {
    const dir = tree.directoryOf.get(node);
    if (dir === undefined) throw new Error(`layout bug: no directory plan for ${node.path}`);
    return { sector: dir.sector, dataLength: dir.size };
  }
  if (node.kind === 'file') return { sector: plan.fileOf.get(node)?.sector ?? 0, dataLength: node.size };
  return { sector: 0, dataLength: 0 };
}

/** When a child's Rock Ridge entries are PX, TF and one NM that fit its record (nearly always): what the writer needs to encode them in place. */
function directRockRidge(child: TreeNode, identities: Map<TreeNode, Identity>, tfLength: number, identifierLength: number): DirectRockRidge | undefined {
  if (child.kind === 'symlink') return undefined;
  const nmSize = singleNmEntrySize(utf8Length(child.name));
  if (nmSize === undefined) return undefined;
  const length = PX_ENTRY_SIZE + tfLength + nmSize;
  if (length > inlineCapacity(identifierLength)) return undefined;
  return { identity: identityOf(child, identities), nmSize, length };
}

/** UTF-8 length of a well-formed string (tree.ts rejects lone surrogates), counted without encoding it. */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // Surrogate pairs: 2 units, 4 bytes (+1 each); other units ≥ 0x80 take 2 or 3 bytes.
    if (unit >= 0x80) bytes += unit >= 0x800 && (unit < 0xd800 || unit > 0xdfff) ? 2 : 1;
  }
  return bytes;
}

/** A child's Rock Ridge entries as buffers, when they do not fit its record or include SL: PX, TF, NM, SL. */
function childEntries(child: TreeNode, identities: Map<TreeNode, Identity>, tf: Buffer): Buffer[] {
  const entries = [pxOf(child, identities), tf, ...nmEntries(child.name)];
  if (child.kind === 'symlink') entries.push(...slEntries(child.target ?? ''));
  return entries;
}

/** System use bytes a record can hold: 254, not 255, as the record length must stay even (SUSP 4.1). */
function inlineCapacity(identifierLength: number): number {
  return MAX_RECORD_SIZE - 1 - recordPrefixSize(identifierLength);
}

function identityOf(node: TreeNode, identities: Map<TreeNode, Identity>): Identity {
  const identity = identities.get(node);
  if (identity === undefined) throw new Error(`layout bug: no serial for ${node.path}`);
  return identity;
}

export function attributesOf(node: TreeNode, identity: Identity): PosixAttributes {
  const type = node.kind === 'dir' ? S_IFDIR : node.kind === 'symlink' ? S_IFLNK : S_IFREG;
  return { mode: type | node.mode, links: identity.links, serial: identity.serial };
}

function pxOf(node: TreeNode, identities: Map<TreeNode, Identity>): Buffer {
  const identity = identityOf(node, identities);
  identity.px ??= pxEntry(attributesOf(node, identity));
  return identity.px;
}

/** Places records one after another, moving to the next sector when one would straddle it (§6.8.1.1). */
function packRecords(records: readonly RecordPlan[], offsets: number[]): number {
  let offset = 0;
  for (const record of records) {
    const systemUseLength = record.direct !== undefined ? record.direct.length : record.systemUse === undefined ? 0 : inlineLength(record.systemUse.packing);
    const size = directoryRecordSize(record.identifierLength, systemUseLength);
    if (Math.floor(offset / SECTOR_SIZE) !== Math.floor((offset + size - 1) / SECTOR_SIZE)) {
      offset = Math.ceil(offset / SECTOR_SIZE) * SECTOR_SIZE;
    }
    offsets.push(offset);
    offset += size;
  }
  return Math.max(1, sectorsFor(offset)) * SECTOR_SIZE;
}

/** Packs all continuation areas of the Rock Ridge tree into sectors; an area never crosses one. */
function placeContinuationAreas(tree: HierarchyPlan, firstSector: number): IsoPlan['continuationAreas'] {
  const out: { location: ContinuationLocation; entries: readonly Buffer[]; next: ContinuationLocation | undefined }[] = [];
  let sector = firstSector;
  let offset = 0;
  for (const dir of tree.directories) {
    for (const record of dir.records) {
      const plan = record.systemUse;
      if (plan === undefined || plan.packing.areas.length === 0) continue;
      plan.packing.areas.forEach((_, index) => {
        const length = areaLength(plan.packing, index);
        if (offset + length > SECTOR_SIZE) {
          sector++;
          offset = 0;
        }
        plan.areas.push({ sector, offset, length });
        offset += length;
      });
      plan.packing.areas.forEach((entries, index) => {
        out.push({ location: plan.areas[index] as ContinuationLocation, entries, next: plan.areas[index + 1] });
      });
    }
  }
  return out;
}
