// What changed in the union view between two stacks: the paths whose type, mode, owner, symlink
// target or content differ (content by size, then sha256 when the sizes are equal; a file served
// from the same real file with the same size and mtime is taken as unchanged without reading).
// Reads the layers' trees, never the mount. Context images are small; layers of many megabytes
// cost one hash of each equally sized candidate per change.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { lookupIn, namesIn, type EntryKind, type Resolved } from '../resolve.js';
import type { Stack } from '../stack.js';

export interface Entry {
  readonly kind: EntryKind;
  readonly realPath: string;
  readonly stats: Stats;
}

/**
 * Every path of the union view of a stack ("/etc/x.conf"), the reserved directory left out. With
 * `within` (union paths, as hooks name them: "/etc/glusterfs"; "/" is everything), only the paths
 * at or under one of them are indexed, and only their ancestors are walked to get there: a change
 * elsewhere concerns no hook, and walking (and later hashing) it would only delay the hooks.
 */
export async function indexView(stack: Stack, within?: readonly string[]): Promise<Map<string, Entry>> {
  const index = new Map<string, Entry>();
  const all = within === undefined || within.includes('/');
  const wanted = (path: string): 'in' | 'towards' | 'out' => {
    if (all) return 'in';
    let towards = false;
    for (const w of within) {
      if (path === w || path.startsWith(w + '/')) return 'in';
      if (w.startsWith(path + '/')) towards = true;
    }
    return towards ? 'towards' : 'out';
  };
  const root = await lookupIn(stack.layers, '');
  if (root === undefined || root.kind !== 'dir') return index;
  const visit = async (dir: Resolved, rel: string): Promise<void> => {
    const names = await namesIn(dir, rel);
    await Promise.all(
      names.map(async (name) => {
        const childRel = rel === '' ? name : `${rel}/${name}`;
        const where = wanted('/' + childRel);
        if (where === 'out') return;
        const child = await lookupIn(dir.contributors, childRel);
        if (child === undefined) return;
        if (where === 'in') index.set('/' + childRel, { kind: child.kind, realPath: child.realPath, stats: child.stats });
        if (child.kind === 'dir') await visit(child, childRel);
      }),
    );
  };
  await visit(root, '');
  return index;
}

/** Hashes of files by identity, so a file seen in several diffs is read once. Bounded. */
export class ContentHashes {
  readonly #hashes = new Map<string, Promise<string>>();
  static readonly MAX_ENTRIES = 20_000;

  hash(entry: Entry): Promise<string> {
    const s = entry.stats;
    const key = `${entry.realPath}\0${s.dev}\0${s.ino}\0${s.size}\0${s.mtimeMs}`;
    let h = this.#hashes.get(key);
    if (h === undefined) {
      if (this.#hashes.size >= ContentHashes.MAX_ENTRIES) this.#hashes.clear();
      h = sha256(entry.realPath);
      h.catch(() => this.#hashes.delete(key));
      this.#hashes.set(key, h);
    }
    return h;
  }
}

/** The sorted union paths that differ between two views. */
export async function diffViews(before: Map<string, Entry>, after: Map<string, Entry>, hashes = new ContentHashes()): Promise<string[]> {
  const paths = new Set([...before.keys(), ...after.keys()]);
  const changed: string[] = [];
  await Promise.all(
    [...paths].map(async (path) => {
      const a = before.get(path);
      const b = after.get(path);
      if (a === undefined || b === undefined || (await differs(a, b, hashes))) changed.push(path);
    }),
  );
  return changed.sort();
}

async function differs(a: Entry, b: Entry, hashes: ContentHashes): Promise<boolean> {
  if (a.kind !== b.kind || a.stats.mode !== b.stats.mode || a.stats.uid !== b.stats.uid || a.stats.gid !== b.stats.gid) return true;
  if (a.kind === 'dir') return false;
  if (a.kind === 'symlink') return (await readlink(a.realPath)) !== (await readlink(b.realPath));
  if (a.stats.size !== b.stats.size) return true;
  const same = (x: Stats, y: Stats): boolean => x.dev === y.dev && x.ino === y.ino && x.mtimeMs === y.mtimeMs;
  if (a.realPath === b.realPath && same(a.stats, b.stats)) return false;
  return (await hashes.hash(a)) !== (await hashes.hash(b));
}

function sha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
