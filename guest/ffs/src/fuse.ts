// The FUSE adapter: serves a Union at a mountpoint through fuse-native (libfuse 2, dlopened as
// libfuse.so.2). Mount options, and why:
//   ro                 the kernel answers writes with EROFS before they reach us (the write
//                      operations below answer EROFS too, for a mount without it);
//   direct_io          no page cache: every read reaches the handle it was issued on, so two
//                      readers of one path that opened different versions never share cached
//                      pages (with the cache, a reader could get pages another reader's version
//                      filled: a torn file). Private mmap (executables) still works; shared does not;
//   attr/entry/negative_timeout=0  the kernel asks again on every lookup, so a new open or stat
//                      sees the new stack at once;
//   default_permissions the kernel checks the layer files' modes, uid and gid;
//   allow_other        (root only) the guest's services, whatever their user, can read.
import Fuse from 'fuse-native';
import { constants as osConstants } from 'node:os';
import type { Union } from './union.js';

export interface MountOptions {
  /** Let users other than the mounting one in (needs root or user_allow_other). Default: when root. */
  readonly allowOther?: boolean;
}

export interface Mounted {
  readonly mountpoint: string;
  /** Unmounts (fusermount -uz: lazy, so a busy mount goes once its last user leaves) and closes open files. */
  unmount(): Promise<void>;
}

class FfsFuse extends Fuse {
  readonly #options: readonly string[];
  constructor(mountpoint: string, ops: Record<string, (...args: never[]) => void>, options: readonly string[]) {
    super(mountpoint, ops, { force: true, mkdir: true });
    this.#options = options;
  }
  // fuse-native cannot pass 0 timeouts, ro or direct_io: build the option string ourselves.
  override _fuseOptions(): string {
    return `-o${this.#options.join(',')}`;
  }
}

type Reply = (code: number, ...values: unknown[]) => void;

/** errno of an FsError or a Node errno error, as the negative number FUSE wants (EIO if unknown). */
export function fuseErrno(error: unknown): number {
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  const errno = code === undefined ? undefined : (osConstants.errno as Record<string, number>)[code];
  return errno === undefined ? -osConstants.errno.EIO : -errno;
}

/** The fuse-native operation table for a union: reads served, every write answered EROFS. */
export function operations(union: Union): Record<string, (...args: never[]) => void> {
  const EROFS = -osConstants.errno.EROFS;
  const fail = (reply: Reply) => (error: unknown) => reply(fuseErrno(error));
  const readOnly = (...args: unknown[]): void => (args[args.length - 1] as Reply)(EROFS);
  const ops: Record<string, (...args: never[]) => void> = {
    getattr: (path: string, reply: Reply) => void union.getattr(path).then((a) => reply(0, a), fail(reply)),
    fgetattr: (path: string, _fd: number, reply: Reply) => void union.getattr(path).then((a) => reply(0, a), fail(reply)),
    readdir: (path: string, reply: Reply) => void union.readdir(path).then((names) => reply(0, names), fail(reply)),
    readlink: (path: string, reply: Reply) => void union.readlink(path).then((target) => reply(0, target), fail(reply)),
    access: (path: string, mode: number, reply: Reply) => void union.access(path, mode).then(() => reply(0), fail(reply)),
    open: (path: string, flags: number, reply: Reply) => void union.open(path, flags).then((h) => reply(0, h), fail(reply)),
    // read replies with the byte count (or a negative errno) in the first argument.
    read: (_path: string, handle: number, buffer: Buffer, length: number, position: number, reply: Reply) =>
      void union.read(handle, buffer, length, position).then((n) => reply(n), fail(reply)),
    release: (_path: string, handle: number, reply: Reply) => void union.release(handle).then(() => reply(0), fail(reply)),
    statfs: (_path: string, reply: Reply) => reply(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, namemax: 255, flag: 1 }),
  };
  for (const name of ['write', 'create', 'mknod', 'unlink', 'rename', 'link', 'symlink', 'mkdir', 'rmdir', 'truncate', 'ftruncate', 'chmod', 'chown', 'utimens', 'setxattr', 'removexattr']) {
    ops[name] = readOnly;
  }
  return ops;
}

/**
 * Mounts a fuse-native operation table with FFS's mount options (above); resolves once the kernel
 * has the mount (init reached). bench/ffs mounts its fuse-native floor with the same options.
 */
export function mountOperations(mountpoint: string, ops: Record<string, (...args: never[]) => void>, options: MountOptions = {}): Promise<Mounted> {
  const allowOther = options.allowOther ?? process.getuid?.() === 0;
  const fuseOptions = [
    'ro',
    'direct_io',
    'attr_timeout=0',
    'entry_timeout=0',
    'negative_timeout=0',
    'default_permissions',
    'fsname=recontext-ffs',
    'subtype=recontext-ffs',
    ...(allowOther ? ['allow_other'] : []),
  ];
  const fuse = new FfsFuse(mountpoint, ops, fuseOptions);
  return new Promise((resolve, reject) => {
    fuse.mount((error) => {
      if (error) return reject(error);
      let unmounting: Promise<void> | undefined;
      resolve({ mountpoint: fuse.mnt, unmount: () => (unmounting ??= new Promise<void>((done, fail) => fuse.unmount((e) => (e ? fail(e) : done())))) });
    });
  });
}

/** Mounts the union; resolves once the kernel has the mount (init reached). */
export async function mountUnion(union: Union, mountpoint: string, options: MountOptions = {}): Promise<Mounted> {
  const mounted = await mountOperations(mountpoint, operations(union), options);
  let unmounting: Promise<void> | undefined;
  return { mountpoint: mounted.mountpoint, unmount: () => (unmounting ??= mounted.unmount().finally(() => union.closeAll())) };
}
