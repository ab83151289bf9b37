// The public entry point: entries → checked tree → plan (pure, synchronous, throws IsoInputError)
// → an image object that writes itself to a file, a stream or a Buffer, hashing the bytes on the way.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, fsync, openSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { IsoWriteError } from './errors.js';
import { SECTOR_SIZE } from './fields.js';
import { layoutIso, type IsoPlan } from './layout.js';
import { buildTree, type IsoEntry } from './tree.js';
import { renderImage, renderWhole, WHOLE_IMAGE_LIMIT } from './writer.js';

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
  /** Streams the image into `sink` (respecting backpressure) and ends it unless `end: false`. */
  write(sink: Writable, options?: IsoWriteOptions & { end?: boolean }): Promise<IsoWriteResult>;
  /**
   * Writes the image to a file: the fast path to disk (blocking positioned writes that yield to the
   * event loop every 8 MiB). On failure the file may hold part of an image — write to a temp name
   * and rename, as ImageStore does.
   */
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
    write: (sink, writeOptions) => writeToStream(plan, size, sink, writeOptions?.end ?? true, writeOptions?.sha256 ?? true),
    writeToFile: (path, fileOptions) => writeToFile(plan, size, path, fileOptions ?? {}),
    toBuffer: async () => renderWhole(plan),
  };
}

/** A volume identifier from a free-form label: upper case, other characters → '_', ≤ 32. */
export function toVolumeId(label: string): string {
  const id = label.toUpperCase().replace(/[^A-Z0-9_]/g, '_').slice(0, 32);
  return id === '' ? 'CONTEXT' : id;
}

/** Renders the image and hands each chunk with its offset to `put`; hashes on the way if asked. */
async function pump(
  plan: IsoPlan,
  size: number,
  sha256: boolean,
  put: (chunk: Buffer, position: number) => Promise<void>,
  options: { reuseChunks?: boolean } = {},
): Promise<IsoWriteResult> {
  const hash = sha256 ? createHash('sha256') : undefined;
  let bytes = 0;
  // A small image is one buffer and one write: below ~1 MiB, per-chunk work would dominate.
  for (const chunk of size <= WHOLE_IMAGE_LIMIT ? [renderWhole(plan, { reuse: options.reuseChunks })] : renderImage(plan, options)) {
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
      if (!sink.write(chunk)) await eventOrClose(sink, 'drain');
    });
    if (end) {
      sink.end();
      await eventOrClose(sink, 'finish');
    }
    if (sinkError !== undefined) throw sinkError;
    return result;
  } catch (error: unknown) {
    throw asWriteError(sinkError ?? error);
  } finally {
    sink.off('error', onError);
  }
}

/** Bytes written between two turns of the event loop: bounds how long a build holds the loop. */
const YIELD_EVERY_BYTES = 8 << 20;

/**
 * Writes with blocking positioned writes and yields to the event loop every few MiB. On the page
 * cache this is what genisoimage does; thread-pool writes cost a hand-off per chunk, and on a busy
 * machine each hand-off waits for a time slice. fsync (which waits for the disk) stays async.
 */
async function writeToFile(plan: IsoPlan, size: number, path: string, options: IsoFileWriteOptions): Promise<IsoWriteResult> {
  let fd: number | undefined;
  try {
    fd = openSync(path, options.exclusive === true ? 'wx' : 'w', 0o644);
    const target = fd;
    let sinceYield = 0;
    const result = await pump(plan, size, options.sha256 ?? true, async (chunk, position) => {
      for (let done = 0; done < chunk.length; ) done += writeSync(target, chunk, done, chunk.length - done, position + done);
      sinceYield += chunk.length;
      if (sinceYield >= YIELD_EVERY_BYTES) {
        sinceYield = 0;
        await new Promise((resolve) => setImmediate(resolve));
      }
      // The chunk is on its way to disk once writeSync returns: its memory can take the next one.
    }, { reuseChunks: true });
    if (options.fsync === true) await new Promise<void>((resolve, reject) => fsync(target, (error) => (error === null ? resolve() : reject(error))));
    return result;
  } catch (error: unknown) {
    throw asWriteError(error);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Waits for `event`; a sink destroyed without an error emits only 'close', which must not hang us. */
async function eventOrClose(sink: Writable, event: 'drain' | 'finish'): Promise<void> {
  const stop = new AbortController();
  try {
    await Promise.race([
      once(sink, event, { signal: stop.signal }),
      once(sink, 'close', { signal: stop.signal }).then(() => {
        throw new Error('the sink closed before the image was written');
      }),
    ]);
  } finally {
    stop.abort();
  }
}

function asWriteError(error: unknown): IsoWriteError {
  if (error instanceof IsoWriteError) return error;
  return new IsoWriteError(`writing the image failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}
