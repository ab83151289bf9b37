// Benchmark: FFS (recontext-ffs, the Go guest agent in guest/agent) vs kernel overlayfs vs mergerfs
// vs unionfs-fuse, all mounted read-only over the same three layers in the same priority order, in
// one run (issues 7, 19): stat and readdir latency over 10 000 files, sequential read throughput of
// a 64 MiB file, open+read+close latency of context-sized files (4 KiB, 64 KiB, 1 MiB), and the
// agent's memory. Prints the machine, one table (median / p95 per operation, MB/s for the big file)
// and issue 19's goal checks.
//
// Every file system call is made by a small C program (bench/ffs/fsbench.c, compiled with gcc at
// start), never by this process and never by the process serving a mount. Contenders take turns
// round by round, so load from other work on the machine falls on all of them alike.
//
// Run: npm run bench:ffs   (as root: mounts, apt-get, drop_caches; needs Go to build the agent)
//   env BENCH_FFS_DIR=<dir>          scratch place (default: the OS temp dir)
//       BENCH_FFS_ROUNDS=<n>         rounds over all contenders (default 3)
//       BENCH_FFS_PASSES=<n>         warm stat/readdir passes per round (default 2)
//       BENCH_FFS_FILES=<n>          files in the union (default 10000)
//       BENCH_FFS_BIG_MIB=<n>        size of the big file (default 64)
//       BENCH_FFS_DROP_CACHES=0      do not write 2 to /proc/sys/vm/drop_caches before the cold
//                                    stat/readdir pass (it drops dentries and inodes machine-wide)
//       BENCH_FFS_CONTENDERS=a,b     only these (keys: ffs, overlay, mergerfs, mergerfs-nocache, unionfs)
//       BENCH_FFS_FFS_COLD=0         keep FFS's stack (and its resolution memo) across rounds: only
//                                    round 1's first passes are cold for FFS (default: `recontext-ffs
//                                    set` with the same layers before every first pass)
// Needs gcc, mergerfs, unionfs-fuse (installed with apt-get when missing; the bench stops naming
// the package when that fails), overlayfs and Go.
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTools, UNION_BENCH_TOOLS } from '../../test/setup/system-packages.js';
import { buildGuestAgent } from '../../test/testbed/fat.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const env = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
};
const ROUNDS = env('BENCH_FFS_ROUNDS', 3);
const PASSES = env('BENCH_FFS_PASSES', 2);
const FILES = env('BENCH_FFS_FILES', 10_000);
const BIG_MIB = env('BENCH_FFS_BIG_MIB', 64);
const DROP_CACHES = process.env.BENCH_FFS_DROP_CACHES !== '0';
/** Before each first (cold) stat and readdir pass, give FFS a new stack (an empty resolution memo). */
const FFS_COLD = process.env.BENCH_FFS_FFS_COLD !== '0';
/** Runs per round of the big file read (cold, then warm) and of each context-sized read. */
const BIG_RUNS = 3;
const CTX_COLD_RUNS = 10;
const CTX_WARM_RUNS = 50;
/** Issue 19's goals (ratios of medians, ours over theirs; throughput as MB/s). */
const GOALS = {
  warmOverOverlay: 1.3,
  contextOverOverlay: 1.2,
  bigThroughputOfMergerfs: 0.9,
  rssMiB: 30,
} as const;

// --- the layers ---------------------------------------------------------------------------------

/** Lowest first; the priorities are the ContextLayer class defaults (src/crds/contextlayer.ts). */
const LAYERS = [
  { name: 'service', priority: 100, fileSize: 128 },
  { name: 'infrastructure', priority: 300, fileSize: 256 },
  { name: 'legislative', priority: 400, fileSize: 384 },
] as const;
type LayerName = (typeof LAYERS)[number]['name'];
const GROUPS = 10;
const DIRS_PER_GROUP = 10;
const CONTEXT_FILES = [
  { label: '4 KiB', name: 'ctx-4k.conf', size: 4096 },
  { label: '64 KiB', name: 'ctx-64k.conf', size: 64 * 1024 },
  { label: '1 MiB', name: 'ctx-1m.conf', size: 1024 * 1024 },
] as const;

/**
 * Which layers hold union file i: by its tenth (k = floor(i / dirs) % 10), so every directory has
 * files of every pattern. 80 % are in service, 30 % in infrastructure, 30 % in legislative; 40 %
 * of the paths exist in more than one layer (k 0, 6, 7: one of them in all three).
 */
function holders(i: number, dirs: number): LayerName[] {
  const k = Math.floor(i / dirs) % 10;
  const out: LayerName[] = [];
  if (k < 8) out.push('service');
  if (k >= 6 && k <= 8) out.push('infrastructure');
  if (k === 0 || k === 7 || k === 9) out.push('legislative');
  return out;
}

interface Layout {
  readonly layerDirs: Record<LayerName, string>;
  /** Union paths (relative to the mount root) with the size of the winning layer's file. */
  readonly statList: string;
  /** Union directories with their entry count. */
  readonly readdirList: string;
  readonly bigPath: string;
  readonly bigUnderlying: string;
  readonly context: { label: string; path: string; underlying: string }[];
  readonly overlapping: number;
}

function content(layer: string, what: string, size: number): Buffer {
  const head = `layer=${layer} ${what}\n`;
  return Buffer.from(head.padEnd(size - 1, '#') + '\n');
}

function createLayers(base: string): Layout {
  const layerDirs = Object.fromEntries(LAYERS.map((l) => [l.name, join(base, 'layers', l.name)])) as Record<LayerName, string>;
  const dirs = GROUPS * DIRS_PER_GROUP;
  const dirOf = (i: number): string => {
    const d = i % dirs;
    return `etc/g${Math.floor(d / DIRS_PER_GROUP)}/d${d % DIRS_PER_GROUP}`;
  };
  // Every layer has every directory, so a listing merges three real directories.
  for (const layer of LAYERS) {
    for (let d = 0; d < dirs; d++) mkdirSync(join(layerDirs[layer.name], dirOf(d)), { recursive: true });
    mkdirSync(join(layerDirs[layer.name], 'data'), { recursive: true });
    mkdirSync(join(layerDirs[layer.name], 'ctx'), { recursive: true });
  }
  const stat: string[] = [];
  const entries = new Map<string, number>();
  let overlapping = 0;
  for (let i = 0; i < FILES; i++) {
    const path = `${dirOf(i)}/f${String(i).padStart(5, '0')}.conf`;
    const have = holders(i, dirs);
    if (have.length > 1) overlapping++;
    for (const name of have) writeFileSync(join(layerDirs[name], path), content(name, path, LAYERS.find((l) => l.name === name)!.fileSize));
    const winner = LAYERS.filter((l) => have.includes(l.name)).at(-1)!;
    stat.push(`${path}\t${winner.fileSize}`);
    entries.set(dirOf(i), (entries.get(dirOf(i)) ?? 0) + 1);
  }
  stat.sort();
  // The big file lives in the lowest layer: a lookup misses in both layers above it first.
  const bigUnderlying = join(layerDirs.service, 'data/big.bin');
  const fd = openSync(bigUnderlying, 'w');
  const chunk = Buffer.alloc(4 << 20);
  for (let written = 0; written < BIG_MIB << 20; written += chunk.length) writeSync(fd, randomFillSync(chunk), 0, Math.min(chunk.length, (BIG_MIB << 20) - written));
  closeSync(fd);
  writeFileSync(join(layerDirs.legislative, 'data/README'), 'big.bin comes from the service layer\n');
  // Context-sized files: infrastructure's version wins over a shorter one in service.
  for (const file of CONTEXT_FILES) {
    writeFileSync(join(layerDirs.service, 'ctx', file.name), content('service', file.name, file.size / 2));
    writeFileSync(join(layerDirs.infrastructure, 'ctx', file.name), randomFillSync(Buffer.alloc(file.size)));
  }
  writeFileSync(join(layerDirs.legislative, 'ctx/policy.conf'), 'retention = 30d\n');
  const readdir = [
    `etc\t${GROUPS}`,
    ...Array.from({ length: GROUPS }, (_, g) => `etc/g${g}\t${DIRS_PER_GROUP}`),
    ...[...entries].sort(([a], [b]) => a.localeCompare(b)).map(([dir, count]) => `${dir}\t${count}`),
    'data\t2',
    `ctx\t${CONTEXT_FILES.length + 1}`,
  ];
  const statList = join(base, 'stat.list');
  const readdirList = join(base, 'readdir.list');
  writeFileSync(statList, stat.join('\n') + '\n');
  writeFileSync(readdirList, readdir.join('\n') + '\n');
  return {
    layerDirs,
    statList,
    readdirList,
    bigPath: 'data/big.bin',
    bigUnderlying,
    context: CONTEXT_FILES.map((f) => ({ label: f.label, path: `ctx/${f.name}`, underlying: join(layerDirs.infrastructure, 'ctx', f.name) })),
    overlapping,
  };
}

// --- the contenders -----------------------------------------------------------------------------

interface Mount {
  readonly key: string;
  readonly title: string;
  readonly mountpoint: string;
  /** The serving process, for its CPU time (none for the kernel's overlayfs). */
  readonly pid?: number;
  /**
   * Makes the contender's own caches cold before a first pass (FFS: `recontext-ffs set` with the
   * same layers, a new stack with an empty resolution memo). The kernel's caches are dropped
   * separately (drop_caches).
   */
  coldStart?(): Promise<void>;
  unmount(): Promise<void>;
}

interface Contender {
  readonly key: string;
  readonly title: string;
  mount(mountpoint: string, layout: Layout, scratch: string): Promise<Mount>;
}

/** Highest priority first, as overlayfs, mergerfs and unionfs-fuse take their branches. */
const byPriority = (layout: Layout): string[] => [...LAYERS].reverse().map((l) => layout.layerDirs[l.name]);

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { maxBuffer: 256 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

function isMounted(mountpoint: string): boolean {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === mountpoint);
}

async function waitFor(condition: () => boolean, what: string, child?: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (child !== undefined && child.exitCode !== null) throw new Error(`${what}: the process exited ${child.exitCode}`);
    if (Date.now() > until) throw new Error(`${what}: timed out`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Keeps the tail of a child's stderr (FFS logs JSON lines there) without letting the pipe fill. */
function tail(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text = (text + d).slice(-16_384)));
  return () => text;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A FUSE daemon in the foreground: unmounted with umount (it exits then), lazily as a last resort. */
function fuseDaemon(key: string, title: string, mountpoint: string, child: ChildProcess, stop: () => Promise<void>): Mount {
  let done: Promise<void> | undefined;
  return {
    key,
    title,
    mountpoint,
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    unmount: () =>
      (done ??= (async () => {
        await stop();
        if (!(await exited(child, 10_000))) child.kill('SIGKILL');
        if (isMounted(mountpoint)) await run('umount', ['-l', mountpoint]);
      })()),
  };
}

async function foreground(key: string, title: string, mountpoint: string, command: string, args: string[], ready: (logs: () => string) => boolean, stop?: (child: ChildProcess) => Promise<void>): Promise<Mount> {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: repo });
  const logs = tail(child);
  const mount = fuseDaemon(key, title, mountpoint, child, async () => {
    if (stop !== undefined) await stop(child);
    else if (isMounted(mountpoint)) await run('umount', [mountpoint]);
  });
  mounts.push(mount);
  try {
    await waitFor(() => ready(logs), `${title} did not mount (${logs().trim()})`, child);
  } catch (error) {
    await mount.unmount();
    throw error;
  }
  return mount;
}

const contenders: Contender[] = [
  {
    key: 'ffs',
    title: 'ours (recontext-ffs, Go)',
    mount: async (mountpoint, layout, scratch) => {
      const layers = LAYERS.flatMap((l) => ['--layer', `${l.name}=${layout.layerDirs[l.name]}:${l.priority}`]);
      const mounted = await foreground(
        'ffs',
        'ours (recontext-ffs, Go)',
        mountpoint,
        agentBinary(),
        // --config of a file that does not exist: the default policy, whatever this host's /etc holds.
        ['mount', mountpoint, ...layers, '--control', join(scratch, 'ffs.sock'), '--config', join(scratch, 'no-such-ffs.yaml')],
        (logs) => logs().includes('"control socket ready"'),
        // recontext-ffs unmounts itself on SIGTERM and exits 0.
        async (child) => void child.kill('SIGTERM'),
      );
      if (!FFS_COLD) return mounted;
      // The same layers again: a new stack, whose resolution memo starts empty (guest/agent/README.md).
      const coldStart = async (): Promise<void> => {
        const result = await run(agentBinary(), ['set', mountpoint, ...layers]);
        if (result.code !== 0) throw new Error(`recontext-ffs set failed: ${result.stderr.trim()}`);
      };
      return Object.assign(mounted, { coldStart });
    },
  },
  {
    key: 'overlay',
    title: 'kernel overlayfs',
    mount: async (mountpoint, layout) => {
      const result = await run('mount', ['-t', 'overlay', 'bench-ffs-overlay', '-o', `ro,lowerdir=${byPriority(layout).join(':')}`, mountpoint]);
      if (result.code !== 0) throw new Error(`mount -t overlay failed: ${result.stderr.trim()}`);
      let done: Promise<void> | undefined;
      const mount: Mount = {
        key: 'overlay',
        title: 'kernel overlayfs',
        mountpoint,
        unmount: () =>
          (done ??= (async () => {
            if (isMounted(mountpoint) && (await run('umount', [mountpoint])).code !== 0) await run('umount', ['-l', mountpoint]);
          })()),
      };
      mounts.push(mount);
      return mount;
    },
  },
  {
    key: 'mergerfs',
    title: 'mergerfs (defaults)',
    // First found in branch order for every lookup (category.search=ff is also the default);
    // otherwise mergerfs' defaults: 1 s attribute and entry caches, page cache per libfuse.
    mount: (mountpoint, layout) =>
      foreground('mergerfs', 'mergerfs (defaults)', mountpoint, 'mergerfs', ['-f', '-o', 'ro,allow_other,category.search=ff,fsname=bench-mergerfs', byPriority(layout).map((d) => `${d}=RO`).join(':'), mountpoint], () => isMounted(mountpoint)),
  },
  {
    key: 'mergerfs-nocache',
    title: 'mergerfs (no caches)',
    // What a union without invalidation needs for atomic swaps (the first, TypeScript agent's
    // design): zero attribute, entry and negative timeouts and no page cache (cache.files=off is
    // direct_io). The baseline for FFS's cold (first) stat.
    mount: (mountpoint, layout) =>
      foreground(
        'mergerfs-nocache',
        'mergerfs (no caches)',
        mountpoint,
        'mergerfs',
        ['-f', '-o', 'ro,allow_other,category.search=ff,cache.attr=0,cache.entry=0,cache.negative_entry=0,cache.files=off,fsname=bench-mergerfs-nocache', byPriority(layout).map((d) => `${d}=RO`).join(':'), mountpoint],
        () => isMounted(mountpoint),
      ),
  },
  {
    key: 'unionfs',
    title: 'unionfs-fuse (defaults)',
    mount: (mountpoint, layout) =>
      foreground('unionfs', 'unionfs-fuse (defaults)', mountpoint, 'unionfs', ['-f', '-o', 'ro,allow_other,fsname=bench-unionfs', byPriority(layout).map((d) => `${d}=RO`).join(':'), mountpoint], () => isMounted(mountpoint)),
  },
];

/** Everything mounted so far, unmounted in reverse on the way out (also on error and Ctrl-C). */
const mounts: Mount[] = [];
let scratch: string | undefined;
let cleaning: Promise<void> | undefined;
/** Unmounts everything, then removes the scratch directory, unless something would not unmount. */
function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    for (const mount of [...mounts].reverse()) {
      try {
        await mount.unmount();
      } catch (error: unknown) {
        console.error(`bench:ffs: unmounting ${mount.mountpoint} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (scratch === undefined) return;
    const left = mounts.filter((m) => isMounted(m.mountpoint));
    if (left.length === 0) rmSync(scratch, { recursive: true, force: true });
    else console.error(`bench:ffs: ${left.map((m) => m.mountpoint).join(', ')} still mounted; left ${scratch} in place`);
  })());
}

// --- measuring ----------------------------------------------------------------------------------

function compileClient(into: string): string {
  const out = join(into, 'fsbench');
  execFileSync('gcc', ['-O2', '-Wall', '-Werror', '-o', out, join(repo, 'bench/ffs/fsbench.c')], { stdio: 'inherit' });
  return out;
}

async function client(binary: string, args: string[]): Promise<string[][]> {
  const result = await run(binary, args);
  if (result.code !== 0) throw new Error(`fsbench ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  const mismatch = /mismatch total (\d+)/.exec(result.stderr);
  if (mismatch) throw new Error(`fsbench ${args.join(' ')}: ${mismatch[1]} answers from the wrong layer:\n${result.stderr.trim()}`);
  return result.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' '));
}

function dropCaches(): void {
  if (DROP_CACHES) writeFileSync('/proc/sys/vm/drop_caches', '2');
}

/** utime + stime of a process, in µs (from /proc/PID/stat, in clock ticks). */
function cpuMicros(pid: number | undefined): number | undefined {
  if (pid === undefined || !existsSync(`/proc/${pid}/stat`)) return undefined;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks / 100) * 1e6;
}

const METRICS = [
  'stat-cold',
  'stat-warm',
  'readdir-cold',
  'readdir-warm',
  'big-cold',
  'big-warm',
  ...CONTEXT_FILES.flatMap((f) => [`ctx-cold ${f.label}`, `ctx-warm ${f.label}`]),
] as const;
type Metric = (typeof METRICS)[number];

interface Results {
  /** Per contender, per metric: nanoseconds per operation. */
  readonly ns: Map<string, Map<Metric, number[]>>;
  /** Per contender: serving process CPU µs and operations, over the warm stat passes. */
  readonly serverCpu: Map<string, { micros: number; ops: number }>;
  /** Per contender: the serving process's peak and current resident memory after the last round. */
  readonly memory: Map<string, { hwmKiB: number; rssKiB: number }>;
}

function record(results: Results, key: string, metric: Metric, samples: number[]): void {
  const byMetric = results.ns.get(key) ?? new Map<Metric, number[]>();
  results.ns.set(key, byMetric);
  byMetric.set(metric, [...(byMetric.get(metric) ?? []), ...samples]);
}

async function measure(binary: string, mount: Mount, layout: Layout, results: Results): Promise<void> {
  const root = mount.mountpoint;
  const ns = (rows: string[][]): number[] => rows.map((r) => Number(r[1]));
  await mount.coldStart?.();
  dropCaches();
  record(results, mount.key, 'stat-cold', ns(await client(binary, [root, 'stat', layout.statList, '1'])));
  const before = cpuMicros(mount.pid);
  const warm = ns(await client(binary, [root, 'stat', layout.statList, String(PASSES)]));
  const after = cpuMicros(mount.pid);
  record(results, mount.key, 'stat-warm', warm);
  if (before !== undefined && after !== undefined) {
    const sofar = results.serverCpu.get(mount.key) ?? { micros: 0, ops: 0 };
    results.serverCpu.set(mount.key, { micros: sofar.micros + after - before, ops: sofar.ops + warm.length });
  }
  await mount.coldStart?.();
  dropCaches();
  record(results, mount.key, 'readdir-cold', ns(await client(binary, [root, 'readdir', layout.readdirList, '1'])));
  record(results, mount.key, 'readdir-warm', ns(await client(binary, [root, 'readdir', layout.readdirList, String(PASSES)])));
  const big = async (cold: boolean): Promise<number[]> => {
    const rows = await client(binary, [root, 'read', layout.bigPath, String(BIG_RUNS), cold ? '1' : '0', layout.bigUnderlying]);
    for (const row of rows) if (Number(row[2]) !== BIG_MIB << 20) throw new Error(`${mount.title}: read ${row[2]} bytes of ${layout.bigPath}`);
    return ns(rows);
  };
  record(results, mount.key, 'big-cold', await big(true));
  record(results, mount.key, 'big-warm', await big(false));
  for (const [index, file] of layout.context.entries()) {
    const size = CONTEXT_FILES[index]!.size;
    for (const cold of [true, false]) {
      const rows = await client(binary, [root, 'read', file.path, String(cold ? CTX_COLD_RUNS : CTX_WARM_RUNS), cold ? '1' : '0', file.underlying]);
      for (const row of rows) if (Number(row[2]) !== size) throw new Error(`${mount.title}: read ${row[2]} bytes of ${file.path}, expected ${size} (wrong layer?)`);
      record(results, mount.key, `${cold ? 'ctx-cold' : 'ctx-warm'} ${file.label}` as Metric, ns(rows));
    }
  }
}

// --- reporting ----------------------------------------------------------------------------------

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? Number.NaN;
}

const LABELS: Record<Metric, string> = {
  'stat-cold': `stat, first pass after drop_caches${FFS_COLD ? ' (FFS: new stack, cache empty)' : ''} (µs/op)`,
  'stat-warm': 'stat, warm passes (µs/op)',
  'readdir-cold': `readdir, first pass after drop_caches${FFS_COLD ? ' (FFS: new stack, cache empty)' : ''} (µs/dir)`,
  'readdir-warm': 'readdir, warm passes (µs/dir)',
  'big-cold': `read ${BIG_MIB} MiB, cold (MB/s; ms)`,
  'big-warm': `read ${BIG_MIB} MiB, warm (MB/s; ms)`,
  ...(Object.fromEntries(
    CONTEXT_FILES.flatMap((f) => [
      [`ctx-cold ${f.label}`, `open+read+close ${f.label}, cold (µs)`],
      [`ctx-warm ${f.label}`, `open+read+close ${f.label}, warm (µs)`],
    ]),
  ) as Record<string, string>),
} as Record<Metric, string>;

const fmt = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2));

function cell(samples: readonly number[] | undefined, metric: Metric): string {
  if (samples === undefined || samples.length === 0) return 'n/a';
  if (metric.startsWith('big')) {
    // Throughput at the median time; the p95 time is the slow end.
    const median = quantile(samples, 0.5);
    return `${fmt((BIG_MIB * 2 ** 20) / 1e6 / (median / 1e9))} MB/s (${fmt(median / 1e6)} ms; p95 ${fmt(quantile(samples, 0.95) / 1e6)} ms)`;
  }
  return `${fmt(quantile(samples, 0.5) / 1e3)} / ${fmt(quantile(samples, 0.95) / 1e3)}`;
}

function ratio(results: Results, metric: Metric, over: string, of = 'ffs'): number {
  const ours = results.ns.get(of)?.get(metric);
  const theirs = results.ns.get(over)?.get(metric);
  if (ours === undefined || theirs === undefined) return Number.NaN;
  return quantile(ours, 0.5) / quantile(theirs, 0.5);
}

const BASELINES = ['overlay', 'mergerfs', 'mergerfs-nocache'] as const;

function table(results: Results, present: Contender[]): string {
  const withFfs = present.some((c) => c.key === 'ffs');
  const baselines = BASELINES.filter((k) => withFfs && present.some((c) => c.key === k));
  const head = ['metric (median / p95)', ...present.map((c) => c.title), ...baselines.map((k) => `ours / ${present.find((c) => c.key === k)!.title} (median)`)];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const metric of METRICS) {
    const ratios = baselines.map((k) => {
      const value = ratio(results, metric, k);
      // For throughput a ratio of times is the inverse of the ratio of MB/s: print it as time.
      return Number.isFinite(value) ? `${value.toFixed(2)}×${metric.startsWith('big') ? ' (time)' : ''}` : 'n/a';
    });
    lines.push(`| ${LABELS[metric]} | ${present.map((c) => cell(results.ns.get(c.key)?.get(metric), metric)).join(' | ')} | ${ratios.join(' | ')}${ratios.length > 0 ? ' |' : ''}`);
  }
  const cpu = present.map((c) => {
    const s = results.serverCpu.get(c.key);
    return s === undefined ? 'n/a (kernel)' : `${fmt(s.micros / s.ops)}`;
  });
  lines.push(`| serving process CPU per warm stat (µs/op, 10 ms ticks) | ${cpu.join(' | ')} |${baselines.map(() => ' |').join('')}`);
  const memory = present.map((c) => {
    const m = results.memory.get(c.key);
    return m === undefined ? 'n/a (kernel)' : `${fmt(m.hwmKiB / 1024)} / ${fmt(m.rssKiB / 1024)}`;
  });
  lines.push(`| serving process memory at the end, peak (VmHWM) / now (VmRSS), MiB | ${memory.join(' | ')} |${baselines.map(() => ' |').join('')}`);
  return lines.join('\n');
}

/** Issue 19's goals for the Go agent, each with its verdict. */
function goals(results: Results, present: Contender[]): string[] {
  if (!present.some((c) => c.key === 'ffs')) return ['goals: FFS not measured'];
  const has = (key: string): boolean => present.some((c) => c.key === key);
  const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  const out: string[] = [];
  for (const m of ['stat-warm', 'readdir-warm'] as const) {
    if (has('overlay')) {
      const r = ratio(results, m, 'overlay');
      out.push(`goal: ${m} ≤ ${GOALS.warmOverOverlay}× overlayfs: ${r.toFixed(2)}× ${verdict(r <= GOALS.warmOverOverlay)}`);
    }
    if (has('mergerfs')) {
      const r = ratio(results, m, 'mergerfs');
      out.push(`goal: ${m} no slower than mergerfs (defaults): ${r.toFixed(2)}× ${verdict(r <= 1)}`);
    }
  }
  if (has('mergerfs-nocache')) {
    const r = ratio(results, 'stat-cold', 'mergerfs-nocache');
    out.push(`goal: stat-cold ≤ mergerfs (no caches): ${r.toFixed(2)}× ${verdict(r <= 1)}`);
  }
  if (has('mergerfs')) {
    for (const m of ['big-cold', 'big-warm'] as const) {
      // Throughput ratio = the inverse of the ratio of median times.
      const r = 1 / ratio(results, m, 'mergerfs');
      out.push(`goal: ${BIG_MIB} MiB sequential read (${m.slice(4)}) ≥ ${GOALS.bigThroughputOfMergerfs}× mergerfs' (defaults) throughput: ${r.toFixed(2)}× ${verdict(r >= GOALS.bigThroughputOfMergerfs)}`);
    }
  }
  if (has('overlay')) {
    const parts = CONTEXT_FILES.flatMap((f) =>
      (['ctx-cold', 'ctx-warm'] as const).map((kind) => {
        const r = ratio(results, `${kind} ${f.label}` as Metric, 'overlay');
        return { ok: r <= GOALS.contextOverOverlay, text: `${kind.slice(4)} ${f.label} ${r.toFixed(2)}×` };
      }),
    );
    out.push(`goal: context-sized reads within ${GOALS.contextOverOverlay}× overlayfs (median): ${parts.map((p) => p.text).join('; ')}: ${verdict(parts.every((p) => p.ok))}`);
  }
  const memory = results.memory.get('ffs');
  if (memory !== undefined) {
    const peak = memory.hwmKiB / 1024;
    out.push(`goal: agent RSS ≤ ${GOALS.rssMiB} MB with ${FILES} files: peak ${fmt(peak)} MiB (now ${fmt(memory.rssKiB / 1024)}) ${verdict(peak <= GOALS.rssMiB)}`);
  }
  return out;
}

function version(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unavailable';
}

function packageVersion(name: string): string {
  const result = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Version}', name], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout : `${name} (version unknown)`;
}

const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function describeMachine(): string {
  const commit = spawnSync('git', ['-C', repo, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).stdout.trim();
  return [
    `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM; Linux ${release()}; Node ${process.version}; load average before the run ${loadAverage()}`,
    `Debian packages: ${packageVersion('mergerfs')}, ${packageVersion('unionfs-fuse')}; ${version('gcc', ['--version'])}; ${version('go', ['version'])}`,
    `recontext-ffs: guest/agent built from the working tree (commit ${commit}); rounds ${ROUNDS}, warm passes ${PASSES}, drop_caches before cold passes ${DROP_CACHES ? 'yes' : 'no'}; FFS memo before cold passes ${FFS_COLD ? 'emptied (recontext-ffs set, same layers)' : 'kept (only round 1 cold)'}`,
  ].join('\n');
}

// --- main ---------------------------------------------------------------------------------------

/** The contenders' packages (apt-get when missing) and overlayfs; returns what is still missing. */
function ensurePackages(): string[] {
  const reasons = ensureTools(UNION_BENCH_TOOLS, (line) => console.log(line));
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) spawnSync('modprobe', ['overlay'], { stdio: 'ignore' });
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) reasons.push('this kernel has no overlayfs');
  if (!existsSync('/dev/fuse')) reasons.push('/dev/fuse is missing (no FUSE in this kernel or container)');
  return reasons;
}

let agentPath: string | undefined;
/** The agent binary built into the scratch directory at start. */
function agentBinary(): string {
  if (agentPath === undefined) throw new Error('the agent is not built yet');
  return agentPath;
}

/** Peak and current resident memory of a process, from /proc/PID/status. */
function memoryOf(pid: number | undefined): { hwmKiB: number; rssKiB: number } | undefined {
  if (pid === undefined || !existsSync(`/proc/${pid}/status`)) return undefined;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { hwmKiB: kib('VmHWM'), rssKiB: kib('VmRSS') };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:ffs needs root (mounts, drop_caches)');
  const only = process.env.BENCH_FFS_CONTENDERS?.split(',').map((s) => s.trim());
  const present = contenders.filter((c) => only === undefined || only.includes(c.key));
  if (present.length === 0) throw new Error(`BENCH_FFS_CONTENDERS matches none of ${contenders.map((c) => c.key).join(', ')}`);
  const missing = ensurePackages();
  if (missing.length > 0) throw new Error(`bench:ffs cannot run: ${missing.join('; ')}`);
  scratch = mkdtempSync(join(process.env.BENCH_FFS_DIR ?? tmpdir(), 'bench-ffs-'));
  try {
    console.log(describeMachine());
    const binary = compileClient(scratch);
    if (present.some((c) => c.key === 'ffs')) {
      agentPath = join(scratch, 'recontext-ffs');
      await buildGuestAgent(agentPath, process.arch === 'arm64' ? 'arm64' : 'amd64');
    }
    const started = Date.now();
    const layout = createLayers(scratch);
    console.log(
      `layers: ${LAYERS.map((l) => `${l.name} (${l.priority})`).join(' < ')}; ${FILES} files in ${GROUPS * DIRS_PER_GROUP} directories, ${layout.overlapping} of them in more than one layer; ` +
        `${BIG_MIB} MiB file in the lowest layer; made in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    const mounted: Mount[] = [];
    for (const contender of present) {
      const mountpoint = join(scratch, 'mnt', contender.key);
      mkdirSync(mountpoint, { recursive: true });
      mounted.push(await contender.mount(mountpoint, layout, scratch));
    }
    const results: Results = { ns: new Map(), serverCpu: new Map(), memory: new Map() };
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotate who goes first, so no contender always runs right after the same neighbour.
      const order = mounted.map((_, i) => mounted[(i + round - 1) % mounted.length]!);
      for (const mount of order) {
        const t0 = Date.now();
        await measure(binary, mount, layout, results);
        console.log(`round ${round}/${ROUNDS}: ${mount.title} in ${((Date.now() - t0) / 1000).toFixed(1)} s (load ${loadAverage()})`);
      }
    }
    for (const mount of mounted) {
      const memory = memoryOf(mount.pid);
      if (memory !== undefined) results.memory.set(mount.key, memory);
    }
    console.log(`\nload average after the run ${loadAverage()}\n`);
    console.log(table(results, present));
    console.log(`\n${goals(results, present).join('\n')}`);
  } finally {
    await cleanup();
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`bench:ffs: ${signal}, unmounting`);
    void cleanup().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error: unknown) {
  console.error(`bench:ffs: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
}
