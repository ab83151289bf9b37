// Input adapter: a directory on disk as IsoEntry values, file contents referenced (streamed at
// write time, never read here). Symlinks are kept as symlinks, never followed; anything that is
// not a file, directory or symlink is refused, naming it.
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { IsoInputError } from './errors.js';
import type { IsoEntry } from './tree.js';

export async function entriesFromDirectory(root: string): Promise<IsoEntry[]> {
  const rootStat = await lstat(root);
  if (!rootStat.isDirectory()) throw new IsoInputError('', `${root} is not a directory`);
  const out: IsoEntry[] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const names = (await readdir(dir)).sort();
    const stats = await Promise.all(names.map((name) => lstat(join(dir, name))));
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const stat = stats[i] as Awaited<ReturnType<typeof lstat>>;
      const full = join(dir, name);
      const path = prefix === '' ? name : `${prefix}/${name}`;
      const mode = Number(stat.mode) & 0o7777;
      if (stat.isDirectory()) {
        out.push({ path, kind: 'dir', mode });
        await walk(full, path);
      } else if (stat.isFile()) {
        out.push({ path, kind: 'file', mode, content: { fromFile: full, size: Number(stat.size) } });
      } else if (stat.isSymbolicLink()) {
        out.push({ path, kind: 'symlink', mode: 0o777, target: await readlink(full) });
      } else {
        throw new IsoInputError(path, 'not a regular file, directory or symlink (devices, sockets and FIFOs cannot go into an image)');
      }
    }
  };
  await walk(root, '');
  return out;
}
