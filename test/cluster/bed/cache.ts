// Build outputs of the local cluster, cached outside the repo under <cache>/cluster, each keyed by a
// hash of everything that goes into it (versions, go.mod/go.sum, Dockerfiles, package lists), so a
// changed input rebuilds exactly what depends on it and nothing else.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { cacheRoot, lock } from '../../controlplane/build.js';

export function clusterCache(): string {
  return join(cacheRoot(), 'cluster');
}

/** A short content key: sha256 of the parts (strings or file contents), 12 hex digits. */
export function keyOf(...parts: readonly (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) {
    hash.update(part);
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 12);
}

/** Every file under dir (sorted, relative names and contents), for keys of source directories. */
export function keyOfTree(dir: string, skip: (name: string) => boolean = () => false): string {
  const parts: (string | Buffer)[] = [];
  const walk = (at: string): void => {
    for (const name of readdirSync(at).sort()) {
      if (skip(name)) continue;
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else parts.push(relative(dir, path), readFileSync(path));
    }
  };
  walk(dir);
  return keyOf(...parts);
}

/**
 * The cached path `<cache>/cluster/<group>/<name>`, made by `make(temporaryPath)` when missing.
 * make writes a file or a directory at the temporary path; it is renamed into place only when
 * complete. Concurrent callers serialize on a lock beside it.
 */
export async function cached(group: string, name: string, make: (temporary: string) => Promise<void>, log: (line: string) => void): Promise<string> {
  const path = join(clusterCache(), group, name);
  if (existsSync(path)) return path;
  mkdirSync(dirname(path), { recursive: true });
  const release = await lock(`${path}.lock`, log, `cluster: ${name}`);
  try {
    if (existsSync(path)) return path;
    // Beside the final path, with its name as the suffix (tools such as mmdebstrap choose the output
    // format by the extension).
    const temporary = join(dirname(path), `.tmp-${process.pid}-${basename(path)}`);
    rmSync(temporary, { recursive: true, force: true });
    try {
      await make(temporary);
      renameSync(temporary, path);
    } finally {
      rmSync(temporary, { recursive: true, force: true });
    }
    return path;
  } finally {
    release();
  }
}
