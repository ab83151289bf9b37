// Input adapter: a directory on disk as IsoEntry values. Symlinks are kept as symlinks, never
// followed; anything that is not a file, directory or symlink is refused, naming it.
//
// The walk costs system calls, and for a typical layer (tens of small files) they are most of the
// build. So: `readdir` with file types (no `lstat` to tell files from directories), and each small
// file is opened once, here — `open` + `fstat` (its mode and size) + `read` + `close` — and its
// bytes carried in the entry, instead of an `lstat` now and `open` + `fstat` + `read` + `close`
// again at write time. Only small files, and only up to PRELOAD_BUDGET bytes per walk: larger files
// (and the rest of a large tree) are referenced and streamed at write time, so memory stays bounded
// whatever the tree's size. Directories take one `lstat` (their mode). Blocking calls throughout:
// for a tool (CLI, benchmark) or a small layer, thousands of round trips through the thread pool
// cost far more.
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Dirent } from 'node:fs';
import { IsoInputError } from './errors.js';
import { compareCodePoints, type IsoEntry } from './tree.js';

/** Files up to this size are read during the walk… */
const PRELOAD_FILE_MAX = 64 * 1024;
/** …until this many bytes are held; the rest are streamed at write time. */
const PRELOAD_BUDGET = 1 << 20;
/** Preloaded files are carved out of slabs of this size: one allocation for many small files. */
const SLAB_SIZE = 64 * 1024;
/** O_NOFOLLOW: a name that became a symlink since readdir is not followed; O_NONBLOCK: nor does a FIFO block the open. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export async function entriesFromDirectory(root: string): Promise<IsoEntry[]> {
  const rootStat = lstatSync(root);
  if (!rootStat.isDirectory()) throw new IsoInputError(undefined, `${root} is not a directory`);
  const out: IsoEntry[] = [];
  let budget = PRELOAD_BUDGET;
  let slab: Buffer | undefined;
  let slabUsed = 0;

  /** A regular file's entry, its bytes read now if it is small; undefined if it is not a regular file (any more). */
  const fileEntry = (full: string, path: string): IsoEntry | undefined => {
    let fd: number;
    try {
      fd = openSync(full, OPEN_FLAGS);
    } catch {
      // Unreadable, gone or no longer a file: lstat decides (the writer reports an unreadable file).
      return undefined;
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) return undefined;
      const mode = stat.mode & 0o7777;
      const size = stat.size;
      if (size > PRELOAD_FILE_MAX || size > budget) return { path, kind: 'file', mode, content: { fromFile: full, size } };
      if (slab === undefined || SLAB_SIZE - slabUsed < size) {
        slab = Buffer.allocUnsafe(Math.max(SLAB_SIZE, size));
        slabUsed = 0;
      }
      let read = 0;
      while (read < size) {
        const n = readSync(fd, slab, slabUsed + read, size - read, read);
        if (n === 0) break; // shrank since fstat: take what is there now
        read += n;
      }
      const content = slab.subarray(slabUsed, slabUsed + read);
      // Keep the slab aligned to 8 bytes; what a file did not use serves the next one.
      slabUsed += (read + 7) & ~7;
      budget -= read;
      return { path, kind: 'file', mode, content };
    } finally {
      closeSync(fd);
    }
  };

  /** Any entry, from lstat: directories, symlinks, and whatever readdir could not type. */
  const statEntry = (full: string, path: string): IsoEntry => {
    const stat = lstatSync(full);
    const mode = stat.mode & 0o7777;
    if (stat.isDirectory()) return { path, kind: 'dir', mode };
    if (stat.isFile()) return { path, kind: 'file', mode, content: { fromFile: full, size: stat.size } };
    if (stat.isSymbolicLink()) return { path, kind: 'symlink', mode: 0o777, target: readlinkSync(full) };
    throw new IsoInputError(path, 'not a regular file, directory or symlink (devices, sockets and FIFOs cannot go into an image)');
  };

  // `dir` ends with '/': paths are built by concatenation, as the names need no normalizing.
  const walk = (dir: string, prefix: string): void => {
    const dirents = readdirSync(dir, { withFileTypes: true });
    // Rock Ridge and Joliet names are Unicode; a byte string that is not UTF-8 has no faithful name.
    // Node decodes such bytes to U+FFFD: only then are the raw bytes worth reading.
    if (dirents.some((d) => d.name.includes('\uFFFD'))) checkUtf8Names(dir, prefix);
    // Code point order = byte order: the walk (and the first error it meets) does not depend on the file system.
    dirents.sort((a: Dirent, b: Dirent) => compareCodePoints(a.name, b.name));
    for (const dirent of dirents) {
      const name = dirent.name;
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const full = dir + name;
      // File types come from readdir (d_type); a file system that does not report them gets lstat.
      const entry = (dirent.isFile() ? fileEntry(full, path) : undefined) ?? statEntry(full, path);
      out.push(entry);
      if (entry.kind === 'dir') walk(`${full}/`, path);
    }
  };
  walk(root.endsWith('/') ? root : `${root}/`, '');
  return out;
}

function checkUtf8Names(dir: string, prefix: string): void {
  for (const raw of readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare)) {
    const name = raw.toString('utf8');
    if (!Buffer.from(name, 'utf8').equals(raw)) {
      throw new IsoInputError(prefix === '' ? name : `${prefix}/${name}`, `name is not valid UTF-8 (bytes ${raw.toString('hex')})`);
    }
  }
}
