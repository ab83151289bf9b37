// The write step: a plan becomes bytes, in sector order, as a sequence of chunks. Metadata is
// rendered one structure at a time and file contents are streamed, so memory stays bounded by the
// chunk size and the size of the largest directory, not by the size of the tree.
import { open, readFile } from 'node:fs/promises';
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
/** Files up to this size are read with one call; larger ones are streamed in CHUNK_SIZE reads. */
const WHOLE_READ_LIMIT = 4 * CHUNK_SIZE;
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
  const changed = (actual: string): IsoWriteError =>
    new IsoWriteError(`${node.path}: source ${content.fromFile} ${actual}, but the layout was made for ${node.size} bytes`, { path: node.path });
  if (node.size <= WHOLE_READ_LIMIT) {
    const bytes = await readSource(node, content.fromFile, () => readFile(content.fromFile));
    if (bytes.length !== node.size) throw changed(`has ${bytes.length} bytes`);
    yield bytes;
    return;
  }
  const handle = await readSource(node, content.fromFile, () => open(content.fromFile, 'r'));
  try {
    let position = 0;
    while (position < node.size) {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK_SIZE, node.size - position));
      const { bytesRead } = await readSource(node, content.fromFile, () => handle.read(chunk, 0, chunk.length, position));
      if (bytesRead === 0) throw changed(`ended after ${position} bytes`);
      position += bytesRead;
      yield bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
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
