// Test helpers: layer directories written from a description, and layers over them.
import { chmod, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Layer } from '../src/layer.js';

export type TreeEntry = string | Buffer | { readonly content: string | Buffer; readonly mode: number } | { readonly symlink: string } | { readonly dir: number };

/** Writes a tree: path → content, {content, mode}, {symlink: target} or {dir: mode}. */
export async function writeTree(root: string, tree: Record<string, TreeEntry>): Promise<string> {
  await mkdir(root, { recursive: true });
  for (const [path, entry] of Object.entries(tree)) {
    const full = join(root, path);
    await mkdir(dirname(full), { recursive: true });
    if (typeof entry === 'string' || Buffer.isBuffer(entry)) await writeFile(full, entry);
    else if ('symlink' in entry) await symlink(entry.symlink, full);
    else if ('dir' in entry) {
      await mkdir(full, { recursive: true });
      await chmod(full, entry.dir);
    } else {
      await writeFile(full, entry.content);
      await chmod(full, entry.mode);
    }
  }
  return root;
}

export function dirLayer(name: string, root: string, priority: number, extra: Partial<Layer> = {}): Layer {
  return { name, priority, root, source: { kind: 'dir', path: root }, ...extra };
}

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `ffs-${prefix}-`));
}
