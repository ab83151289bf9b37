// A tiny FUSE file system served by Node inside the fat test guest (fixture of
// test/testbed/fat-guest.test.ts): mounts a read-only hello-world FS with fuse-native, reads it
// back through another process (never through fs from the serving process: see DESIGN.md §5),
// prints "CTX FUSE ok <content>" on the console, unmounts and exits.
//   node /opt/fuse-hello/hello.mjs [MOUNTPOINT]      (default /mnt/hello)
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import Fuse from 'fuse-native';

const started = process.uptime();
const mnt = process.argv[2] ?? '/mnt/hello';
const content = Buffer.from(`hello-from-node-${process.version}-in-the-guest\n`);
const now = new Date();
const stat = (mode, size) => ({ mtime: now, atime: now, ctime: now, nlink: 1, size, mode, uid: 0, gid: 0 });
const ops = {
  readdir: (path, cb) => (path === '/' ? cb(0, ['hello.txt']) : cb(Fuse.ENOENT)),
  getattr: (path, cb) => {
    if (path === '/') return cb(0, stat(0o40555, 4096));
    if (path === '/hello.txt') return cb(0, stat(0o100444, content.length));
    return cb(Fuse.ENOENT);
  },
  open: (path, flags, cb) => (path === '/hello.txt' ? cb(0, 42) : cb(Fuse.ENOENT)),
  release: (path, fd, cb) => cb(0),
  read: (path, fd, buf, len, pos, cb) => {
    const part = content.subarray(pos, pos + len);
    part.copy(buf);
    cb(part.length);
  },
};
const fail = (what, error) => {
  console.log(`CTX FUSE error ${what} ${String(error?.message ?? error).replace(/\s+/g, ' ')}`);
  process.exit(1);
};

mkdirSync(mnt, { recursive: true });
const fuse = new Fuse(mnt, ops, { force: true });
fuse.mount((error) => {
  if (error) return fail('mount', error);
  const mounted = process.uptime();
  execFile('cat', [`${mnt}/hello.txt`], (readError, stdout) => {
    if (readError) return fail('read', readError);
    const read = process.uptime();
    console.log(`CTX FUSE ok ${stdout.trim()}`);
    console.log(`CTX FUSE timing mount ${Math.round((mounted - started) * 1000)} ms read ${Math.round((read - mounted) * 1000)} ms node ${Math.round(started * 1000)} ms`);
    fuse.unmount((unmountError) => {
      if (unmountError) return fail('unmount', unmountError);
      console.log('CTX FUSE unmounted');
    });
  });
});
