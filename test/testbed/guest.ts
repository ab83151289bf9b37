// The test guest: Debian's kernel + a busybox-static initramfs with the context agent
// (guest/ctxagent.c), built into a cache outside the repo keyed by kernel version, variant and a
// hash of the guest sources (and, for the fat variant, of everything fat.ts puts in). Also the
// accelerator probe (KVM when it really boots a Linux guest, else TCG), cached per machine boot.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planFatGuest } from './fat.js';
import { cacheRoot, formatElapsed, isAlive, lock, run, testbedRoot, type Log } from './install.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const GUEST_SOURCES = join(HERE, 'guest');

/**
 * 'base': busybox + ctxagent + SATA/virtio-scsi CD-ROM and ISO9660 modules (~5 MB, boots in
 * seconds under TCG). 'fat' (issues 7 and 19; guest/agent/README.md): the base plus fuse.ko and the Go
 * guest agent `recontext-ffs` with its configuration (fat.ts; the name is from when it carried
 * Node); /etc/ctx.d/50-run starts what the kernel command line names with ctx.run=
 * (guest/fat/ctx-run), ffsRun() the agent on the context drives.
 */
export type GuestVariant = 'base' | 'fat';

/** What a variant adds to the base: its digest is part of the cache key. */
interface VariantBuild {
  readonly key: string;
  readonly summary?: string;
  /** Adds files to the initramfs root (executables in etc/ctx.d/ run before the agent). */
  readonly extend: (root: RootBuilder, work: string, log: Log) => Promise<void>;
}

interface VariantSpec {
  /** Kernel modules to load (their dependencies are added in order). */
  readonly modules: readonly string[];
  /** Memory its guests need (MiB): the default of domainXml() and of the accelerator probe. */
  readonly memoryMiB: number;
  /** Collects the variant's extra inputs (before the cache lookup). */
  readonly prepare?: () => Promise<VariantBuild>;
}

const BASE_MODULES = ['sr_mod', 'ahci', 'isofs', 'virtio_pci', 'virtio_scsi'];

const VARIANTS: Record<GuestVariant, VariantSpec> = {
  base: { modules: BASE_MODULES, memoryMiB: 256 },
  fat: {
    modules: [...BASE_MODULES, 'fuse'],
    // The agent's RSS is ~25 MB; the base's 256 MiB leaves room (the Node guest needed 512).
    // Its ~10 MiB initramfs goes uncompressed like the base's (the Node one, 100 MiB, was lz4).
    memoryMiB: 256,
    prepare: async () => {
      const plan = await planFatGuest();
      return { key: plan.key, summary: plan.summary, extend: plan.apply };
    },
  },
};

/** Memory (MiB) guests of a variant need; domainXml() defaults to it. */
export function variantMemoryMiB(variant: GuestVariant): number {
  return VARIANTS[variant].memoryMiB;
}

export interface GuestImage {
  readonly variant: GuestVariant;
  /** Debian kernel package, e.g. linux-image-6.1.0-56-amd64, and its version. */
  readonly kernelPackage: string;
  readonly kernelVersion: string;
  /** The kernel to boot: the uncompressed vmlinux (PVH entry) when it boots, else the bzImage. */
  readonly kernel: string;
  readonly bzImage: string;
  readonly initrd: string;
  readonly cmdline: string;
  readonly dir: string;
  /** Memory its guests need (MiB); absent in builds from before it was recorded (256). */
  readonly memoryMiB?: number;
  /** Size of the initramfs file (bytes) and of what it unpacks to. */
  readonly initrdBytes?: number;
  readonly unpackedBytes?: number;
}

export interface Accelerator {
  readonly accel: 'kvm' | 'tcg';
  /** libvirt domain type for it. */
  readonly domainType: 'kvm' | 'qemu';
  /** Why KVM is not used (when tcg). */
  readonly reason?: string;
  /** Seconds from QEMU start to the guest's init reporting (with the chosen accelerator). */
  readonly bootSeconds: number;
}

export const GUEST_CMDLINE = 'console=ttyS0 quiet loglevel=1 panic=-1';

export function testbedCacheDir(): string {
  return join(cacheRoot(), 'testbed');
}

/** The kernel package Debian's linux-image-amd64 points at (RECONTEXT_GUEST_KERNEL overrides). */
async function kernelPackage(): Promise<string> {
  const explicit = process.env['RECONTEXT_GUEST_KERNEL'];
  if (explicit) return explicit;
  for (let attempt = 0; ; attempt++) {
    const { stdout, stderr } = await run('apt-cache', ['depends', 'linux-image-amd64'], { allowFailure: true });
    const match = /Depends:\s*(linux-image-[\w.+-]+)/.exec(stdout);
    if (match?.[1]) return match[1];
    // Packages installed earlier but no package lists (cleaned image): fetch them once.
    if (attempt > 0) throw new Error(`apt-cache depends linux-image-amd64 names no kernel:\n${stdout}${stderr}`);
    await run('apt-get', ['update', '-qq'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 600_000 });
  }
}

/** Downloads the kernel .deb into the cache once; returns its path and version. */
async function kernelDeb(pkg: string, log: Log): Promise<{ deb: string; version: string }> {
  const dir = join(testbedCacheDir(), 'kernel');
  mkdirSync(dir, { recursive: true });
  const existing = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (existing) return { deb: join(dir, existing), version: existing.split('_')[1] ?? '?' };
  const started = Date.now();
  log(`testbed: downloading ${pkg}`);
  const tmp = mkdtempSync(join(dir, '.download-'));
  try {
    // apt's _apt user cannot write to root's cache; that warning is harmless.
    await run('apt-get', ['download', pkg], { cwd: tmp, timeoutMs: 600_000 });
    const file = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!file) throw new Error(`apt-get download ${pkg} produced no .deb`);
    renameSync(join(tmp, file), join(dir, file));
    log(`testbed: downloaded ${file} in ${formatElapsed(Date.now() - started)}`);
    return { deb: join(dir, file), version: file.split('_')[1] ?? '?' };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The base's sources (the files directly in guest/; a variant's own files are in its key). */
function sourcesHash(variant: GuestVariant, variantKey: string): string {
  const hash = createHash('sha256');
  for (const name of readdirSync(GUEST_SOURCES).sort()) {
    const path = join(GUEST_SOURCES, name);
    if (statSync(path).isFile()) hash.update(name).update(readFileSync(path));
  }
  hash.update(readFileSync(fileURLToPath(import.meta.url))); // this build recipe itself
  hash.update(variant).update(GUEST_CMDLINE).update(variantKey);
  if (variant === 'fat') hash.update(readFileSync(join(HERE, 'fat.ts')));
  return hash.digest('hex').slice(0, 12);
}

/** Returns the cached guest, building it first when missing. Concurrent builders serialize. */
export async function ensureGuest(options: { variant?: GuestVariant; log?: Log } = {}): Promise<GuestImage> {
  const variant = options.variant ?? 'base';
  const log = options.log ?? ((line: string) => console.error(line));
  const pkg = await kernelPackage();
  const spec = VARIANTS[variant];
  const extra = await spec.prepare?.();
  const dir = join(testbedCacheDir(), 'guest', `${pkg.replace(/^linux-image-/, '')}-${variant}-${sourcesHash(variant, extra?.key ?? '')}`);
  const manifest = join(dir, 'guest.json');
  if (existsSync(manifest)) return JSON.parse(readFileSync(manifest, 'utf8')) as GuestImage;
  mkdirSync(dirname(dir), { recursive: true });
  const release = await lock(`${dir}.lock`, log, 'testbed');
  try {
    if (existsSync(manifest)) return JSON.parse(readFileSync(manifest, 'utf8')) as GuestImage;
    const started = Date.now();
    const { deb, version } = await kernelDeb(pkg, log);
    log(`testbed: building the ${variant} guest (${pkg} ${version}) into ${dir}${extra?.summary ? `: ${extra.summary}` : ''}`);
    const work = mkdtempSync(join(dirname(dir), '.build-'));
    try {
      await run('dpkg-deb', ['-x', deb, join(work, 'deb')], { timeoutMs: 300_000 });
      const release = readdirSync(join(work, 'deb', 'lib', 'modules'))[0];
      if (!release) throw new Error(`${deb} has no lib/modules`);
      const out = join(work, 'out');
      mkdirSync(out);
      const bzImage = join(out, 'vmlinuz');
      renameSync(join(work, 'deb', 'boot', `vmlinuz-${release}`), bzImage);
      const vmlinux = await extractVmlinux(bzImage, join(out, 'vmlinux'));

      const root = new RootBuilder();
      root.file('init', readFileSync(join(GUEST_SOURCES, 'init')), 0o755);
      root.file('bin/busybox', readFileSync('/bin/busybox'), 0o755);
      const agent = join(work, 'ctxagent');
      await run('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-Werror', '-o', agent, join(GUEST_SOURCES, 'ctxagent.c')]);
      await run('strip', [agent], { allowFailure: true });
      root.file('sbin/ctxagent', readFileSync(agent), 0o755);
      const moduleDir = join(work, 'deb', 'lib', 'modules', release);
      const ordered = moduleOrder(moduleDir, spec.modules);
      for (const [name, path] of ordered) root.file(`lib/modules/${name}.ko`, readFileSync(path), 0o644);
      root.file('etc/modules.list', `${ordered.map(([name]) => name).join('\n')}\n`, 0o644);
      await extra?.extend(root, work, log);
      const cpio = root.cpio();
      const initrdName = 'initrd.cpio';
      writeFileSync(join(out, initrdName), cpio);

      const final = (name: string): string => join(dir, name);
      const image: GuestImage = {
        variant,
        kernelPackage: pkg,
        kernelVersion: version,
        kernel: vmlinux ? final('vmlinux') : final('vmlinuz'),
        bzImage: final('vmlinuz'),
        initrd: final(initrdName),
        cmdline: GUEST_CMDLINE,
        dir,
        memoryMiB: spec.memoryMiB,
        initrdBytes: statSync(join(out, initrdName)).size,
        unpackedBytes: cpio.length,
      };
      writeFileSync(join(out, 'guest.json'), `${JSON.stringify(image, null, 2)}\n`);
      rmSync(dir, { recursive: true, force: true });
      renameSync(out, dir);
      removeOlderBuilds(dir, log);
      log(
        `testbed: guest built in ${formatElapsed(Date.now() - started)}: modules ${ordered.map(([n]) => n).join(' ')}; ` +
          `initrd ${Math.round((image.initrdBytes ?? 0) / 1024)} KiB; ` +
          `kernel ${vmlinux ? 'vmlinux (PVH)' : 'bzImage'}`,
      );
      return image;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  } finally {
    release();
  }
}

/**
 * Older builds of the same kernel and variant (other source hashes) are dead weight, unless a
 * running test bed instance still boots them (its state names the directory: a benchmark or a
 * test run started before the sources changed).
 */
function removeOlderBuilds(current: string, log: Log): void {
  const parent = dirname(current);
  const prefix = basename(current).replace(/[0-9a-f]{12}$/, '');
  const inUse = guestDirsInUse();
  for (const name of readdirSync(parent)) {
    if (name.startsWith(prefix) && join(parent, name) !== current && !name.endsWith('.lock')) {
      if (inUse.has(join(parent, name))) {
        log(`testbed: keeping the older guest build ${name} (a running test bed instance uses it)`);
        continue;
      }
      rmSync(join(parent, name), { recursive: true, force: true });
      log(`testbed: removed the older guest build ${name}`);
    }
  }
}

/** Guest directories named by the state files of test bed instances (running or not yet cleaned up). */
function guestDirsInUse(): Set<string> {
  const dirs = new Set<string>();
  let ids: string[] = [];
  try {
    ids = readdirSync(testbedRoot());
  } catch {
    return dirs;
  }
  for (const id of ids) {
    try {
      const state = JSON.parse(readFileSync(join(testbedRoot(), id, 'state.json'), 'utf8')) as { guest?: { dir?: string } };
      if (state.guest?.dir) dirs.add(state.guest.dir);
    } catch {
      // no state (yet): nothing to keep
    }
  }
  return dirs;
}

/** The uncompressed ELF kernel inside a bzImage (xz payload), or undefined when not found. */
async function extractVmlinux(bzImage: string, output: string): Promise<string | undefined> {
  const data = readFileSync(bzImage);
  const offset = data.indexOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  if (offset < 0) return undefined;
  const elf = await new Promise<Buffer | undefined>((resolve) => {
    const child = spawn('xz', ['-dc', '--single-stream'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', () => resolve(undefined));
    child.on('close', () => resolve(Buffer.concat(chunks)));
    child.stdin.on('error', () => undefined);
    child.stdin.end(data.subarray(offset));
  });
  if (!elf || elf.length < 4 || elf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  writeFileSync(output, elf);
  return output;
}

/** Module name → file, dependencies first (from each module's .modinfo "depends="). */
function moduleOrder(moduleDir: string, roots: readonly string[]): Array<[string, string]> {
  const files = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ko')) files.set(entry.name.slice(0, -3).replace(/-/g, '_'), path);
    }
  };
  walk(join(moduleDir, 'kernel'));
  const ordered: Array<[string, string]> = [];
  const seen = new Set<string>();
  const visit = (name: string, chain: readonly string[]): void => {
    const key = name.replace(/-/g, '_');
    if (seen.has(key)) return;
    if (chain.includes(key)) throw new Error(`module dependency cycle: ${[...chain, key].join(' -> ')}`);
    const path = files.get(key);
    if (!path) throw new Error(`kernel module ${name} not found under ${moduleDir} (built in, or a compressed .ko?)`);
    for (const dep of moduleDepends(path)) visit(dep, [...chain, key]);
    seen.add(key);
    ordered.push([key, path]);
  };
  for (const root of roots) visit(root, []);
  return ordered;
}

function moduleDepends(path: string): string[] {
  const data = readFileSync(path);
  const marker = Buffer.from('\0depends=');
  const at = data.indexOf(marker);
  if (at < 0) return [];
  const start = at + marker.length;
  const end = data.indexOf(0, start);
  return data
    .subarray(start, end)
    .toString('latin1')
    .split(',')
    .filter((s) => s.length > 0);
}

/** An initramfs tree in memory, written as a newc cpio archive (no root, no cpio tool needed). */
export class RootBuilder {
  private readonly entries = new Map<string, { mode: number; data: Buffer; rdev?: [number, number] }>();

  constructor() {
    for (const dir of ['bin', 'sbin', 'etc', 'etc/ctx.d', 'lib', 'lib/modules', 'proc', 'sys', 'dev', 'ctx', 'tmp', 'mnt']) this.dir(dir);
    // The kernel opens /dev/console for init's stdio before devtmpfs is mounted.
    this.entries.set('dev/console', { mode: 0o020600, data: Buffer.alloc(0), rdev: [5, 1] });
  }

  dir(path: string): void {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join('/');
      if (!this.entries.has(sub)) this.entries.set(sub, { mode: 0o040755, data: Buffer.alloc(0) });
    }
  }

  file(path: string, data: Buffer | string, mode: number): void {
    const parent = dirname(path);
    if (parent !== '.') this.dir(parent);
    this.entries.set(path, { mode: 0o100000 | mode, data: typeof data === 'string' ? Buffer.from(data) : data });
  }

  symlink(path: string, target: string): void {
    const parent = dirname(path);
    if (parent !== '.') this.dir(parent);
    this.entries.set(path, { mode: 0o120777, data: Buffer.from(target) });
  }

  cpio(): Buffer {
    const chunks: Buffer[] = [];
    const pad = (length: number): void => {
      if (length % 4 !== 0) chunks.push(Buffer.alloc(4 - (length % 4)));
    };
    let ino = 1;
    const add = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0]): void => {
      const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], name.length + 1, 0];
      const header = `070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}${name}\0`;
      chunks.push(Buffer.from(header, 'latin1'));
      pad(header.length);
      chunks.push(data);
      pad(data.length);
    };
    for (const name of [...this.entries.keys()].sort()) {
      const entry = this.entries.get(name);
      if (entry) add(name, entry.mode, entry.data, entry.rdev);
    }
    add('TRAILER!!!', 0, Buffer.alloc(0));
    return Buffer.concat(chunks);
  }
}

/**
 * KVM when /dev/kvm really boots this guest (nested KVM often exists but hangs or fails for Linux
 * guests), else TCG. Probed with the guest itself (init prints "CTX PROBE ok" and powers off);
 * the answer is cached per machine boot and guest.
 */
export async function probeAccelerator(guest: GuestImage, log: Log): Promise<Accelerator> {
  const forced = process.env['RECONTEXT_TESTBED_ACCEL'];
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const cache = join(guest.dir, `accel-${bootId}.json`);
  if (!forced && existsSync(cache)) return JSON.parse(readFileSync(cache, 'utf8')) as Accelerator;
  let kvmReason: string;
  if (forced === 'tcg') kvmReason = 'RECONTEXT_TESTBED_ACCEL=tcg';
  else if (!existsSync('/dev/kvm')) kvmReason = 'no /dev/kvm';
  else {
    const kvm = await bootProbe(guest, 'kvm', 20_000); // a KVM boot of this guest takes ~1 s
    if (kvm.ok) {
      const result: Accelerator = { accel: 'kvm', domainType: 'kvm', bootSeconds: kvm.seconds };
      log(`testbed: KVM works (probe guest booted in ${kvm.seconds.toFixed(1)}s): domain type kvm`);
      if (!forced) writeFileSync(cache, JSON.stringify(result));
      return result;
    }
    kvmReason = `/dev/kvm exists but a Linux guest did not boot with -accel kvm: ${kvm.detail}`;
  }
  const tcg = await bootProbe(guest, 'tcg', 120_000);
  if (!tcg.ok) throw new Error(`the test guest does not boot under TCG either: ${tcg.detail}`);
  const result: Accelerator = { accel: 'tcg', domainType: 'qemu', reason: kvmReason, bootSeconds: tcg.seconds };
  log(`testbed: using TCG (domain type qemu): ${kvmReason}; probe guest booted in ${tcg.seconds.toFixed(1)}s`);
  if (!forced) writeFileSync(cache, JSON.stringify(result));
  return result;
}

async function bootProbe(guest: GuestImage, accel: 'kvm' | 'tcg', timeoutMs: number): Promise<{ ok: boolean; seconds: number; detail: string }> {
  const started = Date.now();
  const args = [
    ...['-machine', 'q35', '-accel', accel, '-m', String(guest.memoryMiB ?? 256), '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none'],
    ...['-no-reboot', '-serial', 'stdio', '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', `${guest.cmdline} ctx.probe=1`],
  ];
  return new Promise((resolve) => {
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let done = false;
    const finish = (ok: boolean, detail: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (child.pid !== undefined && isAlive(child.pid)) child.kill('SIGKILL');
      resolve({ ok, seconds: (Date.now() - started) / 1000, detail });
    };
    const timer = setTimeout(() => finish(false, `no "CTX PROBE ok" within ${timeoutMs / 1000}s; output: ${output.slice(-300).trim() || '(none)'}`), timeoutMs);
    const collect = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.includes('CTX PROBE ok')) finish(true, 'ok');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (error) => finish(false, error.message));
    child.on('close', (code, signal) => finish(false, `qemu exited (${signal ?? code}) before the guest reported: ${output.slice(-300).trim()}`));
  });
}

