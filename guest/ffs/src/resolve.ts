// Path resolution over one stack (the paper's rule): a path is served by the highest-priority
// layer that has it; a directory present in several layers lists the union of their entries.
// A layer only shows through below a path when every higher layer that has that path's parent
// has it as a directory (a file in a higher layer hides a directory of the same name below).
// Device nodes, FIFOs and sockets in a layer are treated as absent: FFS serves configuration.
import { lstat as lstatCallback, stat as statCallback, type Stats } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheOf } from './cache.js';
import { RESERVED_DIRECTORY, type Layer } from './layer.js';
import type { Stack } from './stack.js';

export type EntryKind = 'file' | 'dir' | 'symlink';

export interface Resolved {
  readonly kind: EntryKind;
  /** The layer that serves this path (for a directory: the highest one that has it). */
  readonly layer: Layer;
  /** The path in that layer's tree. */
  readonly realPath: string;
  readonly stats: Stats;
  /** For a directory: the layers whose directories merge here, highest first. */
  readonly contributors: readonly Layer[];
}

/** An error with a Node-style errno code, so the FUSE adapter can answer with it. */
export class FsError extends Error {
  override readonly name = 'FsError';
  constructor(readonly code: 'ENOENT' | 'ENOTDIR' | 'EISDIR' | 'EROFS' | 'EINVAL' | 'EBADF' | 'EACCES') {
    super(code);
  }
}

/** Splits a FUSE path ("/a/b") into components; "." and ".." are refused (the kernel resolves them). */
export function components(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '.' || p === '..')) throw new FsError('EINVAL');
  return parts;
}

const NO_LAYERS: readonly Layer[] = Object.freeze([]);

/** Whether the path lies in the reserved metadata directory at the root of the union. */
export function isReserved(parts: readonly string[]): boolean {
  return parts[0] === RESERVED_DIRECTORY;
}

function kindOf(stats: Stats): EntryKind | undefined {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  if (stats.isSymbolicLink()) return 'symlink';
  return undefined;
}

// Through the callback API: a first lookup meets ENOENT in most layers, and fs/promises costs the
// event loop 2–3× as much per call as the callback form, most for a failing one (measured on
// Node 20: 44–74 µs against 17–19 µs) — in a FUSE server the event loop is what requests wait for.
function lstatOrAbsent(path: string, root: boolean): Promise<Stats | undefined> {
  return new Promise((resolve, reject) =>
    (root ? statCallback : lstatCallback)(path, (error, stats) => {
      if (!error) return resolve(stats);
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return resolve(undefined);
      reject(error);
    }),
  );
}

/**
 * Resolves `rel` (a path relative to the layer roots) among `eligible` layers, each of which has
 * the parent of `rel` as a directory (all layers, for the root). Undefined when none has it.
 */
export async function lookupIn(eligible: readonly Layer[], rel: string): Promise<Resolved | undefined> {
  const atRoot = rel === '';
  // One level: the eligible layers' lstats in parallel (one layer, the common case: no array).
  const stats =
    eligible.length === 1
      ? [await lstatOrAbsent(atRoot ? eligible[0]!.root : join(eligible[0]!.root, rel), atRoot)]
      : await Promise.all(eligible.map((l) => lstatOrAbsent(atRoot ? l.root : join(l.root, rel), atRoot)));
  let first: { layer: Layer; stats: Stats; kind: EntryKind } | undefined;
  let contributors: Layer[] | undefined;
  for (let i = 0; i < eligible.length; i++) {
    const s = stats[i];
    const kind = s === undefined ? undefined : kindOf(s);
    if (s === undefined || kind === undefined) continue;
    const layer = eligible[i]!;
    if (first === undefined) {
      first = { layer, stats: s, kind };
      if (kind !== 'dir') break;
      contributors = [layer];
    } else if (kind === 'dir') contributors!.push(layer);
    else break;
  }
  if (first === undefined) return undefined;
  return {
    kind: first.kind,
    layer: first.layer,
    realPath: atRoot ? first.layer.root : join(first.layer.root, rel),
    stats: first.stats,
    contributors: contributors ?? NO_LAYERS,
  };
}

/**
 * Resolves a union path against one stack: undefined when no layer has it (or it is in the
 * reserved directory, which the union serves itself). Memoized per stack (cache.ts): a path
 * whose parent is cached costs one level — one lstat per layer that shows through there, issued
 * in parallel — and a cached path none.
 */
export function resolvePath(stack: Stack, path: string): Promise<Resolved | undefined> {
  const cache = cacheOf(stack);
  // FUSE hands canonical paths ("/a/b"), which are the cache's keys: a hit parses nothing.
  const hit = cache.entry(path);
  if (hit !== undefined) return Promise.resolve(hit ?? undefined);
  let parts: string[];
  try {
    parts = components(path);
  } catch (error: unknown) {
    return Promise.reject(error);
  }
  if (isReserved(parts)) return Promise.resolve(undefined);
  return resolveDepth(stack, parts, parts.length);
}

/** Resolves the first `depth` components of `parts`: the parent (cached or resolved the same way), then the last one. */
function resolveDepth(stack: Stack, parts: readonly string[], depth: number): Promise<Resolved | undefined> {
  const rel = depth === parts.length ? parts.join('/') : parts.slice(0, depth).join('/');
  return cacheOf(stack).resolve(`/${rel}`, async () => {
    if (depth === 0) return lookupIn(stack.layers, '');
    const parent = await resolveDepth(stack, parts, depth - 1);
    if (parent === undefined || parent.kind !== 'dir') return undefined;
    return lookupIn(parent.contributors, rel);
  });
}

/** Resolves without the cache, every level from the root (the reference the cached path must agree with). */
export async function resolvePathUncached(stack: Stack, path: string): Promise<Resolved | undefined> {
  const parts = components(path);
  if (isReserved(parts)) return undefined;
  let eligible: readonly Layer[] = stack.layers;
  for (let depth = 0; ; depth++) {
    const resolved = await lookupIn(eligible, parts.slice(0, depth).join('/'));
    if (resolved === undefined || depth === parts.length) return resolved;
    if (resolved.kind !== 'dir') return undefined;
    eligible = resolved.contributors;
  }
}

/** The sorted union of the entries of a resolved directory's contributors (without the reserved directory at the root). */
export async function namesIn(dir: Resolved, rel: string): Promise<string[]> {
  const listings = await Promise.all(dir.contributors.map((l) => readdir(join(l.root, rel), { withFileTypes: true })));
  const names = new Set<string>();
  for (const entries of listings) {
    for (const e of entries) {
      if (rel === '' && e.name === RESERVED_DIRECTORY) continue;
      // Special files are absent (as in lookupIn); unknown dirent types are kept, lookups decide.
      if (e.isFIFO() || e.isSocket() || e.isBlockDevice() || e.isCharacterDevice()) continue;
      names.add(e.name);
    }
  }
  return [...names].sort();
}

/**
 * Lists a union directory from one stack: the sorted union of its contributors' entries (at the
 * root without the reserved directory), memoized per stack. Throws FsError ENOENT / ENOTDIR.
 */
export async function listDirectory(stack: Stack, path: string): Promise<{ dir: Resolved; names: readonly string[] }> {
  const dir = await resolvePath(stack, path);
  if (dir === undefined) throw new FsError('ENOENT');
  if (dir.kind !== 'dir') throw new FsError('ENOTDIR');
  const rel = components(path).join('/');
  return { dir, names: await cacheOf(stack).listing(`/${rel}`, () => namesIn(dir, rel)) };
}
