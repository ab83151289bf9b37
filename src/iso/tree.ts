// Input validation: a flat list of entries becomes one checked tree. Everything the format cannot
// carry is rejected here, naming the path, before any layout happens.
import { IsoInputError, IsoLimitError } from './errors.js';

/** File contents: bytes in memory, or a file on disk of a known size that is streamed while writing. */
export type IsoContent = Buffer | { readonly fromFile: string; readonly size: number };

/** One entry of an image. Parent directories that are not listed are created with mode 0755. */
export interface IsoEntry {
  /** Relative POSIX path, '/'-separated, no '.', '..' or empty components. */
  readonly path: string;
  readonly kind: 'file' | 'dir' | 'symlink';
  /** Permission bits (0–0o7777). Defaults: file 0644, dir 0755, symlink 0777. */
  readonly mode?: number;
  /** Required for files. */
  readonly content?: IsoContent;
  /** Required for symlinks: the link target, stored verbatim (Rock Ridge SL). */
  readonly target?: string;
}

export interface TreeNode {
  /** The real name (UTF-8), as Rock Ridge and Joliet present it. '' for the root. */
  readonly name: string;
  /** Full relative path, for error messages. */
  readonly path: string;
  readonly kind: 'file' | 'dir' | 'symlink';
  readonly mode: number;
  readonly size: number;
  readonly content: IsoContent | undefined;
  readonly target: string | undefined;
  /** Children sorted by name bytes (UTF-8); empty for files and symlinks. */
  readonly children: TreeNode[];
}

/** Rock Ridge NM carries names of any length, but POSIX readers stop at NAME_MAX. */
export const MAX_NAME_BYTES = 255;
/** SL components can be continued without bound; PATH_MAX bounds what a reader can resolve. */
export const MAX_SYMLINK_TARGET_BYTES = 4095;
/** ECMA-119 9.1.4: the data length of one extent is a 32-bit field. */
export const MAX_FILE_SIZE = 0xffff_ffff;

const LONE_SURROGATE = /\p{Cs}/u;
/** Any surrogate code unit: a cheap pre-check, since the Unicode-aware test is slow and rarely needed. */
const SURROGATE = /[\uD800-\uDFFF]/;
const DEFAULT_MODE = { file: 0o644, dir: 0o755, symlink: 0o777 } as const;

/** Files and symlinks share one empty map: insert() never adds to a node that is not a directory. */
const NO_CHILDREN = new Map<string, MutableNode>();

interface MutableNode {
  name: string;
  path: string;
  kind: 'file' | 'dir' | 'symlink';
  mode: number;
  size: number;
  content: IsoContent | undefined;
  target: string | undefined;
  explicit: boolean;
  children: Map<string, MutableNode>;
}

export function buildTree(entries: readonly IsoEntry[]): TreeNode {
  const root = newDir('', '', false);
  for (const entry of entries) insert(root, entry);
  return freeze(root);
}

function insert(root: MutableNode, entry: IsoEntry): void {
  const names = splitPath(entry.path);
  let dir = root;
  for (let i = 0; i < names.length - 1; i++) {
    const name = names[i] as string;
    let next = dir.children.get(name);
    if (next === undefined) {
      next = newDir(name, dir.path === '' ? name : `${dir.path}/${name}`, false);
      dir.children.set(name, next);
    } else if (next.kind !== 'dir') {
      throw new IsoInputError(entry.path, `parent ${next.path} is a ${next.kind}, not a directory`);
    }
    dir = next;
  }
  const name = names[names.length - 1] as string;
  const existing = dir.children.get(name);
  const node = toNode(entry, name);
  if (existing !== undefined) {
    // A directory created implicitly by a deeper entry may be declared afterwards (to set its mode).
    if (existing.explicit || existing.kind !== 'dir' || node.kind !== 'dir') {
      throw new IsoInputError(entry.path, 'duplicate entry');
    }
    existing.mode = node.mode;
    existing.explicit = true;
    return;
  }
  dir.children.set(name, node);
}

function toNode(entry: IsoEntry, name: string): MutableNode {
  const mode = checkMode(entry);
  switch (entry.kind) {
    case 'dir':
      if (entry.content !== undefined || entry.target !== undefined) {
        throw new IsoInputError(entry.path, 'a directory has neither content nor target');
      }
      return { ...newDir(name, entry.path, true), mode };
    case 'file': {
      if (entry.content === undefined) throw new IsoInputError(entry.path, 'a file needs content');
      if (entry.target !== undefined) throw new IsoInputError(entry.path, 'a file has no symlink target');
      const size = Buffer.isBuffer(entry.content) ? entry.content.length : entry.content.size;
      if (!Number.isSafeInteger(size) || size < 0) throw new IsoInputError(entry.path, `invalid size ${size}`);
      if (size > MAX_FILE_SIZE) {
        throw new IsoLimitError(entry.path, `file is ${size} bytes; ISO9660 files must be smaller than 4 GiB (multi-extent files are not supported)`);
      }
      return { name, path: entry.path, kind: 'file', mode, size, content: entry.content, target: undefined, explicit: true, children: NO_CHILDREN };
    }
    case 'symlink': {
      const target = entry.target;
      if (target === undefined || target === '') throw new IsoInputError(entry.path, 'a symlink needs a non-empty target');
      if (entry.content !== undefined) throw new IsoInputError(entry.path, 'a symlink has no content');
      if (target.includes('\0')) throw new IsoInputError(entry.path, 'symlink target contains NUL');
      if (Buffer.byteLength(target, 'utf8') > MAX_SYMLINK_TARGET_BYTES) {
        throw new IsoLimitError(entry.path, `symlink target longer than ${MAX_SYMLINK_TARGET_BYTES} bytes`);
      }
      return { name, path: entry.path, kind: 'symlink', mode, size: 0, content: undefined, target, explicit: true, children: NO_CHILDREN };
    }
    default:
      throw new IsoInputError(entry.path, `unknown kind ${String((entry as { kind: unknown }).kind)}`);
  }
}

function checkMode(entry: IsoEntry): number {
  const mode = entry.mode ?? DEFAULT_MODE[entry.kind];
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new IsoInputError(entry.path, `mode ${String(entry.mode)} is not a permission value (0–0o7777)`);
  }
  return mode;
}

/** Splits and checks a relative path; the separator is '/', so no name can contain one. */
export function splitPath(path: string): string[] {
  if (typeof path !== 'string' || path === '') throw new IsoInputError(String(path), 'empty path');
  if (path.includes('\0')) throw new IsoInputError(path, 'path contains NUL');
  if (path.startsWith('/')) throw new IsoInputError(path, 'absolute path; entries are relative to the image root');
  // An indexOf loop: String#split costs several times more on short paths.
  const names: string[] = [];
  for (let start = 0; ; ) {
    const slash = path.indexOf('/', start);
    names.push(slash < 0 ? path.slice(start) : path.slice(start, slash));
    if (slash < 0) break;
    start = slash + 1;
  }
  const surrogates = SURROGATE.test(path);
  for (const name of names) {
    if (name === '..') throw new IsoInputError(path, "path escapes the image root ('..')");
    if (name === '' || name === '.') throw new IsoInputError(path, "path is not normalized (empty or '.' component)");
    // A UTF-16 unit is at most 3 UTF-8 bytes: only long names need counting.
    if (name.length * 3 > MAX_NAME_BYTES && Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) {
      throw new IsoInputError(path, `name ${JSON.stringify(name.slice(0, 40))}… is longer than ${MAX_NAME_BYTES} bytes`);
    }
    if (surrogates && LONE_SURROGATE.test(name)) throw new IsoInputError(path, 'name is not well-formed Unicode (lone surrogate)');
  }
  return names;
}

function newDir(name: string, path: string, explicit: boolean): MutableNode {
  return { name, path, kind: 'dir', mode: DEFAULT_MODE.dir, size: 0, content: undefined, target: undefined, explicit, children: new Map() };
}

function freeze(node: MutableNode): TreeNode {
  const children = node.children.size === 0 ? [] : [...node.children.values()].sort((a, b) => compareCodePoints(a.name, b.name)).map(freeze);
  return { name: node.name, path: node.path, kind: node.kind, mode: node.mode, size: node.size, content: node.content, target: node.target, children };
}

/**
 * Orders well-formed strings by code point, which is the order of their UTF-8 bytes, without
 * encoding them. UTF-16 units order surrogates (code points above U+FFFF) below U+E000–U+FFFF;
 * ranking them above restores code point order.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codeUnitRank(x) - codeUnitRank(y);
  }
  return a.length - b.length;
}

function codeUnitRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit <= 0xdfff ? unit + 0x2000 : unit - 0x800;
}
