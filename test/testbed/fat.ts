// The 'fat' test guest (issue 7, DESIGN.md §5): the base guest plus Node (this machine's binary,
// stripped of its debug symbols, with the shared libraries ldd lists), libfuse.so.2 and
// fusermount (Debian libfuse2 and fuse), and applications under /opt/<name>: a directory tree
// plus the node_modules packages it needs at run time, copied from the repository's
// node_modules with their dependencies (native addons bring their own libraries, found by
// ldd). fuse.ko comes from the kernel package like the other modules (guest.ts). The hook
// /etc/ctx.d/50-run (guest/fat/ctx-run) starts what the kernel command line names (ctx.run=).
//
// planFatGuest() collects every input first; its digest (contents of small files, size, mtime and
// version of the large ones) is the cache key, so the image is rebuilt only when an input
// changes: Node, a library, the kernel package (in the directory name), an application's files.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RootBuilder } from './guest.js';
import { run, type Log } from './install.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const GUEST_SOURCES = join(HERE, 'guest');

/** An application copied to /opt/<name> in the initramfs. */
export interface AppSpec {
  readonly name: string;
  /** Directory tree copied to /opt/<name>. */
  readonly dir: string;
  /** Top-level entries of dir to copy (default: all but node_modules). */
  readonly include?: readonly string[];
  /** Packages resolved from `modulesFrom` (the repository root) with their dependencies, to /opt/<name>/node_modules. */
  readonly modules: readonly string[];
  /** Where node_modules is looked up (Node's resolution, walking up from here); default the repository root. */
  readonly modulesFrom?: string;
  /** Executables in /usr/bin that run a script of the app: name → path inside the app. */
  readonly bin?: Readonly<Record<string, string>>;
  /** Packages left out although a dependency names them (other platforms' variants); default OTHER_PLATFORM_PACKAGES. */
  readonly omit?: readonly string[];
}

/** fuse-shared-library requires only the variant of the platform it runs on (linux x64 here). */
export const OTHER_PLATFORM_PACKAGES: readonly string[] = ['fuse-shared-library-darwin', 'fuse-shared-library-linux-arm'];

/** One file of the plan: copied from `source`, or `data`, or a symlink. */
interface Entry {
  readonly dest: string;
  readonly mode: number;
  readonly source?: string;
  readonly data?: string;
  readonly symlink?: string;
  /** Strip symbols (strip --strip-all keeps .dynsym: native addons still link against node). */
  readonly strip?: boolean;
  /** `source` is C: the entry is its static build (gcc -static -O2). */
  readonly compile?: boolean;
}

/** Where the fat guest has FFS's device helper (guest/ffs/native/ffs-devd.c). */
export const FFS_DEVD = 'usr/lib/recontext-ffs/ffs-devd';

export interface FatPlan {
  /** Digest of every input (goes into the cache key). */
  readonly key: string;
  /** What goes in, for the build log. */
  readonly summary: string;
  readonly apply: (root: RootBuilder, work: string, log: Log) => Promise<void>;
}

/** Directories never copied from packages (tests, examples, build intermediates; nested node_modules are resolved on their own). */
const SKIP_DIRS = new Set(['test', 'tests', 'example', 'examples', '.github', 'obj.target', '.deps', 'node_modules']);
/** Files not needed at run time (source maps, type declarations). */
const SKIP_FILES = /\.(map|d\.ts)$/;
/** Files of large inputs (Node) are keyed by size + mtime, not by content. */
const HASH_LIMIT = 16 * 1024 * 1024;

/** The applications of the fat guest: the FUSE fixture, and FFS once its CLI is built. */
export function fatApps(): AppSpec[] {
  const apps: AppSpec[] = [{ name: 'fuse-hello', dir: join(GUEST_SOURCES, 'fuse-hello'), modules: ['fuse-native'] }];
  const ffs = join(REPO, 'guest', 'ffs');
  const cli = join(ffs, 'bin', 'recontext-ffs.js');
  if (existsSync(cli) && existsSync(join(ffs, 'dist'))) {
    const pkg = JSON.parse(readFileSync(join(ffs, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    apps.push({
      name: 'ffs',
      dir: ffs,
      include: ['package.json', 'bin', 'dist'],
      modules: Object.keys(pkg.dependencies ?? {}),
      bin: { 'recontext-ffs': 'bin/recontext-ffs.js' },
    });
  }
  return apps;
}

/** Collects the fat guest's files (Node, libraries, fusermount, hooks, apps) and their digest. */
export async function planFatGuest(apps: readonly AppSpec[] = fatApps()): Promise<FatPlan> {
  const entries = new Map<string, Entry>();
  const add = (entry: Entry): void => {
    entries.set(entry.dest, entry);
  };
  const elves: string[] = [];

  add({ dest: 'usr/bin/node', source: process.execPath, mode: 0o755, strip: true });
  add({ dest: 'bin/node', symlink: '/usr/bin/node', mode: 0o777 });
  elves.push(process.execPath);
  const fusermount = ['/usr/bin/fusermount', '/bin/fusermount'].find((p) => existsSync(p));
  if (!fusermount) throw new Error('fusermount not found (Debian package fuse; the test bed installs it)');
  // fuse-native unmounts with `fusermount -uz`; as root libfuse mounts with mount(2) itself.
  add({ dest: 'bin/fusermount', source: fusermount, mode: 0o755 });
  elves.push(fusermount);
  // libfuse updates /etc/mtab unless it is a symlink.
  add({ dest: 'etc/mtab', symlink: '/proc/mounts', mode: 0o777 });
  add({ dest: 'etc/ctx.d/50-run', source: join(GUEST_SOURCES, 'fat', 'ctx-run'), mode: 0o755 });
  // FFS's device helper, where guest/ffs/packaging/install.sh puts it (compiled in apply()).
  const devd = join(REPO, 'guest', 'ffs', 'native', 'ffs-devd.c');
  if (existsSync(devd)) add({ dest: FFS_DEVD, source: devd, mode: 0o755, compile: true });

  for (const app of apps) {
    const base = `opt/${app.name}`;
    const top = (app.include ?? readdirSync(app.dir).filter((n) => n !== 'node_modules')).map((n) => join(app.dir, n));
    for (const path of top) for (const file of walk(path)) add({ dest: `${base}/${relative(app.dir, file)}`, source: file, mode: fileMode(file) });
    for (const pkgDir of resolveModules(app.modules, app.modulesFrom ?? REPO, app.omit ?? OTHER_PLATFORM_PACKAGES)) {
      const rel = relative(app.modulesFrom ?? REPO, pkgDir); // node_modules/x[/node_modules/y]
      for (const file of walk(pkgDir, (dir) => !otherPlatformPrebuild(dir))) {
        add({ dest: `${base}/${rel}/${relative(pkgDir, file)}`, source: file, mode: fileMode(file) });
        if (file.endsWith('.node')) elves.push(file);
      }
    }
    for (const [name, script] of Object.entries(app.bin ?? {})) {
      add({ dest: `usr/bin/${name}`, data: `#!/bin/sh\nexec /usr/bin/node /${base}/${script} "$@"\n`, mode: 0o755 });
    }
  }
  const libs = await sharedLibraries(elves);
  for (const lib of libs) add({ dest: lib.slice(1), source: lib, mode: 0o755 });

  const hash = createHash('sha256');
  hash.update(process.version).update(process.execPath);
  for (const dest of [...entries.keys()].sort()) {
    const e = entries.get(dest) as Entry;
    hash.update(`${dest}\0${e.mode}\0${e.symlink ?? ''}\0${e.data ?? ''}\0${e.strip ? 's' : ''}${e.compile ? 'c' : ''}\0`);
    if (e.source) {
      const st = statSync(e.source);
      hash.update(st.size > HASH_LIMIT ? `${st.size}:${st.mtimeMs}:${st.ino}` : readFileSync(e.source));
    }
  }
  const key = hash.digest('hex');
  const summary =
    `node ${process.version} (${process.execPath}, stripped), shared libraries ${libs.map((l) => basename(l)).join(' ')}, fusermount, ` +
    `apps ${apps.map((a) => `/opt/${a.name} (${[...entries.keys()].filter((d) => d.startsWith(`opt/${a.name}/`)).length} files)`).join(', ')}`;

  return {
    key,
    summary,
    apply: async (root, work, log) => {
      for (const dest of [...entries.keys()].sort()) {
        const e = entries.get(dest) as Entry;
        if (e.symlink !== undefined) root.symlink(dest, e.symlink);
        else if (e.data !== undefined) root.file(dest, e.data, e.mode);
        else if (e.source && e.compile) {
          const binary = join(work, basename(dest));
          await run('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-Werror', '-o', binary, e.source]);
          root.file(dest, readFileSync(binary), e.mode);
        }
        else if (e.source && e.strip) {
          const stripped = join(work, `stripped-${dest.replace(/\//g, '_')}`);
          const result = await run('strip', ['--strip-all', '-o', stripped, e.source], { allowFailure: true, timeoutMs: 300_000 });
          if (result.code !== 0) log(`testbed: strip ${e.source} failed, copying it whole: ${result.stderr.trim()}`);
          root.file(dest, readFileSync(result.code === 0 ? stripped : e.source), e.mode);
        } else if (e.source) root.file(dest, readFileSync(e.source), e.mode);
      }
    },
  };
}

/** Packages and their dependencies (dependencies + optionalDependencies, Node's lookup from each package up to root). */
export function resolveModules(names: readonly string[], root: string, omit: readonly string[] = []): string[] {
  const found = new Map<string, string>(); // package dir → name
  const resolve = (name: string, from: string, optional: boolean, chain: string): void => {
    if (omit.includes(name)) return;
    for (let dir = from; ; dir = dirname(dir)) {
      const candidate = join(dir, 'node_modules', name);
      if (existsSync(join(candidate, 'package.json'))) {
        if (found.has(candidate)) return;
        found.set(candidate, name);
        const pkg = JSON.parse(readFileSync(join(candidate, 'package.json'), 'utf8')) as {
          dependencies?: Record<string, string>;
          optionalDependencies?: Record<string, string>;
        };
        for (const dep of Object.keys(pkg.dependencies ?? {})) resolve(dep, candidate, false, `${chain} > ${dep}`);
        for (const dep of Object.keys(pkg.optionalDependencies ?? {})) resolve(dep, candidate, true, `${chain} > ${dep}`);
        return;
      }
      if (dir === root || dirname(dir) === dir || relative(root, dir).startsWith('..')) break;
    }
    if (!optional) throw new Error(`node_modules package ${chain} not found from ${from} (npm ci?)`);
  };
  for (const name of names) resolve(name, root, false, name);
  return [...found.keys()].sort();
}

/** Files under path (path itself when a file), skipping SKIP_DIRS and directories keep() rejects; symlinks followed. */
function walk(path: string, keep: (dir: string) => boolean = () => true): string[] {
  const st = statSync(path);
  if (!st.isDirectory()) return [path];
  if (!keep(path)) return [];
  const files: string[] = [];
  for (const name of readdirSync(path).sort()) {
    const child = join(path, name);
    const isDir = statSync(child).isDirectory();
    if (isDir ? SKIP_DIRS.has(name) : SKIP_FILES.test(name)) continue;
    files.push(...walk(child, keep));
  }
  return files;
}

/** prebuilds/<platform>-<arch> of other platforms (darwin, arm, …) are dead weight here. */
function otherPlatformPrebuild(dir: string): boolean {
  const parent = dirname(dir);
  return parent.endsWith('/prebuilds') && !/^linux-x64/.test(relative(parent, dir));
}

function fileMode(path: string): number {
  return lstatSync(path).mode & 0o111 ? 0o755 : 0o644;
}

/** Absolute paths of the shared libraries the ELF files need (ldd, transitively: ldd lists all). */
async function sharedLibraries(files: readonly string[]): Promise<string[]> {
  const libs = new Set<string>();
  for (const file of files) {
    const { stdout, stderr, code } = await run('ldd', [file], { allowFailure: true });
    if (code !== 0) throw new Error(`ldd ${file} failed: ${stderr.trim() || stdout.trim()}`);
    for (const line of stdout.split('\n')) {
      if (/not found/.test(line)) throw new Error(`ldd ${file}: ${line.trim()} (install its Debian package: libfuse2 for libfuse.so.2)`);
      const match = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
      if (match?.[1]) libs.add(match[1]);
    }
  }
  return [...libs].sort();
}
