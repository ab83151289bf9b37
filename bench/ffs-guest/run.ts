// Benchmark (issue 7): attach → hook latency of FFS inside the real QEMU guest, and the same swaps
// served by the reference approach FFS improves on (a guest agent polling the drives once a
// second), in one run, one boot.
//
// The fat test guest (fuse.ko + the Go agent guest/agent, built from source by the test bed) boots
// once on an own libvirt test bed instance with FFS serving /run/recontext/context from its CD-ROMs
// (as test/integration/ffs-guest.test.ts), under the guest's bench policy (guest/fat/ffs-bench.yaml:
// hooks as root, which the switch to the baseline needs; the guest's default runs them as nobody).
// The standalone operator delivers the GlusterFS site's four layers once; then the host swaps the
// service layer's image with the libvirt driver's own sequence (attachLayers, then release: over our
// own libvirt RPC client; make-before-break: the new image goes into an empty drive, the
// old drive is ejected after the measurement), N times. Per swap the bench takes the moment the
// host's attach call returned and, from the guest's serial console (tailed every 2 ms):
//   - FFS shows the new content: FFS's `stack changed` line after its `layer image arrived` line
//     for the new image's digest (the swap and its invalidation are done before it logs);
//   - the hook ran: the hook's first act, `echo APP-HOOK-START > /dev/console` (its second line
//     must then show the new content).
// Then one more swap delivers bench/switch: its hook starts bench/ffs-guest/poller.sh (shipped in
// the service layer), which stops FFS and takes the drives over; the same N swaps again, measured
// to its `BASE-VIEW` line (the new view is in place) and to the same hook's APP-HOOK-START.
//
// Run: npm run bench:ffs-guest   (root; the test bed installs QEMU + libvirt when missing)
//   env BENCH_FFS_GUEST_SWAPS=<n>       swaps per side (default 15)
//       BENCH_FFS_GUEST_SETTLE_MS=<ms>  pause after each swap once the old drive is ejected (default 1500)
//       BENCH_FFS_GUEST_DEBOUNCE_MS=<ms> the hook's debounceMs (default: unset, FFS's default)
//       BENCH_FFS_GUEST_DEVD_TRACE=0    no watcher trace lines (FFS_DEVD_TRACE=1: uevent and mount times, for the profile)
//       BENCH_FFS_GUEST_LOG=<file>      keep the guest console
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LibvirtClient, type DomainRef } from '../../src/drivers/libvirt/client.js';
import { attachLayers } from '../../src/drivers/libvirt/converge.js';
import { LayerImageStore } from '../../src/images/layer-image.js';
import type { StandaloneOperator } from '../../src/standalone/operator.js';
import { FFS_BENCH_CONFIG, ffsRun } from '../../test/testbed/fat.js';
import { ensureGuest, startTestbed, type Testbed } from '../../test/testbed/index.js';
import { desiredLayers, siteOperator, writeSite, ZONE_A, withGlusterServer } from '../../test/testbed/site.js';

const DOMAIN = 'bench-ffs-guest';
const KEY = `default/${DOMAIN}`;
const SWAPS = Number(process.env.BENCH_FFS_GUEST_SWAPS ?? '15');
const SETTLE_MS = Number(process.env.BENCH_FFS_GUEST_SETTLE_MS ?? '1500');
const DEBOUNCE = process.env.BENCH_FFS_GUEST_DEBOUNCE_MS;
/** The watcher's trace lines (ffs-devd's format: uevents, mounts) on the console, for the profile (default on). */
const TRACE = process.env.BENCH_FFS_GUEST_DEVD_TRACE !== '0';
const TAIL_MS = 2;
/** Issue 19's goal for the Go agent (median under TCG; issue 7's was 500 ms for the TypeScript one). */
const GOAL_MS = 300;
/** The agent's default hook debounce (guest/agent/internal/hooks/format.go DefaultDebounceMs). */
const DEFAULT_DEBOUNCE_MS = 100;
const HERE = import.meta.dirname;

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const progress = (line: string): void => console.error(`bench:ffs-guest: ${line}`);

interface Line {
  readonly text: string;
  /** Host epoch ms (sub-ms) when the tail saw the line complete. */
  readonly at: number;
}

/** The guest console, tailed every TAIL_MS: every complete line with the time it arrived. */
class ConsoleTail {
  readonly lines: Line[] = [];
  readonly #fd: number;
  #pos: number;
  #partial = '';
  readonly #timer: NodeJS.Timeout;
  constructor(path: string) {
    this.#fd = openSync(path, 'r');
    this.#pos = fstatSync(this.#fd).size; // only what comes from now on
    this.#timer = setInterval(() => this.poll(), TAIL_MS);
  }
  poll(): void {
    const size = fstatSync(this.#fd).size;
    if (size <= this.#pos) return;
    const buffer = Buffer.alloc(size - this.#pos);
    const read = readSync(this.#fd, buffer, 0, buffer.length, this.#pos);
    this.#pos += read;
    const at = now();
    const parts = (this.#partial + buffer.subarray(0, read).toString('utf8')).split('\n');
    this.#partial = parts.pop() ?? '';
    for (const text of parts) this.lines.push({ text: text.replace(/\r$/, ''), at });
  }
  get count(): number {
    return this.lines.length;
  }
  /** The first line at index ≥ from matching regex. */
  async waitFor(regex: RegExp, from: number, timeoutMs: number, what: string): Promise<{ index: number; line: Line; match: RegExpExecArray }> {
    const deadline = Date.now() + timeoutMs;
    for (let i = from; ; ) {
      for (; i < this.lines.length; i++) {
        const match = regex.exec(this.lines[i]!.text);
        if (match) return { index: i, line: this.lines[i]!, match };
      }
      if (Date.now() > deadline) throw new Error(`no console line for ${what} (${regex}) within ${timeoutMs} ms; tail:\n${this.lines.slice(-30).map((l) => l.text).join('\n')}`);
      await sleep(TAIL_MS);
    }
  }
  close(): void {
    clearInterval(this.#timer);
    closeSync(this.#fd);
  }
}

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`; // YAML single-quoted
/** The hook both sides run: its first act is the console line the bench times. */
const HOOK = `echo APP-HOOK-START > /dev/console; echo "APP-HOOK $(grep -m1 cache-server $RECONTEXT_MOUNTPOINT/etc/glusterfs/cache.conf) $(grep -m1 remote-host $RECONTEXT_MOUNTPOINT/etc/glusterfs/client.vol)" > /dev/console`;
const SWITCH = `cp "$RECONTEXT_MOUNTPOINT/bench/poller.sh" /tmp/poller.sh; setsid sh /tmp/poller.sh $PPID 5 < /dev/null > /dev/console 2>&1 &`;

/** The site's service layer with the bench's hooks, the baseline script and (for the switch) bench/switch. */
function serviceYaml(original: string, withSwitch: boolean): string {
  const indent = (text: string) => text.split('\n').map((l) => (l === '' ? '' : `        ${l}`)).join('\n');
  const files = [
    `    - path: bench/poller.sh\n      content: |\n${indent(readFileSync(join(HERE, 'poller.sh'), 'utf8'))}`,
    ...(withSwitch ? ['    - path: bench/switch\n      content: |\n        switch to the baseline\n'] : []),
  ].join('');
  const hooks =
    `  hooks:\n` +
    `    - name: gluster-reload\n      paths: [etc/glusterfs/]\n${DEBOUNCE !== undefined ? `      debounceMs: ${Number(DEBOUNCE)}\n` : ''}      run: [/bin/sh, -c, ${quote(HOOK)}]\n` +
    `    - name: bench-switch\n      paths: [bench/switch]\n      debounceMs: 0\n      run: [/bin/sh, -c, ${quote(SWITCH)}]\n`;
  const head = original.replace(/\n  # Inside the guest[\s\S]*$/, '\n').replace(/\n  hooks:\n[\s\S]*$/, '\n');
  return `${head}${files}${hooks}`;
}

interface Sample {
  /** attach call returned → the side shows the new content (ms). */
  readonly visibleMs: number;
  /** attach call returned → the hook's first line arrived (ms). */
  readonly hookMs: number;
  /** FFS only: guest wall-clock ts of `layer image arrived` and `stack changed` (ms epoch, guest clock), the stack's generation. */
  readonly arrivedTs?: number;
  readonly changedTs?: number;
  readonly generation?: number;
  /** FFS with the devd trace: media-change uevents and finished mounts between the attach and FFS taking the image (guest wall clock, ms). */
  readonly devd?: { readonly uevents: readonly number[]; readonly mounts: readonly number[] };
  /** Baseline only: guest uptime (s) when the poll that found the medium began, when it had read the drives, when the view was in place. */
  readonly poll?: { readonly p0: number; readonly t0: number; readonly t1: number; readonly t: number; readonly at: number };
  readonly attached: number;
  readonly hookAt: number;
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}
const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const stats = (v: readonly number[]): string => `${median(v).toFixed(0)} | ${quantile(v, 0.95).toFixed(0)} | ${Math.min(...v).toFixed(0)} | ${Math.max(...v).toFixed(0)}`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:ffs-guest needs root (libvirt test bed)');
  const loadBefore = loadAverage();
  progress(`load before: ${loadBefore}; the fat guest (the test bed builds guest/agent into it; rebuilt when it changed)`);
  const fat = await ensureGuest({ variant: 'fat', log: progress });
  const tb: Testbed = await startTestbed({ id: 'bench-ffs-guest', log: progress });
  const site = mkdtempSync(join(tmpdir(), 'bench-ffs-guest-site-'));
  const state = mkdtempSync(join(tmpdir(), 'bench-ffs-guest-state-'));
  let operator: StandaloneOperator | undefined;
  let tail: ConsoleTail | undefined;
  let client: LibvirtClient | undefined;
  const cleanup = async (): Promise<void> => {
    tail?.close();
    if (process.env.BENCH_FFS_GUEST_LOG) writeFileSync(process.env.BENCH_FFS_GUEST_LOG, tb.consoleLog(DOMAIN));
    await client?.close().catch(() => undefined);
    await operator?.stop().catch(() => undefined);
    await tb.destroyGuest(DOMAIN).catch(() => undefined);
    await tb.stop();
    rmSync(site, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanup().finally(() => process.exit(130)));
  try {
    const hostsFile = writeSite(site, { domain: DOMAIN, hosts: tb.hosts });
    const servicePath = join(site, 'layer-gluster-service.yaml');
    const original = readFileSync(servicePath, 'utf8');
    writeFileSync(servicePath, serviceYaml(original, false));
    const booted = await tb.bootGuest(
      'host-a',
      { name: DOMAIN, guest: fat, cdroms: 6, cmdlineExtra: ffsRun({ trace: TRACE, config: FFS_BENCH_CONFIG }) },
      150_000,
    );
    tail = new ConsoleTail(tb.consoleLogPath(DOMAIN));
    progress(`guest up in ${booted.bootSeconds.toFixed(1)} s (${tb.accelerator.accel}); waiting for FFS`);
    await tb.waitForConsole(DOMAIN, /"msg":"watching context devices"/, 120_000);

    // The operator delivers the four layers once (and the service layer's hook says so).
    operator = siteOperator({ site, state, hostsFile });
    await operator.start();
    const delivered = tail.count;
    const deadline = Date.now() + 90_000;
    for (;;) {
      const v = operator.store.vmContexts.get(KEY);
      if (v?.status?.node === 'host-a' && v.status.conditions?.some((c) => c.type === 'Ready' && c.reason === 'Converged')) break;
      if (Date.now() > deadline) throw new Error('the operator did not converge on host-a in 90 s');
      await sleep(200);
    }
    await tail.waitFor(/APP-HOOK .*cache-server = cache-a\.zone-a/, delivered, 60_000, 'the first hook run');
    await operator.stop();
    operator = undefined;
    progress('layers delivered; the host drives the swaps from here');

    const store = new LayerImageStore(join(state, 'images'));
    const wanted = (server: string) =>
      desiredLayers({
        dir: site,
        store,
        vm: DOMAIN,
        node: { name: 'host-a', labels: ZONE_A },
        sources: withGlusterServer(server),
      });
    client = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
    const domain: DomainRef = (await client.lookupDomain(DOMAIN))!;
    const c = client;
    /** One swap of the service layer's image to `server`: the making actions timed, then the old drive ejected. */
    const swap = async (server: string) => {
      const layers = await wanted(server);
      const digest = layers.find((l) => l.name === 'gluster-service')!.digest;
      const from = tail!.count;
      const swapped = await attachLayers(c, domain, layers); // the driver's own sequence, first half
      const attached = now();
      return { digest, from, attached, release: () => swapped.release() };
    };

    const ffs: Sample[] = [];
    progress(`FFS: ${SWAPS} swaps (load ${loadAverage()})`);
    const ffsLoad = [loadAverage()];
    for (let i = 1; i <= SWAPS; i++) {
      const server = `gluster-server-${100 + i}`;
      const s = await swap(server);
      const arrived = await tail.waitFor(new RegExp(`"msg":"layer image arrived".*"digest":"${s.digest}"`), s.from, 30_000, `FFS: image ${s.digest}`);
      const changed = await tail.waitFor(/"msg":"stack changed"/, arrived.index, 30_000, 'FFS: stack changed');
      const hook = await tail.waitFor(/^APP-HOOK-START/, s.from, 30_000, 'FFS: hook start');
      await tail.waitFor(new RegExp(`^APP-HOOK .*remote-host ${server}\\b`), hook.index, 30_000, `FFS: hook sees ${server}`);
      // The watcher's trace between the attach and FFS taking the image: uevents and mounts (guest wall clock).
      const traced = tail.lines.slice(s.from, arrived.index).flatMap((l) => {
        const m = /ffs-devd trace (\d+\.\d+) (uevent change \S+ media-change|mounted)/.exec(l.text);
        return m ? [{ ts: Number(m[1]) * 1000, what: m[2]!.startsWith('uevent') ? ('uevent' as const) : ('mounted' as const) }] : [];
      });
      const json = (line: Line) => JSON.parse(line.text.slice(line.text.indexOf('{'))) as { ts: string; generation: number };
      ffs.push({
        visibleMs: changed.line.at - s.attached,
        hookMs: hook.line.at - s.attached,
        arrivedTs: Date.parse(json(arrived.line).ts),
        changedTs: Date.parse(json(changed.line).ts),
        generation: json(changed.line).generation,
        devd: { uevents: traced.filter((t) => t.what === 'uevent').map((t) => t.ts), mounts: traced.filter((t) => t.what === 'mounted').map((t) => t.ts) },
        attached: s.attached,
        hookAt: hook.line.at,
      });
      const released = tail.count;
      await s.release();
      await tail.waitFor(/"msg":"released a drive the host asked for"/, released, 30_000, 'FFS: drive released');
      progress(`FFS swap ${i}/${SWAPS}: visible ${ffs.at(-1)!.visibleMs.toFixed(0)} ms, hook ${ffs.at(-1)!.hookMs.toFixed(0)} ms (load ${loadAverage()})`);
      await sleep(SETTLE_MS);
    }
    ffsLoad.push(loadAverage());

    // The switch: FFS's bench-switch hook starts the polling agent, which then stops FFS.
    writeFileSync(servicePath, serviceYaml(original, true));
    const sw = await swap(`gluster-server-${100 + SWAPS}`);
    await tail.waitFor(/^BASE-START/, sw.from, 60_000, 'baseline: start');
    await sw.release();
    const ready = await tail.waitFor(/^BASE-READY (\d+)/, sw.from, 60_000, 'baseline: ready');
    progress(`baseline agent took over (${ready.match[1]} layers)`);
    await sleep(SETTLE_MS);

    const base: Sample[] = [];
    const baseLoad = [loadAverage()];
    for (let i = 1; i <= SWAPS; i++) {
      const server = `gluster-server-${300 + i}`;
      const s = await swap(server);
      const view = await tail.waitFor(/^BASE-VIEW \d+ p0=([\d.]+) t0=([\d.]+) t1=([\d.]+) t=([\d.]+)/, s.from, 30_000, 'baseline: view');
      const hook = await tail.waitFor(/^APP-HOOK-START/, view.index, 30_000, 'baseline: hook start');
      await tail.waitFor(new RegExp(`^APP-HOOK .*remote-host ${server}\\b`), hook.index, 30_000, `baseline: hook sees ${server}`);
      const [p0, t0, t1, t] = view.match.slice(1, 5).map(Number) as [number, number, number, number];
      base.push({ visibleMs: view.line.at - s.attached, hookMs: hook.line.at - s.attached, attached: s.attached, hookAt: hook.line.at, poll: { p0, t0, t1, t, at: view.line.at } });
      await s.release();
      progress(`baseline swap ${i}/${SWAPS}: visible ${base.at(-1)!.visibleMs.toFixed(0)} ms, hook ${base.at(-1)!.hookMs.toFixed(0)} ms (load ${loadAverage()})`);
      await sleep(SETTLE_MS);
    }
    baseLoad.push(loadAverage());

    // Guest clock → host clock: FFS's log ts (guest wall clock, ms) against the arrival of its lines.
    // The minimum of (arrival − ts) is the clock offset plus the console's fastest delivery; what
    // lies above it on each line is the console's (and the tail's) extra delay for that line.
    const ffsLines = tail.lines.filter((l) => l.text.includes('{"ts":"'));
    const lag = ffsLines.map((l) => l.at - Date.parse((JSON.parse(l.text.slice(l.text.indexOf('{'))) as { ts: string }).ts));
    const offset = Math.min(...lag);
    const extra = lag.map((x) => x - offset);

    const uptime = spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
    const out: string[] = [];
    out.push(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; Linux ${release()}; Node ${process.version}; guest ${tb.accelerator.accel} (${fat.kernelPackage})`);
    out.push(`load: before ${loadBefore}; FFS batch ${ffsLoad.join(' → ')}; baseline batch ${baseLoad.join(' → ')}; after: ${uptime}`);
    out.push(`swaps per side: ${SWAPS}; settle ${SETTLE_MS} ms; hook debounceMs ${DEBOUNCE ?? `default (FFS: ${DEFAULT_DEBOUNCE_MS})`}; console tailed every ${TAIL_MS} ms`);
    out.push('');
    out.push('| ms after the host\'s attach call returned (n = ' + SWAPS + ') | median | p95 | min | max |');
    out.push('|---|---:|---:|---:|---:|');
    out.push(`| FFS (uevents, the built-in watcher): new content visible (\`stack changed\`) | ${stats(ffs.map((s) => s.visibleMs))} |`);
    out.push(`| FFS: hook ran (its first console line) | ${stats(ffs.map((s) => s.hookMs))} |`);
    out.push(`| baseline (1 s polling agent, remount + copy): new view in place | ${stats(base.map((s) => s.visibleMs))} |`);
    out.push(`| baseline: hook ran | ${stats(base.map((s) => s.hookMs))} |`);
    out.push('');
    out.push(`console: FFS log lines arrive ${median(extra).toFixed(1)} ms (median) / ${quantile(extra, 0.95).toFixed(1)} ms (p95) / ${Math.max(...extra).toFixed(1)} ms (max) after the fastest one, relative to the guest clock (${lag.length} lines); every figure above includes one such delivery`);
    // Where FFS's time goes, on the host's clock (guest ts + offset: each includes the console's fastest delivery, so read the steps, not the absolute first one).
    const step = (f: (s: Sample) => number) => stats(ffs.map(f));
    out.push('');
    out.push('FFS, where the time goes (guest log ts mapped to the host clock; the first step includes the console\'s floor):');
    out.push('| step (ms) | median | p95 | min | max |');
    out.push('|---|---:|---:|---:|---:|');
    const traced = ffs.filter((s) => (s.devd?.uevents.length ?? 0) > 0 && (s.devd?.mounts.length ?? 0) > 0);
    if (traced.length > 0) {
      out.push(`| attach returned → first media-change uevent in the watcher (n = ${traced.length}) | ${stats(traced.map((s) => s.devd!.uevents[0]! + offset - s.attached))} |`);
      out.push(`| → its mount done | ${stats(traced.map((s) => s.devd!.mounts[0]! - s.devd!.uevents[0]!))} |`);
      out.push(`| → the last mount done before FFS took the image (uevents per swap: ${stats(traced.map((s) => s.devd!.uevents.length))}; mounts: ${stats(traced.map((s) => s.devd!.mounts.length))}) | ${stats(traced.map((s) => s.devd!.mounts.at(-1)! - s.devd!.mounts[0]!))} |`);
      out.push(`| → \`layer image arrived\` (FFS read the line and the manifest) | ${stats(traced.map((s) => s.arrivedTs! - s.devd!.mounts.at(-1)!))} |`);
    } else out.push(`| attach returned → \`layer image arrived\` (uevent, mount by the watcher, manifest read) | ${step((s) => s.arrivedTs! + offset - s.attached)} |`);
    out.push(`| → \`stack changed\` (swap + invalidation) | ${step((s) => s.changedTs! - s.arrivedTs!)} |`);
    // The hook runs' start and the comparison's time (`stack compared`), by generation. The Go agent
    // logs `hook ran` when the hook has ended, with its durationMs: it started at ts − durationMs.
    const spawned = new Map<number, number>();
    const compared: number[] = [];
    const generations = new Set(ffs.map((s) => s.generation));
    for (const l of ffsLines) {
      const j = JSON.parse(l.text.slice(l.text.indexOf('{'))) as { msg: string; ts: string; hook?: string; durationMs?: number; generation?: number; ms?: number };
      if (j.msg === 'hook ran' && j.hook === 'gluster-reload' && j.generation !== undefined && j.durationMs !== undefined && !spawned.has(j.generation)) spawned.set(j.generation, Date.parse(j.ts) - j.durationMs);
      if (j.msg === 'stack compared' && j.ms !== undefined && generations.has(j.generation)) compared.push(j.ms);
    }
    const withSpawn = ffs.filter((s) => spawned.has(s.generation!));
    if (withSpawn.length > 0) {
      out.push(`| → hook spawned (\`hook ran\` ts − durationMs: compare the stacks, debounce counted from the change) (n = ${withSpawn.length}) | ${stats(withSpawn.map((s) => spawned.get(s.generation!)! - s.changedTs!))} |`);
      out.push(`| → hook's first line on the host (spawn, sh, console) | ${stats(withSpawn.map((s) => s.hookAt - (spawned.get(s.generation!)! + offset)))} |`);
    } else out.push(`| → hook's first line on the host (compare, debounce, spawn, sh, console) | ${step((s) => s.hookAt - (s.changedTs! + offset))} |`);
    if (compared.length > 0) out.push(`| of which comparing the stacks (\`stack compared\`.ms: hooks files, the watched paths' diff) | ${stats(compared)} |`);
    // The baseline's uptime stamps → host clock, by the same minimum rule over its BASE-VIEW lines.
    const polls = base.map((s) => s.poll!);
    const baseOffset = Math.min(...polls.map((p) => p.at - p.t * 1000));
    out.push('');
    out.push('baseline, where the time goes (guest uptime, 10 ms steps, mapped to the host clock by its BASE-VIEW lines):');
    out.push('| step (ms) | median | p95 | min | max |');
    out.push('|---|---:|---:|---:|---:|');
    out.push(`| attach returned → the poll that finds it begins (waiting for the next poll) | ${stats(base.map((s) => s.poll!.t0 * 1000 + baseOffset - s.attached))} |`);
    out.push(`| → all drives read, the new one mounted | ${stats(polls.map((p) => (p.t1 - p.t0) * 1000))} |`);
    out.push(`| → older medium let go, layers copied into a new view, view switched | ${stats(polls.map((p) => (p.t - p.t1) * 1000))} |`);
    out.push(`| → hook's first line on the host | ${stats(base.map((s) => s.hookAt - (s.poll!.t * 1000 + baseOffset)))} |`);
    out.push(`| (the poll before it: began after the attach returned, yet did not find the medium) | ${stats(base.map((s) => s.poll!.p0 * 1000 + baseOffset - s.attached))} |`);
    out.push('');
    out.push(`baseline: poll period ${stats(polls.map((p) => (p.t0 - p.p0) * 1000))} ms (median | p95 | min | max); ${base.filter((s) => s.poll!.p0 * 1000 + baseOffset > s.attached).length} of ${base.length} finds came one poll later than the attach allowed (the poll before began after the attach returned)`);
    out.push('');
    const ffsMedian = median(ffs.map((s) => s.hookMs));
    out.push(`goal: attach → hook ≤ ${GOAL_MS} ms median under ${tb.accelerator.accel}: FFS ${ffsMedian.toFixed(0)} ms ${ffsMedian <= GOAL_MS ? 'met' : 'MISSED'}; baseline ${median(base.map((s) => s.hookMs)).toFixed(0)} ms`);
    out.push(`samples (ms, attach → hook): FFS ${ffs.map((s) => s.hookMs.toFixed(0)).join(' ')}; baseline ${base.map((s) => s.hookMs.toFixed(0)).join(' ')}`);
    console.log(out.join('\n'));
  } finally {
    await cleanup();
  }
}

try {
  if (!existsSync(join(HERE, 'poller.sh'))) throw new Error('bench/ffs-guest/poller.sh is missing');
  await main();
} catch (error: unknown) {
  console.error(`bench:ffs-guest: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
}
