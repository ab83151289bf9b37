// The public entry point: entries → checked tree → plan (pure, synchronous, throws IsoInputError)
// → an image object that writes itself to a stream, hashing the bytes on the way.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync, writevSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { IsoWriteError } from './errors.js';
import { SECTOR_SIZE } from './fields.js';
import { layoutIso, type IsoPlan } from './layout.js';
import { buildTree, type IsoEntry } from './tree.js';
import { renderImage } from './writer.js';

export interface IsoOptions {
  /** ISO9660 volume identifier: 1–32 of A–Z, 0–9, _ (what `blkid` shows as LABEL). Use toVolumeId() to derive one. */
  readonly volumeId: string;
  /** Joliet volume label, case-preserving, ≤ 16 characters. Default: volumeId. */
  readonly label?: string;
  /** Publisher identifier, printable ASCII ≤ 128 characters. Default: empty. */
  readonly publisher?: string;
  /** The one timestamp used everywhere in the image; injected so rebuilds are byte-identical. */
  readonly timestamp: Date;
}

export interface IsoWriteOptions {
  /** Hash the bytes while writing (default true). Hashing costs ~1 s/GB of CPU; skip it when the name is known. */
  readonly sha256?: boolean;
}

export interface IsoFileWriteOptions extends IsoWriteOptions {
  /** fsync the file before returning (default false). */
  readonly fsync?: boolean;
  /** Fail if the file exists instead of replacing it (default false). */
  readonly exclusive?: boolean;
}

export interface IsoWriteResult {
  readonly bytes: number;
  /** Lower-case hex sha256 of the image bytes; undefined when hashing was turned off. */
  readonly sha256: string | undefined;
}

export interface IsoImage {
  /** Exact size of the image in bytes, known before writing. */
  readonly size: number;
  /** The sector plan (for inspection and tests). */
  readonly plan: IsoPlan;
  /** Streams the image into `sink` (respecting backpressure) and ends it unless `end: false`. */
  write(sink: Writable, options?: IsoWriteOptions & { end?: boolean }): Promise<IsoWriteResult>;
  /** Writes the image to a file with positioned writes, several in flight: the fast path to disk. */
  writeToFile(path: string, options?: IsoFileWriteOptions): Promise<IsoWriteResult>;
  /** The whole image in memory: for small images and tests. */
  toBuffer(): Promise<Buffer>;
}

/** Lays out an image. Throws IsoInputError (naming the path) for input the format cannot carry. */
export function buildIso(entries: readonly IsoEntry[], options: IsoOptions): IsoImage {
  const plan = layoutIso(buildTree(entries), {
    volumeId: options.volumeId,
    label: options.label ?? options.volumeId,
    publisher: options.publisher ?? '',
    timestamp: options.timestamp,
  });
  const size = plan.totalSectors * SECTOR_SIZE;
  return {
    size,
    plan,
    write: (sink, writeOptions) => writeToStream(plan, size, sink, writeOptions?.end ?? true, writeOptions?.sha256 ?? true),
    writeToFile: (path, fileOptions) => writeToFile(plan, size, path, fileOptions ?? {}),
    toBuffer: async () => {
      const parts: Buffer[] = [];
      for await (const chunk of renderImage(plan)) parts.push(chunk);
      return Buffer.concat(parts, size);
    },
  };
}

/** A volume identifier from a free-form label: upper case, other characters → '_', ≤ 32. */
export function toVolumeId(label: string): string {
  const id = label.toUpperCase().replace(/[^A-Z0-9_]/g, '_').slice(0, 32);
  return id === '' ? 'CONTEXT' : id;
}

/** Renders the image and hands each chunk with its offset to `put`; hashes on the way if asked. */
async function pump(plan: IsoPlan, size: number, sha256: boolean, put: (chunk: Buffer, position: number) => Promise<void>): Promise<IsoWriteResult> {
  const hash = sha256 ? createHash('sha256') : undefined;
  let bytes = 0;
  for await (const chunk of renderImage(plan)) {
    hash?.update(chunk);
    const position = bytes;
    bytes += chunk.length;
    await put(chunk, position);
  }
  if (bytes !== size) throw new IsoWriteError(`layout bug: wrote ${bytes} bytes, planned ${size}`);
  return { bytes, sha256: hash?.digest('hex') };
}

async function writeToStream(plan: IsoPlan, size: number, sink: Writable, end: boolean, sha256: boolean): Promise<IsoWriteResult> {
  // A sink can fail between two writes; keep its error so the loop stops at the next chunk.
  let sinkError: unknown;
  const onError = (error: unknown): void => {
    sinkError ??= error;
  };
  sink.on('error', onError);
  try {
    const result = await pump(plan, size, sha256, async (chunk) => {
      if (sinkError !== undefined) throw sinkError;
      if (!sink.write(chunk)) await once(sink, 'drain');
    });
    if (end) {
      sink.end();
      await once(sink, 'finish');
    }
    if (sinkError !== undefined) throw sinkError;
    return result;
  } catch (error: unknown) {
    throw asWriteError(sinkError ?? error);
  } finally {
    sink.off('error', onError);
  }
}

/** Positioned writes may complete in any order, so a few can be in flight while the next chunk renders. */
const WRITES_IN_FLIGHT = 4;

/**
 * Images up to this size (a typical layer is a few hundred KB) are written with blocking calls:
 * open, one write, close on the page cache take microseconds, thread-pool round trips take longer.
 */
const SMALL_IMAGE_BYTES = 4 << 20;

async function writeToFile(plan: IsoPlan, size: number, path: string, options: IsoFileWriteOptions): Promise<IsoWriteResult> {
  if (size <= SMALL_IMAGE_BYTES) return writeSmallFile(plan, size, path, options);
  let handle: FileHandle;
  try {
    handle = await open(path, options.exclusive === true ? 'wx' : 'w', 0o644);
  } catch (error: unknown) {
    throw asWriteError(error);
  }
  const inFlight = new Set<Promise<unknown>>();
  let failure: unknown;
  try {
    const result = await pump(plan, size, options.sha256 ?? true, async (chunk, position) => {
      if (failure !== undefined) throw failure;
      const pending: Promise<unknown> = handle.write(chunk, 0, chunk.length, position).then(
        () => inFlight.delete(pending),
        (error: unknown) => {
          failure ??= error;
        },
      );
      inFlight.add(pending);
      if (inFlight.size >= WRITES_IN_FLIGHT) await Promise.race(inFlight);
    });
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    if (options.fsync === true) await handle.sync();
    return result;
  } catch (error: unknown) {
    await Promise.allSettled(inFlight);
    throw asWriteError(error);
  } finally {
    await handle.close();
  }
}

async function writeSmallFile(plan: IsoPlan, size: number, path: string, options: IsoFileWriteOptions): Promise<IsoWriteResult> {
  const parts: Buffer[] = [];
  const result = await pump(plan, size, options.sha256 ?? true, async (chunk) => {
    parts.push(chunk);
  });
  let fd: number | undefined;
  try {
    fd = openSync(path, options.exclusive === true ? 'wx' : 'w', 0o644);
    const written = writevSync(fd, parts);
    if (written !== size) throw new Error(`short write: ${written} of ${size} bytes`);
    if (options.fsync === true) {
      // fsync waits for the disk: keep it off the event loop.
      const handle = await open(path, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    return result;
  } catch (error: unknown) {
    throw asWriteError(error);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function asWriteError(error: unknown): IsoWriteError {
  if (error instanceof IsoWriteError) return error;
  return new IsoWriteError(`writing the image failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}
