// The merged view a guest sees of a VM's rendered layers (the guest agent, guest/agent, implements
// the same rule): a path is served by the highest-priority layer that has it, and a layer shows through
// below a path only where no higher layer has a file there (a file hides a directory of the same
// name below it). Pure, for `recontext render --print/--unpack`.
import type { RenderedFile, RenderedLayer } from './render.js';

export interface MergedFile extends RenderedFile {
  /** The layer that serves the file. */
  readonly layer: string;
}

export interface HiddenFile {
  readonly path: string;
  readonly layer: string;
  /** The higher layer whose file or directory hides it. */
  readonly by: string;
}

/** `layers` highest priority first (as selectLayers orders them, ties by name). Files sorted by path. */
export function mergeLayers(layers: readonly RenderedLayer[]): { files: MergedFile[]; hidden: HiddenFile[] } {
  const files = new Map<string, MergedFile>();
  /** Directories of the view so far, and the highest layer that made each. */
  const directories = new Map<string, string>();
  const hidden: HiddenFile[] = [];
  for (const layer of layers) {
    for (const file of layer.files) {
      const segments = file.path.split('/');
      const parents = segments.slice(0, -1).map((_, i) => segments.slice(0, i + 1).join('/'));
      const by = files.get(file.path)?.layer ?? directories.get(file.path) ?? parents.map((p) => files.get(p)?.layer).find((l) => l !== undefined);
      if (by !== undefined) {
        hidden.push({ path: file.path, layer: layer.name, by });
        continue;
      }
      files.set(file.path, { ...file, layer: layer.name });
      for (const parent of parents) if (!directories.has(parent)) directories.set(parent, layer.name);
    }
  }
  return { files: [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)), hidden };
}
