// Path resolution over one stack (the paper's rule): a path is served by the highest-priority
// layer that has it; a directory present in several layers lists the union of their entries.
// A layer only shows through below a path when every higher layer that has that path's parent
// has it as a directory (a file in a higher layer hides a directory of the same name below).
// Device nodes, FIFOs and sockets in a layer are treated as absent: FFS serves configuration.
import { lstat, readdir, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
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

async function lstatOrAbsent(path: string, root: boolean): Promise<Stats | undefined> {
  try {
    return await (root ? stat(path) : lstat(path));
  } catch (error: unknown) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}

/**
 * Resolves `rel` (a path relative to the layer roots) among `eligible` layers, each of which has
 * the parent of `rel` as a directory (all layers, for the root). Undefined when none has it.
 */
export async function lookupIn(eligible: readonly Layer[], rel: string): Promise<Resolved | undefined> {
  const atRoot = rel === '';
  const stats = await Promise.all(eligible.map((l) => lstatOrAbsent(join(l.root, rel), atRoot)));
  const found: { layer: Layer; stats: Stats; kind: EntryKind }[] = [];
  eligible.forEach((layer, i) => {
    const s = stats[i];
    const kind = s === undefined ? undefined : kindOf(s);
    if (s !== undefined && kind !== undefined) found.push({ layer, stats: s, kind });
  });
  const first = found[0];
  if (first === undefined) return undefined;
  const contributors: Layer[] = [];
  for (const f of found) {
    if (f.kind !== 'dir') break;
    contributors.push(f.layer);
  }
  return { kind: first.kind, layer: first.layer, realPath: join(first.layer.root, rel), stats: first.stats, contributors };
}

/**
 * Resolves a union path against one stack: undefined when no layer has it (or it is in the
 * reserved directory, which the union serves itself). Each level costs one lstat per layer that
 * still shows through, issued in parallel.
 */
export async function resolvePath(stack: Stack, path: string): Promise<Resolved | undefined> {
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
 * root without the reserved directory). Throws FsError ENOENT / ENOTDIR.
 */
export async function listDirectory(stack: Stack, path: string): Promise<{ dir: Resolved; names: string[] }> {
  const dir = await resolvePath(stack, path);
  if (dir === undefined) throw new FsError('ENOENT');
  if (dir.kind !== 'dir') throw new FsError('ENOTDIR');
  return { dir, names: await namesIn(dir, components(path).join('/')) };
}
