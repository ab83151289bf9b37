// The write step: a plan becomes bytes. The metadata area (system area, descriptors, path tables,
// directories, continuation areas) is rendered in one piece, each structure encoded in place; it
// grows with the number of entries, like the plan itself (a few hundred bytes each), never with
// their size. File contents then follow: an image of at most WHOLE_IMAGE_LIMIT bytes is assembled
// in one buffer (one allocation, one write); a larger one streams as chunks of about 1 MiB with file
// contents read straight into them, so memory stays bounded by the chunk size, not by the size of
// the tree. Both ways share every encoder; the bytes are the same (writer.test.ts).
import { closeSync, fstatSync, openSync, readSync, readvSync } from 'node:fs';
import { IsoWriteError } from './errors.js';
import { SECTOR_SIZE, sectorsFor } from './fields.js';
import { RECORD_HEADER_SIZE, directoryRecordSize, encodeDirectoryRecord, recordPrefixSize, writeRecordHeader } from './directory-record.js';
import { FIRST_DESCRIPTOR_SECTOR, attributesOf, recordExtent, type DirectoryPlan, type HierarchyPlan, type IsoPlan, type RecordPlan } from './layout.js';
import { PX_ENTRY_SIZE, writePxEntry, writeSingleNmEntry } from './rock-ridge.js';
import { writePathTable } from './path-table.js';
import { ceEntry } from './susp.js';
import { writeJolietVolumeDescriptor, writePrimaryVolumeDescriptor, writeTerminatorDescriptor } from './volume-descriptor.js';
import type { TreeNode } from './tree.js';

/** Size of the reads from source files; also the batch size of small chunks. */
export const CHUNK_SIZE = 1 << 20;
/** Images up to this size are rendered whole: the same memory a streamed image's chunk takes. */
export const WHOLE_IMAGE_LIMIT = CHUNK_SIZE;
const APPLICATION_ID = 'RECONTEXT';

/**
 * With `reuse`, an image of up to WHOLE_IMAGE_LIMIT bytes is rendered into memory kept for the next
 * call: the consumer must be done with it before the next render (the blocking file writer is).
 * A fresh buffer costs a page fault per 4 KiB on first touch, more than rendering a small image.
 */
let spare: Buffer | undefined;

/** The whole image in one buffer (for small images, and whenever the caller wants it in memory). */
export function renderWhole(plan: IsoPlan, options: { reuse?: boolean } = {}): Buffer {
  const size = plan.totalSectors * SECTOR_SIZE;
  let image: Buffer;
  // Reused memory holds the last image: zero what the contents do not overwrite — the metadata
  // area and the tail of each file's last sector — rather than the whole image first.
  let reused = false;
  if (options.reuse === true && size <= WHOLE_IMAGE_LIMIT) {
    spare ??= Buffer.alloc(WHOLE_IMAGE_LIMIT);
    image = spare.subarray(0, size);
    zero(image, 0, metadataSectors(plan) * SECTOR_SIZE);
    reused = true;
  } else {
    image = Buffer.alloc(size);
  }
  renderMetadata(plan, image);
  for (const file of plan.files) {
    const { node } = file;
    if (node.size === 0 || node.content === undefined) continue;
    const at = file.sector * SECTOR_SIZE;
    if (Buffer.isBuffer(node.content)) image.set(node.content, at);
    else copySource(node, node.content.fromFile, image, at);
    if (reused) zero(image, at + node.size, at + sectorsFor(node.size) * SECTOR_SIZE);
  }
  return image;
}

/** TypedArray#fill: for the many small ranges here, Buffer#fill's argument handling costs more than the fill. */
function zero(target: Buffer, from: number, to: number): void {
  Uint8Array.prototype.fill.call(target, 0, from, to);
}

/**
 * Yields the image in order; the concatenation of the chunks is the image. With `reuseChunks`
 * the next chunk is filled into the same memory, so a consumer must be done with a chunk before it
 * asks for the next one (a blocking file writer is; a stream or a list of chunks is not).
 */
export function* renderImage(plan: IsoPlan, options: { reuseChunks?: boolean } = {}): Generator<Buffer> {
  const batch = new ChunkBatch(options.reuseChunks ?? false);
  const metadata = Buffer.alloc(metadataSectors(plan) * SECTOR_SIZE);
  renderMetadata(plan, metadata);
  yield* batch.append(metadata);
  for (const file of plan.files) {
    const { node } = file;
    if (node.size === 0 || node.content === undefined) continue;
    if (Buffer.isBuffer(node.content)) yield* batch.append(node.content);
    else yield* streamSource(batch, node, node.content.fromFile);
    yield* batch.zeros(sectorsFor(node.size) * SECTOR_SIZE - node.size);
  }
  const rest = batch.flush();
  if (rest !== undefined) yield rest;
}

/** Sectors before the first file's contents: everything renderMetadata writes. */
function metadataSectors(plan: IsoPlan): number {
  return plan.continuationSector + plan.continuationSectors;
}

/** Encodes every structure of the metadata area in place; `target` starts at sector 0 and holds zeros. */
function renderMetadata(plan: IsoPlan, target: Buffer): void {
  // Sectors 0–15, the system area, stay zero.
  const at = FIRST_DESCRIPTOR_SECTOR * SECTOR_SIZE;
  writePrimaryVolumeDescriptor(target, at, descriptorFields(plan, plan.iso, plan.options.volumeId, toACharacters(plan.options.publisher)));
  writeJolietVolumeDescriptor(target, at + SECTOR_SIZE, descriptorFields(plan, plan.joliet, plan.options.label, plan.options.publisher));
  writeTerminatorDescriptor(target, at + 2 * SECTOR_SIZE);
  for (const tree of [plan.iso, plan.joliet]) {
    const table = tree.directories.map((d) => ({ identifier: d.identifier, extent: d.sector, parentNumber: d.parent?.number ?? 1 }));
    writePathTable(target, tree.lPathTableSector * SECTOR_SIZE, table, 'L');
    writePathTable(target, tree.mPathTableSector * SECTOR_SIZE, table, 'M');
  }
  for (const tree of [plan.iso, plan.joliet]) {
    for (const dir of tree.directories) writeDirectory(plan, tree, dir, target, dir.sector * SECTOR_SIZE);
  }
  writeContinuationAreas(plan, target);
}

/** ECMA-119 7.4.1 a-characters: upper case letters, digits and a few symbols; others become '_'. */
function toACharacters(text: string): string {
  return text.toUpperCase().replace(/[^A-Z0-9_ !"%&'()*+,\-./:;<=>?]/g, '_');
}

function descriptorFields(plan: IsoPlan, tree: HierarchyPlan, volumeId: string, publisher: string) {
  const root = tree.directories[0] as DirectoryPlan;
  return {
    volumeId,
    publisher,
    application: APPLICATION_ID,
    volumeSpaceSize: plan.totalSectors,
    pathTableSize: tree.pathTableSize,
    lPathTableSector: tree.lPathTableSector,
    mPathTableSector: tree.mPathTableSector,
    // ECMA-119 8.4.18: the root record in a descriptor is 34 bytes, without system use data.
    rootRecord: encodeDirectoryRecord({ extent: root.sector, dataLength: root.size, recordedAt: plan.options.timestamp, isDirectory: true, identifier: Buffer.from([0]) }),
    createdAt: plan.options.timestamp,
  };
}

/** Writes the records of one directory into `target` (zeros) from `base` on, identifiers and Rock Ridge entries encoded in place. */
function writeDirectory(plan: IsoPlan, tree: HierarchyPlan, dir: DirectoryPlan, target: Buffer, base: number): void {
  const time = plan.options.timestamp;
  const tf = plan.tf;
  const records = dir.records;
  for (let index = 0; index < records.length; index++) {
    const record = records[index] as RecordPlan;
    const { sector, dataLength } = recordExtent(plan, tree, record);
    const offset = base + (dir.recordOffsets[index] as number);
    const direct = record.direct;
    let systemUse: readonly Buffer[] | undefined;
    let systemUseLength = 0;
    if (direct !== undefined) {
      systemUseLength = direct.length;
    } else if (record.systemUse !== undefined) {
      const { packing, areas } = record.systemUse;
      const first = areas[0];
      systemUse = first === undefined ? packing.inline : [...packing.inline, ceEntry(first)];
      for (const entry of systemUse) systemUseLength += entry.length;
    }
    const identifierLength = record.identifierLength;
    writeRecordHeader(target, offset, directoryRecordSize(identifierLength, systemUseLength), sector, dataLength, time, record.node.kind === 'dir', identifierLength);
    const id = record.identifier;
    let at = offset + RECORD_HEADER_SIZE;
    if (record.utf16) {
      for (let i = 0; i < id.length; i++, at += 2) {
        const unit = id.charCodeAt(i);
        target[at] = unit >>> 8;
        target[at + 1] = unit & 0xff;
      }
    } else {
      for (let i = 0; i < id.length; i++) target[at + i] = id.charCodeAt(i);
    }
    at = offset + recordPrefixSize(identifierLength);
    if (direct !== undefined) {
      writePxEntry(target, at, attributesOf(record.node, direct.identity));
      target.set(tf, at + PX_ENTRY_SIZE);
      writeSingleNmEntry(target, at + PX_ENTRY_SIZE + tf.length, record.node.name, direct.nmSize);
    } else if (systemUse !== undefined) {
      for (const entry of systemUse) {
        target.set(entry, at);
        at += entry.length;
      }
    }
  }
}

function writeContinuationAreas(plan: IsoPlan, target: Buffer): void {
  for (const area of plan.continuationAreas) {
    let at = area.location.sector * SECTOR_SIZE + area.location.offset;
    for (const entry of area.entries) {
      target.set(entry, at);
      at += entry.length;
    }
    if (area.next !== undefined) target.set(ceEntry(area.next), at);
  }
}

/**
 * Opens a source file and checks its size against the layout (unless the caller proves the size
 * another way, as copySource does). Blocking calls: on a warm page cache
 * a read takes microseconds while a thread-pool round trip costs a hand-off, and on a busy machine
 * each hand-off waits for a time slice. The file writer yields to the event loop between chunks
 * (build.ts), so the loop is never held for long. A source whose size changed since layout is an
 * error, never a silently corrupt image.
 */
function openSource(node: TreeNode, source: string, checkSize = true): number {
  let fd: number;
  try {
    fd = openSync(source, 'r');
  } catch (error: unknown) {
    throw new IsoWriteError(`${node.path}: cannot read source ${source}: ${error instanceof Error ? error.message : String(error)}`, { path: node.path, cause: error });
  }
  if (checkSize) {
    try {
      checkSourceSize(fd, node, source);
    } catch (error: unknown) {
      closeSync(fd);
      throw error;
    }
  }
  return fd;
}

function checkSourceSize(fd: number, node: TreeNode, source: string): void {
  const size = fstatSync(fd).size;
  if (size !== node.size) throw sourceChanged(node, source, `has ${size} bytes`);
}

/** One read of a source at `position`; a source that ends before its size is an error. */
function readSource(fd: number, node: TreeNode, source: string, buffer: Buffer, offset: number, length: number, position: number): number {
  const read = readSync(fd, buffer, offset, length, position);
  if (read === 0) throw sourceChanged(node, source, `ended early at ${position} bytes`);
  return read;
}

/**
 * Reads a whole source into `target` at `at`: open, one readv, close. The readv asks for one byte
 * more than the layout expects, into PROBE: a source that still has its size fills the contents and
 * stops short of the probe, which proves the size without an fstat (one system call less per file,
 * the small-image path). Anything else — grown, shrunk, or a short read — is left to fstat.
 */
function copySource(node: TreeNode, source: string, target: Buffer, at: number): void {
  const fd = openSource(node, source, false);
  try {
    let position = readvSync(fd, [target.subarray(at, at + node.size), PROBE], 0);
    if (position !== node.size) {
      checkSourceSize(fd, node, source);
      if (position > node.size) throw sourceChanged(node, source, 'has grown');
      while (position < node.size) position += readSource(fd, node, source, target, at + position, node.size - position, position);
    }
  } finally {
    closeSync(fd);
  }
}

/** The byte past a source's expected end: a read that reaches it means the source grew. */
const PROBE = Buffer.alloc(1);

/** Reads a source into the batch, yielding each chunk it fills. */
function* streamSource(batch: ChunkBatch, node: TreeNode, source: string): Generator<Buffer> {
  const fd = openSource(node, source);
  try {
    for (let position = 0; position < node.size; ) {
      const { buffer, offset, length } = batch.space(node.size - position);
      const read = readSource(fd, node, source, buffer, offset, length, position);
      batch.commit(read);
      position += read;
      yield* batch.drain();
    }
  } finally {
    closeSync(fd);
  }
}

function sourceChanged(node: TreeNode, source: string, actual: string): IsoWriteError {
  return new IsoWriteError(`${node.path}: source ${source} ${actual}, but the layout was made for ${node.size} bytes`, { path: node.path });
}

/** Fills chunks of CHUNK_SIZE; buffers that are large already pass through uncopied. */
class ChunkBatch {
  readonly #reuse: boolean;
  #buffer: Buffer | undefined;
  #spare: Buffer | undefined;
  #used = 0;

  constructor(reuse: boolean) {
    this.#reuse = reuse;
  }

  *append(bytes: Buffer): Generator<Buffer> {
    if (bytes.length >= CHUNK_SIZE) {
      const pending = this.flush();
      if (pending !== undefined) yield pending;
      yield bytes;
      return;
    }
    for (let copied = 0; copied < bytes.length; ) {
      const { buffer, offset, length } = this.space(bytes.length - copied);
      bytes.copy(buffer, offset, copied, copied + length);
      this.commit(length);
      copied += length;
      yield* this.drain();
    }
  }

  *zeros(count: number): Generator<Buffer> {
    for (let written = 0; written < count; ) {
      const { buffer, offset, length } = this.space(count - written);
      buffer.fill(0, offset, offset + length);
      this.commit(length);
      written += length;
      yield* this.drain();
    }
  }

  /** Room for up to `wanted` bytes in the current chunk; call commit() with what was filled. */
  space(wanted: number): { buffer: Buffer; offset: number; length: number } {
    this.#buffer ??= this.#spare ?? Buffer.allocUnsafe(CHUNK_SIZE);
    this.#spare = undefined;
    return { buffer: this.#buffer, offset: this.#used, length: Math.min(wanted, CHUNK_SIZE - this.#used) };
  }

  commit(bytes: number): void {
    this.#used += bytes;
  }

  /** Yields the chunk if it is full. */
  *drain(): Generator<Buffer> {
    if (this.#used === CHUNK_SIZE) {
      const full = this.flush();
      if (full !== undefined) yield full;
    }
  }

  flush(): Buffer | undefined {
    if (this.#buffer === undefined || this.#used === 0) return undefined;
    const out = this.#buffer.subarray(0, this.#used);
    if (this.#reuse) this.#spare = this.#buffer;
    this.#buffer = undefined;
    this.#used = 0;
    return out;
  }
}
