// The public entry point: entries → checked tree → plan (pure, synchronous, throws IsoInputError)
// → an image object that writes itself to a stream, hashing the bytes on the way.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
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

export interface IsoWriteResult {
  readonly bytes: number;
  /** Lower-case hex sha256 of the image bytes. */
  readonly sha256: string;
}

export interface IsoImage {
  /** Exact size of the image in bytes, known before writing. */
  readonly size: number;
  /** The sector plan (for inspection and tests). */
  readonly plan: IsoPlan;
  /** Streams the image into `sink` (respecting backpressure) and ends it unless `end: false`. */
  write(sink: Writable, options?: { end?: boolean }): Promise<IsoWriteResult>;
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
    write: (sink, writeOptions) => writeImage(plan, size, sink, writeOptions?.end ?? true),
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

async function writeImage(plan: IsoPlan, size: number, sink: Writable, end: boolean): Promise<IsoWriteResult> {
  const hash = createHash('sha256');
  let bytes = 0;
  // A sink can fail between two writes; keep its error so the loop stops at the next chunk.
  let sinkError: unknown;
  const onError = (error: unknown): void => {
    sinkError ??= error;
  };
  sink.on('error', onError);
  try {
    for await (const chunk of renderImage(plan)) {
      if (sinkError !== undefined) throw sinkError;
      hash.update(chunk);
      bytes += chunk.length;
      if (!sink.write(chunk)) await once(sink, 'drain');
    }
    if (end) {
      sink.end();
      await once(sink, 'finish');
    }
    if (sinkError !== undefined) throw sinkError;
  } catch (error: unknown) {
    if (error instanceof IsoWriteError) throw error;
    const cause = sinkError ?? error;
    throw new IsoWriteError(`writing the image failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  } finally {
    sink.off('error', onError);
  }
  if (bytes !== size) throw new IsoWriteError(`layout bug: wrote ${bytes} bytes, planned ${size}`);
  return { bytes, sha256: hash.digest('hex') };
}
