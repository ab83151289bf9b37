// Benchmark: our in-process ISO writer vs genisoimage -R -J vs xorriso -as mkisofs -R -J, spawned
// as a user would, on three trees: (a) a typical context layer, 50 files / 200 KB; (b) 2000 files /
// 20 MB; (c) one 500 MB file. Prints one table (median, p95, peak RSS) and the goal checks.
// Run: npm run bench:iso   (env BENCH_ISO_RUNS=<n> scales the run counts, BENCH_ISO_DIR=<dir> the scratch place)
import { execFileSync, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildIso, entriesFromDirectory, type IsoEntry } from '../../src/iso/index.js';

interface Scenario {
  readonly key: string;
  readonly title: string;
  readonly runs: number;
  readonly create: (dir: string) => void;
}

interface Sample {
  readonly ms: number;
  readonly rssKiB?: number;
}

interface Row {
  readonly scenario: Scenario;
  readonly tool: string;
  readonly samples: Sample[];
  readonly bytes: number;
}

const scale = Number(process.env.BENCH_ISO_RUNS ?? '1');
const repo = fileURLToPath(new URL('../../', import.meta.url));

const scenarios: Scenario[] = [
  {
    key: 'a',
    title: '50 files, 200 KB',
    runs: 30,
    create: (dir) => writeFiles(dir, 50, 4096, 5),
  },
  {
    key: 'b',
    title: '2000 files, 20 MB',
    runs: 10,
    create: (dir) => writeFiles(dir, 2000, 10 * 1024, 20),
  },
  {
    key: 'c',
    title: 'one 500 MB file',
    runs: 5,
    create: (dir) => {
      mkdirSync(dir, { recursive: true });
      const fd = openSync(join(dir, 'disk.img'), 'w');
      const chunk = Buffer.alloc(4 << 20);
      for (let written = 0; written < 500 * 1024 * 1024; written += chunk.length) writeSync(fd, randomFillSync(chunk));
      closeSync(fd);
    },
  },
];

function writeFiles(dir: string, count: number, size: number, directories: number): void {
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `dir-${i % directories}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `file-${String(i).padStart(5, '0')}.conf`), randomFillSync(Buffer.alloc(size)));
  }
}

/** Spawns a command under /usr/bin/time and returns wall time and the maximum resident set size. */
async function timed(command: string, args: readonly string[]): Promise<Sample> {
  const start = process.hrtime.bigint();
  const stderr: Buffer[] = [];
  const child = spawn('/usr/bin/time', ['-f', 'maxrss=%M', command, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const text = Buffer.concat(stderr).toString();
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}: ${text}`);
  const rss = /maxrss=(\d+)/.exec(text)?.[1];
  return { ms, ...(rss === undefined ? {} : { rssKiB: Number(rss) }) };
}

/** End to end from the directory, like genisoimage: walk, lay out, read the files, write the image. */
async function ours(dir: string, out: string, sha256: boolean): Promise<Sample> {
  const start = process.hrtime.bigint();
  const image = buildIso(await entriesFromDirectory(dir), { volumeId: 'BENCH', timestamp: new Date(0) });
  await image.writeToFile(out, { sha256 });
  return { ms: Number(process.hrtime.bigint() - start) / 1e6 };
}

/** The operator's path: rendered layer files are already in memory; only the image is written. */
async function oursFromMemory(entries: IsoEntry[], out: string): Promise<Sample> {
  const start = process.hrtime.bigint();
  await buildIso(entries, { volumeId: 'BENCH', timestamp: new Date(0) }).writeToFile(out, { sha256: false });
  return { ms: Number(process.hrtime.bigint() - start) / 1e6 };
}

/** The same tree with every file's bytes loaded (only for trees small enough to render in memory). */
async function inMemory(dir: string): Promise<IsoEntry[]> {
  return (await entriesFromDirectory(dir)).map((entry) =>
    entry.content !== undefined && !Buffer.isBuffer(entry.content) ? { ...entry, content: readFileSync(entry.content.fromFile) } : entry,
  );
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return sorted[Math.max(0, index)] as number;
}

/** Compiles the child entry point with tsc into plain JS, so the child process has no loader overhead. */
function compileChild(into: string): string {
  execFileSync(join(repo, 'node_modules/.bin/tsc'), [
    '--outDir', into, '--rootDir', repo, '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2023',
    '--skipLibCheck', '--types', 'node', '--strict', join(repo, 'bench/iso/child.ts'),
  ], { stdio: 'inherit' });
  writeFileSync(join(into, 'package.json'), '{"type":"module"}');
  return join(into, 'bench/iso/child.js');
}

function describeMachine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const version = (command: string, args: string[]): string => {
    try {
      return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0] ?? '';
    } catch (error: unknown) {
      return error instanceof Error && 'stderr' in error ? String((error as { stderr: unknown }).stderr).split('\n')[0] ?? '' : 'unavailable';
    }
  };
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return [
    `${cpu}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM; Node ${process.version}; load average before the run ${load}`,
    `${version('genisoimage', ['--version'])}; ${version('xorriso', ['-version'])}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(process.env.BENCH_ISO_DIR ?? tmpdir(), 'bench-iso-'));
  try {
    console.log(describeMachine());
    const child = compileChild(join(scratch, 'build'));
    const out = join(scratch, 'out.iso');
    const baseline = await timed(process.execPath, ['-e', '']);
    const rows: Row[] = [];
    for (const scenario of scenarios) {
      const dir = join(scratch, `tree-${scenario.key}`);
      scenario.create(dir);
      const runs = Math.max(3, Math.round(scenario.runs * scale));
      const memory = scenario.key === 'a' ? await inMemory(dir) : undefined;
      const tools: [string, () => Promise<Sample>][] = [
        ...(memory === undefined ? [] : [['ours (in-process, files in memory)', () => oursFromMemory(memory, out)] as [string, () => Promise<Sample>]]),
        ['ours (in-process)', () => ours(dir, out, false)],
        ['ours (in-process, + sha256)', () => ours(dir, out, true)],
        ['ours (own process)', () => timed(process.execPath, [child, dir, out])],
        ['genisoimage -R -J', () => timed('genisoimage', ['-quiet', '-R', '-J', '-o', out, dir])],
        ['xorriso -as mkisofs -R -J', () => timed('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-J', '-o', out, dir])],
      ];
      for (const [tool, once] of tools) {
        await once(); // warm the page cache and the code paths
        const samples: Sample[] = [];
        for (let i = 0; i < runs; i++) {
          rmSync(out, { force: true });
          samples.push(await once());
        }
        rows.push({ scenario, tool, samples, bytes: statSync(out).size });
        rmSync(out, { force: true });
      }
      rmSync(dir, { recursive: true, force: true });
    }
    console.log(`\nNode baseline (node -e ''): peak RSS ${((baseline.rssKiB ?? 0) / 1024).toFixed(1)} MiB, ${baseline.ms.toFixed(0)} ms\n`);
    console.log(table(rows));
    console.log(`\n${goals(rows).join('\n')}`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function table(rows: Row[]): string {
  const lines = ['| tree | tool | runs | median ms | p95 ms | peak RSS MiB | MB/s (median) | image MB |', '|---|---|---:|---:|---:|---:|---:|---:|'];
  for (const row of rows) {
    const times = row.samples.map((s) => s.ms);
    const rss = row.samples.flatMap((s) => (s.rssKiB === undefined ? [] : [s.rssKiB]));
    const median = quantile(times, 0.5);
    lines.push(
      `| (${row.scenario.key}) ${row.scenario.title} | ${row.tool} | ${times.length} | ${median.toFixed(1)} | ${quantile(times, 0.95).toFixed(1)} | ${
        rss.length === 0 ? 'n/a (see own process)' : (Math.max(...rss) / 1024).toFixed(1)
      } | ${(row.bytes / 1e6 / (median / 1000)).toFixed(0)} | ${(row.bytes / 1e6).toFixed(1)} |`,
    );
  }
  return lines.join('\n');
}

function goals(rows: Row[]): string[] {
  const median = (key: string, tool: string): number => quantile(rows.find((r) => r.scenario.key === key && r.tool === tool)?.samples.map((s) => s.ms) ?? [Number.NaN], 0.5);
  const rss = (key: string): number => Math.max(...(rows.find((r) => r.scenario.key === key && r.tool === 'ours (own process)')?.samples.map((s) => s.rssKiB ?? 0) ?? [0])) / 1024;
  const out: string[] = [];
  const speedup = median('a', 'genisoimage -R -J') / median('a', 'ours (in-process)');
  const memory = median('a', 'genisoimage -R -J') / median('a', 'ours (in-process, files in memory)');
  out.push(`goal (a) ≥ 20× faster than genisoimage end to end: from disk ${speedup.toFixed(1)}× — ${speedup >= 20 ? 'met' : 'MISSED'}; files in memory (operator path) ${memory.toFixed(1)}× — ${memory >= 20 ? 'met' : 'MISSED'}`);
  for (const key of ['b', 'c']) {
    const ratio = median(key, 'genisoimage -R -J') / median(key, 'ours (in-process)');
    const own = median(key, 'genisoimage -R -J') / median(key, 'ours (own process)');
    out.push(`goal (${key}) throughput ≥ 0.8× genisoimage: in-process ${ratio.toFixed(2)}×, own process ${own.toFixed(2)}× — ${ratio >= 0.8 ? 'met' : 'MISSED'}`);
  }
  out.push(`RSS of our own process: (a) ${rss('a').toFixed(1)} MiB, (b) ${rss('b').toFixed(1)} MiB, (c) ${rss('c').toFixed(1)} MiB (bounded: (c) is one 500 MB file)`);
  return out;
}

await main();
