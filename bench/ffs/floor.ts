// bench:ffs's "fuse-native floor": the bench's union served through fuse-native with FFS's mount
// options and nothing else — every path, its attributes and every listing resolved once, before
// mounting, into maps; getattr and readdir answer synchronously from them, reads go to the winning
// layer's file. No FFS code in the request path, so its figures are what any fuse-native file
// system with FFS's consistency options costs on this machine: the floor FFS stands on.
// Usage (bench/ffs/run.ts starts it): node --import tsx bench/ffs/floor.ts MOUNTPOINT DIR... (highest priority first)
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { mountOperations } from '../../guest/ffs/src/fuse.js';

type Reply = (code: number, ...values: unknown[]) => void;

const [mountpoint, ...layers] = process.argv.slice(2);
if (!mountpoint || layers.length === 0) throw new Error('usage: floor.ts MOUNTPOINT DIR... (highest priority first)');

const entries = new Map<string, { readonly stats: Stats; readonly real: string }>();
const listings = new Map<string, Set<string>>();
// Lowest priority first, so a higher layer's entry replaces a lower one's.
for (const layer of [...layers].reverse()) {
  const walk = (path: string): void => {
    const real = join(layer, path);
    const stats = lstatSync(real);
    entries.set(path, { stats, real });
    if (!stats.isDirectory()) return;
    const names = listings.get(path) ?? new Set<string>();
    listings.set(path, names);
    for (const name of readdirSync(real)) {
      names.add(name);
      walk(path === '/' ? `/${name}` : `${path}/${name}`);
    }
  };
  walk('/');
}

const ENOENT = -osConstants.errno.ENOENT;
const EROFS = -osConstants.errno.EROFS;
const handles = new Map<number, number>();
let nextHandle = 1;
const ops: Record<string, (...args: never[]) => void> = {
  getattr: (path: string, reply: Reply) => {
    const entry = entries.get(path);
    return entry ? reply(0, entry.stats) : reply(ENOENT);
  },
  fgetattr: (path: string, _fd: number, reply: Reply) => {
    const entry = entries.get(path);
    return entry ? reply(0, entry.stats) : reply(ENOENT);
  },
  readdir: (path: string, reply: Reply) => {
    const names = listings.get(path);
    return names ? reply(0, [...names]) : reply(ENOENT);
  },
  readlink: (path: string, reply: Reply) => {
    const entry = entries.get(path);
    return entry ? reply(0, readlinkSync(entry.real)) : reply(ENOENT);
  },
  // The layers are plain directories on the host's disk, not the mount: synchronous calls are safe here.
  open: (path: string, _flags: number, reply: Reply) => {
    const entry = entries.get(path);
    if (!entry) return reply(ENOENT);
    const handle = nextHandle++;
    handles.set(handle, openSync(entry.real, 'r'));
    return reply(0, handle);
  },
  read: (_path: string, handle: number, buffer: Buffer, length: number, position: number, reply: Reply) => reply(readSync(handles.get(handle)!, buffer, 0, length, position)),
  release: (_path: string, handle: number, reply: Reply) => {
    const fd = handles.get(handle);
    handles.delete(handle);
    if (fd !== undefined) closeSync(fd);
    reply(0);
  },
  statfs: (_path: string, reply: Reply) => reply(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, namemax: 255, flag: 1 }),
};
for (const name of ['write', 'create', 'mknod', 'unlink', 'rename', 'link', 'symlink', 'mkdir', 'rmdir', 'truncate', 'ftruncate', 'chmod', 'chown', 'utimens']) {
  ops[name] = (...args: unknown[]) => (args[args.length - 1] as Reply)(EROFS);
}

const mounted = await mountOperations(mountpoint, ops);
console.error(`floor ready: ${entries.size} paths, ${listings.size} directories`);
const stop = (): void => void mounted.unmount().then(() => process.exit(0), () => process.exit(1));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
