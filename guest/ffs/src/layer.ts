// A layer: one directory tree in the union (a mounted context image, or a plain directory), with
// the identity the operator gave it. The image manifest format is the one src/reconcile/render.ts
// writes (manifestFile): `.recontext/manifest.json` with layer, class, priority and digest.
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';

/** Where a layer's tree comes from: a plain directory, or a block device mounted at `root`. */
export type LayerSource = { readonly kind: 'dir'; readonly path: string } | { readonly kind: 'device'; readonly device: string };

export interface Layer {
  /** Unique within a stack: letters, digits, '.', '_' and '-'. */
  readonly name: string;
  /** The context class (service, infrastructure, legislative, broker …), when known. */
  readonly class?: string;
  /** Higher wins. Equal priorities: the name that sorts first wins. */
  readonly priority: number;
  /** The image digest (sha256:…) from the manifest, when known. */
  readonly digest?: string;
  /** Absolute path of the tree the union serves. Must stay readable while the layer is in a stack. */
  readonly root: string;
  readonly source: LayerSource;
}

/**
 * The directory every layer image keeps its metadata in; it is not part of the union view. The
 * operator defines the same names (src/crds/contextlayer.ts): test/lint/image-format.test.ts
 * compares them.
 */
export const RESERVED_DIRECTORY = '.recontext';
export const MANIFEST_PATH = `${RESERVED_DIRECTORY}/manifest.json`;
export const HOOKS_PATH = `${RESERVED_DIRECTORY}/hooks.json`;

/** What an image's manifest says (fields absent or malformed are left out). */
export interface LayerManifest {
  readonly layer?: string;
  readonly class?: string;
  readonly priority?: number;
  readonly digest?: string;
}

/** A stack that cannot be built as asked; the message names the offending layer. */
export class LayerError extends Error {
  override readonly name = 'LayerError';
}

const NAME = /^[A-Za-z0-9._-]{1,253}$/;

/** Checks one layer; throws LayerError. */
export function validateLayer(layer: Layer): void {
  if (!NAME.test(layer.name)) throw new LayerError(`layer name ${JSON.stringify(layer.name)} must be 1-253 of A-Z a-z 0-9 . _ -`);
  if (!Number.isSafeInteger(layer.priority)) throw new LayerError(`layer ${layer.name}: priority ${String(layer.priority)} is not an integer`);
  if (!isAbsolute(layer.root)) throw new LayerError(`layer ${layer.name}: root ${layer.root} is not an absolute path`);
}

/**
 * Reads `.recontext/manifest.json` under a layer root; undefined when there is none. A manifest
 * that is not JSON is an error (a broken image should be noticed, not served under a guess).
 */
export async function readManifest(root: string): Promise<LayerManifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(root, MANIFEST_PATH), 'utf8');
  } catch (error: unknown) {
    if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) return undefined;
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error: unknown) {
    throw new LayerError(`${join(root, MANIFEST_PATH)} is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof raw !== 'object' || raw === null) throw new LayerError(`${join(root, MANIFEST_PATH)} is not a JSON object`);
  const m = raw as Record<string, unknown>;
  return {
    ...(typeof m['layer'] === 'string' ? { layer: m['layer'] } : {}),
    ...(typeof m['class'] === 'string' ? { class: m['class'] } : {}),
    ...(typeof m['priority'] === 'number' && Number.isSafeInteger(m['priority']) ? { priority: m['priority'] } : {}),
    ...(typeof m['digest'] === 'string' ? { digest: m['digest'] } : {}),
  };
}

/** A plain-directory layer as the command line names it: NAME=DIR:PRIORITY. */
export interface DirectoryLayerSpec {
  readonly name: string;
  readonly dir: string;
  readonly priority: number;
}

/** Parses NAME=DIR:PRIORITY (DIR may contain ':'; the priority follows the last one). */
export function parseLayerArgument(argument: string, cwd: string = process.cwd()): DirectoryLayerSpec {
  const eq = argument.indexOf('=');
  const colon = argument.lastIndexOf(':');
  if (eq <= 0 || colon < eq + 2) throw new LayerError(`--layer ${argument}: expected NAME=DIR:PRIORITY`);
  const priorityText = argument.slice(colon + 1);
  if (!/^-?\d+$/.test(priorityText)) throw new LayerError(`--layer ${argument}: priority ${JSON.stringify(priorityText)} is not an integer`);
  const spec = { name: argument.slice(0, eq), dir: resolve(cwd, argument.slice(eq + 1, colon)), priority: Number(priorityText) };
  if (!NAME.test(spec.name)) throw new LayerError(`--layer ${argument}: name must be 1-253 of A-Z a-z 0-9 . _ -`);
  return spec;
}

/**
 * A layer from a plain directory. Name and priority are the caller's; class and digest come from
 * the directory's manifest when it has one (a directory holding an unpacked image).
 */
export async function directoryLayer(spec: DirectoryLayerSpec): Promise<Layer> {
  const manifest = await readManifest(spec.dir);
  const layer: Layer = {
    name: spec.name,
    priority: spec.priority,
    root: spec.dir,
    source: { kind: 'dir', path: spec.dir },
    ...(manifest?.class !== undefined ? { class: manifest.class } : {}),
    ...(manifest?.digest !== undefined ? { digest: manifest.digest } : {}),
  };
  validateLayer(layer);
  return layer;
}

export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
