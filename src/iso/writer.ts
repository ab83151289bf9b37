// The write step: a plan becomes bytes, in sector order, as a sequence of chunks of about 1 MiB.
// Metadata is rendered one structure at a time and file contents are read straight into the chunk
// being filled, so memory stays bounded by the chunk size and the largest directory, not by the
// size of the tree, and small files cost no allocation or copy of their own.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { IsoWriteError } from './errors.js';
import { SECTOR_SIZE, sectorsFor } from './fields.js';
import { encodeDirectoryRecord, writeDirectoryRecord } from './directory-record.js';
import { FIRST_DESCRIPTOR_SECTOR, recordExtent, type DirectoryPlan, type HierarchyPlan, type IsoPlan } from './layout.js';
import { encodePathTable } from './path-table.js';
import { ceEntry } from './susp.js';
import { jolietVolumeDescriptor, primaryVolumeDescriptor, terminatorDescriptor } from './volume-descriptor.js';
import type { TreeNode } from './tree.js';

/** Size of the reads from source files; also the batch size of small chunks. */
export const CHUNK_SIZE = 1 << 20;
const APPLICATION_ID = 'RECONTEXT';

/**
 * Yields the image in order; the concatenation of the chunks is the image. With `reuseChunks`
 * the next chunk is filled into the same memory, so a consumer must be done with a chunk before it
 * asks for the next one (a blocking file writer is; a stream or a list of chunks is not).
 */
export function* renderImage(plan: IsoPlan, options: { reuseChunks?: boolean } = {}): Generator<Buffer> {
  const batch = new ChunkBatch(options.reuseChunks ?? false);
  yield* batch.zeros(FIRST_DESCRIPTOR_SECTOR * SECTOR_SIZE);
  yield* batch.append(primaryVolumeDescriptor(descriptorFields(plan, plan.iso, plan.options.volumeId, toACharacters(plan.options.publisher))));
  yield* batch.append(jolietVolumeDescriptor(descriptorFields(plan, plan.joliet, plan.options.label, plan.options.publisher)));
  yield* batch.append(terminatorDescriptor());
  for (const tree of [plan.iso, plan.joliet]) {
    const table = tree.directories.map((d) => ({ identifier: d.identifier, extent: d.sector, parentNumber: d.parent?.number ?? 1 }));
    yield* batch.append(padToSector(encodePathTable(table, 'L')));
    yield* batch.append(padToSector(encodePathTable(table, 'M')));
  }
  for (const tree of [plan.iso, plan.joliet]) {
    for (const dir of tree.directories) yield* batch.append(renderDirectory(plan, tree, dir));
  }
  yield* batch.append(renderContinuationAreas(plan));
  for (const file of plan.files) {
    const { node } = file;
    if (node.size === 0 || node.content === undefined) continue;
    if (Buffer.isBuffer(node.content)) yield* batch.append(node.content);
    else yield* readSource(batch, node, node.content.fromFile);
    yield* batch.zeros(sectorsFor(node.size) * SECTOR_SIZE - node.size);
  }
  const rest = batch.flush();
  if (rest !== undefined) yield rest;
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

export function renderDirectory(plan: IsoPlan, tree: HierarchyPlan, dir: DirectoryPlan): Buffer {
  const out = Buffer.alloc(dir.size);
  dir.records.forEach((record, index) => {
    const { sector, dataLength } = recordExtent(plan, tree, record);
    let systemUse: readonly Buffer[] | undefined;
    if (record.systemUse !== undefined) {
      const { packing, areas } = record.systemUse;
      const first = areas[0];
      systemUse = first === undefined ? packing.inline : [...packing.inline, ceEntry(first)];
    }
    writeDirectoryRecord(out, dir.recordOffsets[index] as number, {
      extent: sector,
      dataLength,
      recordedAt: plan.options.timestamp,
      isDirectory: record.node.kind === 'dir',
      identifier: record.identifier,
      systemUse,
    });
  });
  return out;
}

function renderContinuationAreas(plan: IsoPlan): Buffer {
  const out = Buffer.alloc(plan.continuationSectors * SECTOR_SIZE);
  for (const area of plan.continuationAreas) {
    const bytes = Buffer.concat([...area.entries, ...(area.next === undefined ? [] : [ceEntry(area.next)])]);
    bytes.copy(out, (area.location.sector - plan.continuationSector) * SECTOR_SIZE + area.location.offset);
  }
  return out;
}

/**
 * Reads exactly `node.size` bytes of a source file into the batch. Blocking reads: on a warm page
 * cache a read takes microseconds while a thread-pool round trip costs a hand-off, and on a busy
 * machine each hand-off waits for a time slice. The file writer yields to the event loop between
 * chunks (build.ts), so the loop is never held for long. A source whose size changed since layout
 * is an error, never a silently corrupt image.
 */
function* readSource(batch: ChunkBatch, node: TreeNode, source: string): Generator<Buffer> {
  let fd: number;
  try {
    fd = openSync(source, 'r');
  } catch (error: unknown) {
    throw new IsoWriteError(`${node.path}: cannot read source ${source}: ${error instanceof Error ? error.message : String(error)}`, { path: node.path, cause: error });
  }
  try {
    const size = fstatSync(fd).size;
    if (size !== node.size) throw sourceChanged(node, source, `has ${size} bytes`);
    let position = 0;
    while (position < node.size) {
      const { buffer, offset, length, full } = batch.space(node.size - position);
      const read = readSync(fd, buffer, offset, length, position);
      if (read === 0) throw sourceChanged(node, source, `ended early at ${position} bytes`);
      batch.commit(read);
      position += read;
      if (full()) yield* batch.drain();
    }
  } finally {
    closeSync(fd);
  }
}

function sourceChanged(node: TreeNode, source: string, actual: string): IsoWriteError {
  return new IsoWriteError(`${node.path}: source ${source} ${actual}, but the layout was made for ${node.size} bytes`, { path: node.path });
}

function padToSector(bytes: Buffer): Buffer {
  const out = Buffer.alloc(sectorsFor(bytes.length) * SECTOR_SIZE);
  bytes.copy(out);
  return out;
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
  space(wanted: number): { buffer: Buffer; offset: number; length: number; full: () => boolean } {
    this.#buffer ??= this.#spare ?? Buffer.allocUnsafe(CHUNK_SIZE);
    this.#spare = undefined;
    return { buffer: this.#buffer, offset: this.#used, length: Math.min(wanted, CHUNK_SIZE - this.#used), full: () => this.#used === CHUNK_SIZE };
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
