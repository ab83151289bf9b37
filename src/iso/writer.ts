// The write step: a plan becomes bytes, in sector order, as a sequence of chunks. Metadata is
// rendered one structure at a time and file contents are streamed, so memory stays bounded by the
// chunk size and the size of the largest directory, not by the size of the tree.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { IsoWriteError } from './errors.js';
import { SECTOR_SIZE, sectorsFor } from './fields.js';
import { encodeDirectoryRecord } from './directory-record.js';
import { FIRST_DESCRIPTOR_SECTOR, recordExtent, type DirectoryPlan, type HierarchyPlan, type IsoPlan, type RecordPlan } from './layout.js';
import { encodePathTable } from './path-table.js';
import { ceEntry } from './susp.js';
import { jolietVolumeDescriptor, primaryVolumeDescriptor, terminatorDescriptor } from './volume-descriptor.js';
import type { TreeNode } from './tree.js';

/** Size of the reads from source files; also the batch size of small chunks. */
export const CHUNK_SIZE = 1 << 20;
/** Files up to this size are read whole (blocking); larger ones are streamed in CHUNK_SIZE reads. */
const SMALL_FILE_LIMIT = 256 * 1024;
const APPLICATION_ID = 'RECONTEXT';
/** Shared, never written to: the padding after each file's last byte. */
const ZERO_SECTOR = Buffer.alloc(SECTOR_SIZE);

/** Yields the image in order; the concatenation of the chunks is the image. Chunks are never reused. */
export async function* renderImage(plan: IsoPlan): AsyncGenerator<Buffer> {
  const batch = new ChunkBatch();
  const emit = function* (chunk: Buffer): Generator<Buffer> {
    yield* batch.add(chunk);
  };
  yield* emit(Buffer.alloc(FIRST_DESCRIPTOR_SECTOR * SECTOR_SIZE));
  yield* emit(primaryVolumeDescriptor(descriptorFields(plan, plan.iso, plan.options.volumeId, plan.options.publisher.toUpperCase())));
  yield* emit(jolietVolumeDescriptor(descriptorFields(plan, plan.joliet, plan.options.label, plan.options.publisher)));
  yield* emit(terminatorDescriptor());
  for (const tree of [plan.iso, plan.joliet]) {
    const table = tree.directories.map((d) => ({ identifier: d.identifier, extent: d.sector, parentNumber: d.parent?.number ?? 1 }));
    yield* emit(padToSector(encodePathTable(table, 'L')));
    yield* emit(padToSector(encodePathTable(table, 'M')));
  }
  for (const tree of [plan.iso, plan.joliet]) {
    for (const dir of tree.directories) yield* emit(renderDirectory(plan, tree, dir));
  }
  yield* emit(renderContinuationAreas(plan));
  for (const file of plan.files) {
    if (file.node.size === 0) continue;
    for await (const chunk of fileContents(file.node)) yield* emit(chunk);
    yield* emit(ZERO_SECTOR.subarray(0, sectorsFor(file.node.size) * SECTOR_SIZE - file.node.size));
  }
  const rest = batch.flush();
  if (rest !== undefined) yield rest;
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
    encodeRecord(plan, tree, record).copy(out, dir.recordOffsets[index] as number);
  });
  return out;
}

function encodeRecord(plan: IsoPlan, tree: HierarchyPlan, record: RecordPlan): Buffer {
  const { sector, dataLength } = recordExtent(plan, tree, record);
  let systemUse: Buffer | undefined;
  if (record.systemUse !== undefined) {
    const { packing, areas } = record.systemUse;
    const first = areas[0];
    systemUse = Buffer.concat([...packing.inline, ...(first === undefined ? [] : [ceEntry(first)])]);
  }
  return encodeDirectoryRecord({
    extent: sector,
    dataLength,
    recordedAt: plan.options.timestamp,
    isDirectory: record.node.kind === 'dir',
    identifier: record.identifier,
    systemUse,
  });
}

function renderContinuationAreas(plan: IsoPlan): Buffer {
  const out = Buffer.alloc(plan.continuationSectors * SECTOR_SIZE);
  for (const area of plan.continuationAreas) {
    const bytes = Buffer.concat([...area.entries, ...(area.next === undefined ? [] : [ceEntry(area.next)])]);
    bytes.copy(out, (area.location.sector - plan.continuationSector) * SECTOR_SIZE + area.location.offset);
  }
  return out;
}

/** The file's bytes, exactly `node.size` of them; a source that changed size since layout is an error. */
async function* fileContents(node: TreeNode): AsyncGenerator<Buffer> {
  const content = node.content;
  if (content === undefined) return;
  if (Buffer.isBuffer(content)) {
    yield content;
    return;
  }
  if (node.size <= SMALL_FILE_LIMIT) {
    yield readSmallFile(node, content.fromFile);
    return;
  }
  const handle = await readSource(node, content.fromFile, () => open(content.fromFile, 'r'));
  try {
    const { size } = await handle.stat();
    if (size !== node.size) throw sourceChanged(node, content.fromFile, `has ${size} bytes`);
    const readAt = (position: number): Promise<Buffer> => {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK_SIZE, node.size - position));
      return readSource(node, content.fromFile, () => handle.read(chunk, 0, chunk.length, position)).then(({ bytesRead }) => {
        if (bytesRead !== chunk.length) throw sourceChanged(node, content.fromFile, `ended early at ${position + bytesRead} bytes`);
        return chunk;
      });
    };
    // Read one chunk ahead, so reading the next overlaps with writing this one.
    let next: Promise<Buffer> | undefined = readAt(0);
    for (let position = 0; next !== undefined; ) {
      const chunk: Buffer = await next;
      position += chunk.length;
      next = position < node.size ? readAt(position) : undefined;
      next?.catch(() => undefined); // handled when awaited; avoid an unhandled rejection if we stop early
      yield chunk;
    }
  } finally {
    await handle.close();
  }
}

/**
 * Small files are read with blocking calls: four syscalls on a warm page cache cost less than the
 * thread-pool round trips of the async API, and the event loop is held for microseconds per file.
 */
function readSmallFile(node: TreeNode, source: string): Buffer {
  let fd: number;
  try {
    fd = openSync(source, 'r');
  } catch (error: unknown) {
    throw new IsoWriteError(`${node.path}: cannot read source ${source}: ${error instanceof Error ? error.message : String(error)}`, { path: node.path, cause: error });
  }
  try {
    const size = fstatSync(fd).size;
    if (size !== node.size) throw sourceChanged(node, source, `has ${size} bytes`);
    const bytes = Buffer.allocUnsafe(node.size);
    let position = 0;
    while (position < node.size) {
      const read = readSync(fd, bytes, position, node.size - position, position);
      if (read === 0) throw sourceChanged(node, source, `ended early at ${position} bytes`);
      position += read;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

function sourceChanged(node: TreeNode, source: string, actual: string): IsoWriteError {
  return new IsoWriteError(`${node.path}: source ${source} ${actual}, but the layout was made for ${node.size} bytes`, { path: node.path });
}

async function readSource<T>(node: TreeNode, source: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error: unknown) {
    throw new IsoWriteError(`${node.path}: cannot read source ${source}: ${error instanceof Error ? error.message : String(error)}`, { path: node.path, cause: error });
  }
}

function padToSector(bytes: Buffer): Buffer {
  const out = Buffer.alloc(sectorsFor(bytes.length) * SECTOR_SIZE);
  bytes.copy(out);
  return out;
}

/** Gathers small chunks into writes of at most CHUNK_SIZE; large chunks pass through uncopied. */
class ChunkBatch {
  #parts: Buffer[] = [];
  #bytes = 0;

  *add(chunk: Buffer): Generator<Buffer> {
    if (chunk.length === 0) return;
    if (this.#bytes + chunk.length > CHUNK_SIZE) {
      const pending = this.flush();
      if (pending !== undefined) yield pending;
    }
    if (chunk.length >= CHUNK_SIZE) {
      yield chunk;
      return;
    }
    this.#parts.push(chunk);
    this.#bytes += chunk.length;
  }

  flush(): Buffer | undefined {
    if (this.#parts.length === 0) return undefined;
    const out = this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#bytes);
    this.#parts = [];
    this.#bytes = 0;
    return out;
  }
}
