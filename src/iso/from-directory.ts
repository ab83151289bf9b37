// Input adapter: a directory on disk as IsoEntry values, file contents referenced (streamed at
// write time, never read here). Symlinks are kept as symlinks, never followed; anything that is
// not a file, directory or symlink is refused, naming it. The walk uses blocking calls: for a tool
// (CLI, benchmark) thousands of lstat round trips through the thread pool cost far more.
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { IsoInputError } from './errors.js';
import { compareCodePoints, type IsoEntry } from './tree.js';

export async function entriesFromDirectory(root: string): Promise<IsoEntry[]> {
  const rootStat = lstatSync(root);
  if (!rootStat.isDirectory()) throw new IsoInputError(undefined, `${root} is not a directory`);
  const out: IsoEntry[] = [];
  // `dir` ends with '/': paths are built by concatenation, as the names need no normalizing.
  const walk = (dir: string, prefix: string): void => {
    const names = readdirSync(dir);
    // Rock Ridge and Joliet names are Unicode; a byte string that is not UTF-8 has no faithful name.
    // Node decodes such bytes to U+FFFD: only then are the raw bytes worth reading.
    if (names.some((name) => name.includes('\uFFFD'))) checkUtf8Names(dir, prefix);
    // Code point order = byte order: the walk (and the first error it meets) does not depend on the file system.
    for (const name of names.sort(compareCodePoints)) {
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const full = dir + name;
      const stat = lstatSync(full);
      const mode = Number(stat.mode) & 0o7777;
      if (stat.isDirectory()) {
        out.push({ path, kind: 'dir', mode });
        walk(`${full}/`, path);
      } else if (stat.isFile()) {
        out.push({ path, kind: 'file', mode, content: { fromFile: full, size: Number(stat.size) } });
      } else if (stat.isSymbolicLink()) {
        out.push({ path, kind: 'symlink', mode: 0o777, target: readlinkSync(full) });
      } else {
        throw new IsoInputError(path, 'not a regular file, directory or symlink (devices, sockets and FIFOs cannot go into an image)');
      }
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
