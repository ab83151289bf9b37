// The union: one current stack, replaced whole by setLayers(), and the read-only file operations
// FUSE asks for, each answered from one stack. An open file keeps the real file descriptor it
// opened, so it reads the version it opened however the stack changes afterwards; a new open
// sees the new stack. Nothing here touches the mount itself (only the layers' trees), and every
// file system call is asynchronous: the process serving the mount must never block its loop.
import { constants as fsConstants, type Stats } from 'node:fs';
import { open as openFile, readlink as readLink, type FileHandle } from 'node:fs/promises';
import { cacheOf, DEFAULT_CACHE_LIMITS, type CacheLimits, type CacheStats } from './cache.js';
import { RESERVED_DIRECTORY, type Layer } from './layer.js';
import { FsError, components, isReserved, listDirectory, resolvePath } from './resolve.js';
import { createStack, type Stack } from './stack.js';

/** File attributes as FUSE wants them (mode includes the file type bits). */
export interface Attributes {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly nlink: number;
  readonly atime: Date;
  readonly mtime: Date;
  readonly ctime: Date;
}

/** One stack replacement, as listeners see it. */
export interface StackChange {
  readonly previous: Stack;
  readonly current: Stack;
}

/**
 * Runs after every swap with the stack before and after it. setLayers() settles once every
 * listener has settled, so a listener may still read the previous stack's trees until then.
 */
export type ChangeListener = (change: StackChange) => Promise<void> | void;

export interface UnionOptions {
  /** Clock for changedAt/since; defaults to the wall clock. */
  readonly now?: () => Date;
  /** Bounds of each stack's resolution cache (cache.ts); defaults to DEFAULT_CACHE_LIMITS. */
  readonly cache?: CacheLimits;
}

/** The union's own read-only metadata directory at the root of the mount. */
export const STATUS_DIRECTORY = '/.recontext';
export const STATUS_FILE = `${STATUS_DIRECTORY}/status.json`;

/**
 * How often an operation that raced a stack swap is redone against the newer stack before its
 * answer is given as it is (each redo needs another swap during it: practically never reached).
 */
const MAX_REDO_AFTER_SWAP = 3;

const WRITE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_RDWR | fsConstants.O_TRUNC | fsConstants.O_CREAT | fsConstants.O_APPEND;

type Handle = { readonly kind: 'file'; readonly file: FileHandle; readonly root: string } | { readonly kind: 'buffer'; readonly data: Buffer };

export class Union {
  readonly #now: () => Date;
  readonly #cacheLimits: CacheLimits;
  #stack: Stack;
  readonly #listeners = new Set<ChangeListener>();
  readonly #since = new Map<string, Date>();
  readonly #handles = new Map<number, Handle>();
  #nextHandle = 1;
  readonly #openPerRoot = new Map<string, number>();
  readonly #releaseWaiters = new Map<string, (() => void)[]>();
  readonly #statusSections = new Map<string, () => unknown>();

  constructor(options: UnionOptions = {}) {
    this.#now = options.now ?? (() => new Date());
    this.#cacheLimits = options.cache ?? DEFAULT_CACHE_LIMITS;
    this.#stack = createStack([], 0, this.#now());
    cacheOf(this.#stack, this.#cacheLimits);
  }

  /** The stack every new operation resolves against. */
  get stack(): Stack {
    return this.#stack;
  }

  /**
   * THE way to change what the union shows: replaces the whole stack with `layers`, atomically.
   * The swap happens before this returns (operations that start afterwards see the new stack;
   * files opened before keep reading what they opened). The promise settles when the change
   * listeners (the hook diff) are done with the previous stack: only then unmount the previous
   * layers' roots, lazily (umount -l), so files still open on them keep reading. Invalid layers
   * (bad name or priority, relative root, a name twice) reject it and leave the stack unchanged.
   */
  setLayers(layers: readonly Layer[]): Promise<StackChange> {
    let next: Stack;
    try {
      next = createStack(layers, this.#stack.generation + 1, this.#now());
    } catch (error: unknown) {
      return Promise.reject(error);
    }
    const previous = this.#stack;
    cacheOf(next, this.#cacheLimits);
    this.#stack = next;
    // Nothing resolved against the previous stack may be answered from now on (#consistent redoes
    // what was under way), so its cache goes now, not when the last holder of the stack lets go.
    cacheOf(previous).close();
    const since = new Map<string, Date>();
    for (const layer of next.layers) since.set(layerKey(layer), this.#since.get(layerKey(layer)) ?? next.changedAt);
    this.#since.clear();
    for (const [k, v] of since) this.#since.set(k, v);
    const change: StackChange = { previous, current: next };
    return Promise.allSettled([...this.#listeners].map(async (listener) => listener(change))).then(() => change);
  }

  /** The current stack's resolution cache: sizes and hit counts. */
  cacheStats(): CacheStats {
    return cacheOf(this.#stack).stats();
  }

  /** Registers a change listener; returns its removal. */
  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** When the layer (identified by name, root and digest) entered the stack unchanged. */
  since(layer: Layer): Date | undefined {
    return this.#since.get(layerKey(layer));
  }

  /** Files open on a layer root (the union's handles, not the kernel's). */
  openFiles(root: string): number {
    return this.#openPerRoot.get(root) ?? 0;
  }

  /**
   * Settles when no file is open on `root` any more: before ejecting a medium whose layer has
   * left the stack (a lazily unmounted image stays busy until its last reader closes).
   */
  released(root: string): Promise<void> {
    if (this.openFiles(root) === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.#releaseWaiters.get(root) ?? [];
      waiters.push(resolve);
      this.#releaseWaiters.set(root, waiters);
    });
  }

  /** Adds a top-level section to status.json (e.g. hooks, mountpoint); the provider runs per read. */
  setStatusSection(key: string, provider: () => unknown): void {
    this.#statusSections.set(key, provider);
  }

  /** The status document: the stack (layers highest first) and the registered sections. */
  status(): Record<string, unknown> {
    const stack = this.#stack;
    const sections: Record<string, unknown> = {};
    for (const [key, provider] of this.#statusSections) sections[key] = provider();
    return {
      ...sections,
      generation: stack.generation,
      changedAt: stack.changedAt.toISOString(),
      layers: stack.layers.map((l) => ({
        name: l.name,
        ...(l.class !== undefined ? { class: l.class } : {}),
        priority: l.priority,
        ...(l.digest !== undefined ? { digest: l.digest } : {}),
        source: l.source,
        root: l.root,
        since: (this.since(l) ?? stack.changedAt).toISOString(),
        openFiles: this.openFiles(l.root),
      })),
    };
  }

  // ---- file operations (FUSE paths: "/", "/etc/x.conf"); errors are FsError or Node errno errors

  async getattr(path: string): Promise<Attributes> {
    const virtual = this.#virtualAttributes(path);
    if (virtual !== undefined) return virtual;
    const resolved = await this.#consistent((stack) => resolvePath(stack, path));
    if (resolved === undefined) {
      if (components(path).length === 0) return this.#directoryAttributes(0o755);
      throw new FsError('ENOENT');
    }
    return attributesOf(resolved.stats);
  }

  /** The names (shared with the stack's cache: do not modify). */
  async readdir(path: string): Promise<readonly string[]> {
    const parts = components(path);
    if (isReserved(parts)) {
      if (parts.length === 1) return ['status.json'];
      throw new FsError(parts.length === 2 && parts[1] === 'status.json' ? 'ENOTDIR' : 'ENOENT');
    }
    if (parts.length === 0 && this.#stack.layers.length === 0) return [RESERVED_DIRECTORY];
    const { names } = await this.#consistent((stack) =>
      listDirectory(stack, path).catch((error: unknown) => {
        // An empty or file-less stack still has a root directory.
        if (parts.length === 0 && error instanceof FsError && error.code === 'ENOENT') return { names: [] as string[] };
        throw error;
      }),
    );
    return parts.length === 0 ? [RESERVED_DIRECTORY, ...names] : names;
  }

  async readlink(path: string): Promise<string> {
    const resolved = await this.#consistent((stack) => resolvePath(stack, path));
    if (resolved === undefined) throw new FsError(this.#virtualAttributes(path) === undefined ? 'ENOENT' : 'EINVAL');
    if (resolved.kind !== 'symlink') throw new FsError('EINVAL');
    return readLink(resolved.realPath);
  }

  /** Opens for reading; any write intent is EROFS. Returns the handle number FUSE passes back. */
  async open(path: string, flags: number): Promise<number> {
    if ((flags & WRITE_FLAGS) !== 0) throw new FsError('EROFS');
    if (path === STATUS_FILE) return this.#addHandle({ kind: 'buffer', data: this.#statusBytes() });
    if (this.#virtualAttributes(path) !== undefined) throw new FsError('EISDIR');
    const opened = await this.#consistent(
      async (stack) => {
        const resolved = await resolvePath(stack, path);
        if (resolved === undefined) throw new FsError('ENOENT');
        if (resolved.kind === 'dir') throw new FsError('EISDIR');
        // O_NOFOLLOW is not used: symlinks are resolved by the kernel before open reaches us.
        return { file: await openFile(resolved.realPath, fsConstants.O_RDONLY), root: resolved.layer.root };
      },
      async (stale) => stale.file.close(),
    );
    this.#openPerRoot.set(opened.root, this.openFiles(opened.root) + 1);
    return this.#addHandle({ kind: 'file', ...opened });
  }

  /** Reads from what the handle opened (never re-resolved). */
  async read(handle: number, buffer: Buffer, length: number, position: number): Promise<number> {
    const h = this.#handles.get(handle);
    if (h === undefined) throw new FsError('EBADF');
    if (h.kind === 'buffer') {
      if (position >= h.data.length) return 0;
      return h.data.copy(buffer, 0, position, Math.min(h.data.length, position + length));
    }
    const { bytesRead } = await h.file.read(buffer, 0, length, position);
    return bytesRead;
  }

  async release(handle: number): Promise<void> {
    const h = this.#handles.get(handle);
    if (h === undefined) return;
    this.#handles.delete(handle);
    if (h.kind === 'buffer') return;
    try {
      await h.file.close();
    } finally {
      const left = this.openFiles(h.root) - 1;
      if (left > 0) this.#openPerRoot.set(h.root, left);
      else {
        this.#openPerRoot.delete(h.root);
        for (const resolve of this.#releaseWaiters.get(h.root) ?? []) resolve();
        this.#releaseWaiters.delete(h.root);
      }
    }
  }

  /** access(2): existence is checked here, permission bits by the kernel (default_permissions). */
  async access(path: string, mode: number): Promise<void> {
    if ((mode & fsConstants.W_OK) !== 0) throw new FsError('EROFS');
    await this.getattr(path);
  }

  /** Closes every open file (at unmount). */
  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.#handles.keys()].map((h) => this.release(h)));
  }

  // ---- internals

  /**
   * Runs a lookup against the current stack; when the stack was swapped while it ran, redoes it
   * against the new one (a replaced layer may have been unmounted mid-lookup), undoing the stale
   * result. So an answer never mixes two stacks.
   */
  async #consistent<T>(lookup: (stack: Stack) => Promise<T>, undo?: (stale: T) => Promise<void>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const stack = this.#stack;
      let result: T;
      try {
        result = await lookup(stack);
      } catch (error: unknown) {
        if (this.#stack !== stack && attempt < MAX_REDO_AFTER_SWAP) continue;
        throw error;
      }
      if (this.#stack === stack || attempt >= MAX_REDO_AFTER_SWAP) return result;
      await undo?.(result);
    }
  }

  #addHandle(handle: Handle): number {
    while (this.#handles.has(this.#nextHandle)) this.#nextHandle = (this.#nextHandle % 0x7fffffff) + 1;
    const id = this.#nextHandle;
    this.#nextHandle = (this.#nextHandle % 0x7fffffff) + 1;
    this.#handles.set(id, handle);
    return id;
  }

  #statusBytes(): Buffer {
    return Buffer.from(JSON.stringify(this.status(), null, 2) + '\n');
  }

  #virtualAttributes(path: string): Attributes | undefined {
    if (path === STATUS_DIRECTORY) return this.#directoryAttributes(0o555);
    if (path === STATUS_FILE) {
      const t = this.#stack.changedAt;
      return { mode: fsConstants.S_IFREG | 0o444, uid: 0, gid: 0, size: this.#statusBytes().length, nlink: 1, atime: t, mtime: t, ctime: t };
    }
    return undefined;
  }

  #directoryAttributes(permissions: number): Attributes {
    const t = this.#stack.changedAt;
    return { mode: fsConstants.S_IFDIR | permissions, uid: 0, gid: 0, size: 0, nlink: 2, atime: t, mtime: t, ctime: t };
  }
}

function attributesOf(stats: Stats): Attributes {
  return {
    mode: stats.mode,
    uid: stats.uid,
    gid: stats.gid,
    size: stats.size,
    nlink: stats.nlink,
    atime: stats.atime,
    mtime: stats.mtime,
    ctime: stats.ctime,
  };
}

function layerKey(layer: Layer): string {
  return `${layer.name}\0${layer.root}\0${layer.digest ?? ''}`;
}
