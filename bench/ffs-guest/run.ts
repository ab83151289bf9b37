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
// Two kinds of swap (BENCH_FFS_GUEST_SWAP): `spare` — six drives for four layers, so the driver
// puts the new image into an empty drive and ejects the old one afterwards (make before break);
// `in-place` — four drives and no virtio-scsi controller, so the driver changes the medium in the
// layer's own drive: libvirt's non-forced change-media asks the guest to release the drive (the
// agent takes the layer out of the stack, unmounts, opens the tray), then inserts the new image;
// the attach call returns once it is in.
// Then M migration-like swaps: the layers rendered for the other zone, so the two zone-dependent
// layers (site-cache, data-residency) change at once, as in a migration; a probe hook on both
// layers' files (etc/ntp.conf, etc/policy/; the measured hook's debounce) counts the hook runs per migration, which must
// be one, and the guest's `stack changed` lines give the gap between the two layers' arrivals.
// Then (spare only) one more swap delivers bench/switch: its hook starts bench/ffs-guest/poller.sh
// (shipped in the service layer), which stops FFS and takes the drives over; the same N swaps again,
// measured to its `BASE-VIEW` line (the new view is in place) and to the same hook's
// APP-HOOK-START. (The poller does not answer eject requests, so it cannot serve in-place changes.)
//
// Run: npm run bench:ffs-guest   (root; the test bed installs QEMU + libvirt when missing)
//   env BENCH_FFS_GUEST_SWAP=<kind>      spare (default) or in-place
//       BENCH_FFS_GUEST_SWAPS=<n>       swaps per side (default 30)
//       BENCH_FFS_GUEST_MIGRATIONS=<n>  migration-like two-layer swaps (default 10)
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
import { desiredLayers, siteOperator, writeSite, ZONE_A, ZONE_B, withGlusterServer } from '../../test/testbed/site.js';

const DOMAIN = 'bench-ffs-guest';
const KEY = `default/${DOMAIN}`;
const SWAP_KIND = process.env.BENCH_FFS_GUEST_SWAP ?? 'spare';
if (SWAP_KIND !== 'spare' && SWAP_KIND !== 'in-place') throw new Error(`BENCH_FFS_GUEST_SWAP must be spare or in-place, not ${SWAP_KIND}`);
const IN_PLACE = SWAP_KIND === 'in-place';
const SWAPS = Number(process.env.BENCH_FFS_GUEST_SWAPS ?? '30');
const MIGRATIONS = Number(process.env.BENCH_FFS_GUEST_MIGRATIONS ?? '10');
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
/** The migration probe: one console line per run, with the generation and the changed paths. */
const PROBE = `echo "PROBE-HOOK gen=$RECONTEXT_GENERATION $(echo $RECONTEXT_CHANGED_PATHS)" > /dev/console`;
const SWITCH = `cp "$RECONTEXT_MOUNTPOINT/bench/poller.sh" /tmp/poller.sh; setsid sh /tmp/poller.sh $PPID 5 < /dev/null > /dev/console 2>&1 &`;

/** The site's service layer with the bench's hooks, the baseline script and (for the switch) bench/switch. */
function serviceYaml(original: string, withSwitch: boolean): string {
  const debounce = DEBOUNCE !== undefined ? `      debounceMs: ${Number(DEBOUNCE)}\n` : '';
  const indent = (text: string) => text.split('\n').map((l) => (l === '' ? '' : `        ${l}`)).join('\n');
  const files = [
    `    - path: bench/poller.sh\n      content: |\n${indent(readFileSync(join(HERE, 'poller.sh'), 'utf8'))}`,
    ...(withSwitch ? ['    - path: bench/switch\n      content: |\n        switch to the baseline\n'] : []),
  ].join('');
  const hooks =
    `  hooks:\n` +
    `    - name: gluster-reload\n      paths: [etc/glusterfs/]\n${debounce}      run: [/bin/sh, -c, ${quote(HOOK)}]\n` +
    `    - name: migration-probe\n      paths: [etc/ntp.conf, etc/policy/]\n${debounce}      run: [/bin/sh, -c, ${quote(PROBE)}]\n` +
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
  /** The host's attach call (in place: it includes the guest releasing the drive). */
  readonly attachCallMs: number;
  /** Runs of the hook before the one that saw the new image (they saw an intermediate stack). */
  readonly stray: number;
}

/** One migration-like swap: two layers' media changed back to back by the host. */
interface Migration {
  readonly changes: number;
  readonly attachCallMs: number;
  /** Probe hook runs (must be 1) and the guest's stack changes, their span and gaps (guest clock). */
  readonly runs: number;
  readonly stackChanges: number;
  readonly spanMs: number;
  readonly gapsMs: readonly number[];
  readonly firstRun: string;
}

/** Waits until `count` lines at index ≥ from match. */
async function waitCount(tail: ConsoleTail, regex: RegExp, from: number, count: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (tail.lines.slice(from).filter((l) => regex.test(l.text)).length < count) {
    if (Date.now() > deadline) throw new Error(`${what}: fewer than ${count} lines ${regex} within ${timeoutMs} ms`);
    await sleep(TAIL_MS);
  }
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
      // in-place: one drive per layer and no controller to hot-plug a spare on.
      { name: DOMAIN, guest: fat, cdroms: IN_PLACE ? 4 : 6, virtioScsi: !IN_PLACE, cmdlineExtra: ffsRun({ trace: TRACE, config: FFS_BENCH_CONFIG }) },
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
    const wanted = (server: string, labels: Record<string, string> = ZONE_A) =>
      desiredLayers({
        dir: site,
        store,
        vm: DOMAIN,
        node: { name: 'host-a', labels },
        sources: withGlusterServer(server),
      });
    client = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
    const domain: DomainRef = (await client.lookupDomain(DOMAIN))!;
    const c = client;
    /**
     * One swap of the service layer's image to `server` (rendered for `labels`): the making actions
     * timed, then (spare) the old drive ejected. The plan must be the kind this run measures.
     */
    const swap = async (server: string, labels: Record<string, string> = ZONE_A) => {
      const layers = await wanted(server, labels);
      const digest = layers.find((l) => l.name === 'gluster-service')!.digest;
      const from = tail!.count;
      const called = now();
      const swapped = await attachLayers(c, domain, layers); // the driver's own sequence, first half
      const attached = now();
      const kinds = swapped.plan.actions.map((a) => a.kind);
      // Into a spare drive the old one is ejected afterwards; in place there is nothing to eject.
      const planned = kinds.includes('eject') ? 'spare' : 'in-place';
      if (planned !== SWAP_KIND || kinds.some((k) => k === 'attach' || k === 'detach')) throw new Error(`expected ${SWAP_KIND} swaps, the driver planned ${JSON.stringify(swapped.plan.actions)}`);
      return { digest, from, called, attached, changes: kinds.filter((k) => k === 'change-media').length, release: () => swapped.release() };
    };

    /**
     * The hook run that saw `server` (its APP-HOOK-START and the APP-HOOK line after it) and how
     * many runs before it saw something else (an in-place change's intermediate stack, without the
     * layer, if it outlasted the debounce).
     */
    const hookSeeing = async (server: string, from: number, what: string) => {
      for (let at = from, before = 0; ; before++) {
        const start = await tail!.waitFor(/^APP-HOOK-START/, at, 30_000, `${what}: hook start`);
        const seen = await tail!.waitFor(/^APP-HOOK /, start.index, 30_000, `${what}: hook line`);
        if (new RegExp(`remote-host ${server}\\b`).test(seen.line.text)) return { start, before };
        at = seen.index + 1;
      }
    };

    const ffs: Sample[] = [];
    const swapsFrom = tail.count;
    progress(`FFS: ${SWAPS} ${SWAP_KIND} swaps (load ${loadAverage()})`);
    const ffsLoad = [loadAverage()];
    for (let i = 1; i <= SWAPS; i++) {
      const server = `gluster-server-${100 + i}`;
      const s = await swap(server);
      const arrived = await tail.waitFor(new RegExp(`"msg":"layer image arrived".*"digest":"${s.digest}"`), s.from, 30_000, `FFS: image ${s.digest}`);
      const changed = await tail.waitFor(/"msg":"stack changed"/, arrived.index, 30_000, 'FFS: stack changed');
      const { start: hook, before } = await hookSeeing(server, s.from, 'FFS');
      // The watcher's trace between the attach and FFS taking the image: uevents and mounts (guest wall clock).
      const traced = tail.lines.slice(s.from, arrived.index).flatMap((l) => {
        const m = /ffs-devd trace (\d+\.\d+) (uevent change \S+ media-change|mounted)/.exec(l.text);
        return m ? [{ ts: Number(m[1]) * 1000, what: m[2]!.startsWith('uevent') ? ('uevent' as const) : ('mounted' as const) }] : [];
      });
      const json = (line: Line) => JSON.parse(line.text.slice(line.text.indexOf('{'))) as { ts: string; generation: number };
      ffs.push({
        visibleMs: changed.line.at - s.attached,
        hookMs: hook.line.at - s.attached,
        attachCallMs: s.attached - s.called,
        stray: before,
        arrivedTs: Date.parse(json(arrived.line).ts),
        changedTs: Date.parse(json(changed.line).ts),
        generation: json(changed.line).generation,
        devd: { uevents: traced.filter((t) => t.what === 'uevent').map((t) => t.ts), mounts: traced.filter((t) => t.what === 'mounted').map((t) => t.ts) },
        attached: s.attached,
        hookAt: hook.line.at,
      });
      const released = tail.count;
      await s.release();
      // In place, the guest released the drive during the attach call already.
      if (!IN_PLACE) await tail.waitFor(/"msg":"released a drive the host asked for"/, released, 30_000, 'FFS: drive released');
      progress(`FFS swap ${i}/${SWAPS}: attach call ${ffs.at(-1)!.attachCallMs.toFixed(0)} ms, visible ${ffs.at(-1)!.visibleMs.toFixed(0)} ms, hook ${ffs.at(-1)!.hookMs.toFixed(0)} ms${before > 0 ? ` (${before} hook run(s) on an intermediate stack first)` : ''} (load ${loadAverage()})`);
      await sleep(SETTLE_MS);
    }
    // Hook runs the swaps left behind (an intermediate run after the measured one would show here).
    const strayAfter = tail.lines.slice(swapsFrom).filter((l) => /^APP-HOOK /.test(l.text)).length - ffs.length - ffs.reduce((n, x) => n + x.stray, 0);

    // Migration-like swaps: both zone-dependent layers change at once; the probe hook must run once.
    const migrations: Migration[] = [];
    let labels: Record<string, string> = ZONE_A;
    for (let i = 1; i <= MIGRATIONS; i++) {
      labels = labels === ZONE_A ? ZONE_B : ZONE_A;
      const s = await swap(`gluster-server-${100 + SWAPS}`, labels);
      const zone = labels['topology.kubernetes.io/zone']!;
      const last = await tail.waitFor(new RegExp(`^PROBE-HOOK `), s.from, 30_000, `migration ${i}: probe hook`);
      await sleep(Math.max(1000, Number(DEBOUNCE ?? DEFAULT_DEBOUNCE_MS) * 3)); // any second run would come by now
      const window = tail.lines.slice(s.from);
      const runs = window.filter((l) => /^PROBE-HOOK /.test(l.text));
      const changes = window
        .filter((l) => l.text.includes('"msg":"stack changed"'))
        .map((l) => Date.parse((JSON.parse(l.text.slice(l.text.indexOf('{'))) as { ts: string }).ts));
      migrations.push({ changes: s.changes, attachCallMs: s.attached - s.called, runs: runs.length, stackChanges: changes.length, spanMs: changes.length > 1 ? changes.at(-1)! - changes[0]! : 0, gapsMs: changes.slice(1).map((c, k) => c - changes[k]!), firstRun: last.line.text });
      const released = tail.count;
      await s.release();
      if (!IN_PLACE) await waitCount(tail, /"msg":"released a drive the host asked for"/, released, s.changes, 30_000, 'FFS: drives released');
      progress(`migration ${i}/${MIGRATIONS} (to ${zone}): ${s.changes} media changes in ${migrations.at(-1)!.attachCallMs.toFixed(0)} ms, ${changes.length} stack changes over ${migrations.at(-1)!.spanMs} ms (guest), probe hook ran ${runs.length}×`);
      await sleep(SETTLE_MS);
    }
    ffsLoad.push(loadAverage());

    // The baseline (spare swaps only: the poller does not answer eject requests).
    const base: Sample[] = [];
    const baseLoad: string[] = [];
    if (!IN_PLACE) {
      // The switch: FFS's bench-switch hook starts the polling agent, which then stops FFS.
      writeFileSync(servicePath, serviceYaml(original, true));
      const sw = await swap(`gluster-server-${200 + SWAPS}`, labels);
      await tail.waitFor(/^BASE-START/, sw.from, 60_000, 'baseline: start');
      await sw.release();
      const ready = await tail.waitFor(/^BASE-READY (\d+)/, sw.from, 60_000, 'baseline: ready');
      progress(`baseline agent took over (${ready.match[1]} layers)`);
      await sleep(SETTLE_MS);

      baseLoad.push(loadAverage());
      for (let i = 1; i <= SWAPS; i++) {
        const server = `gluster-server-${300 + i}`;
        const s = await swap(server, labels);
        const view = await tail.waitFor(/^BASE-VIEW \d+ p0=([\d.]+) t0=([\d.]+) t1=([\d.]+) t=([\d.]+)/, s.from, 30_000, 'baseline: view');
        const hook = await tail.waitFor(/^APP-HOOK-START/, view.index, 30_000, 'baseline: hook start');
        await tail.waitFor(new RegExp(`^APP-HOOK .*remote-host ${server}\\b`), hook.index, 30_000, `baseline: hook sees ${server}`);
        const [p0, t0, t1, t] = view.match.slice(1, 5).map(Number) as [number, number, number, number];
        base.push({ visibleMs: view.line.at - s.attached, hookMs: hook.line.at - s.attached, attachCallMs: s.attached - s.called, stray: 0, attached: s.attached, hookAt: hook.line.at, poll: { p0, t0, t1, t, at: view.line.at } });
        await s.release();
        progress(`baseline swap ${i}/${SWAPS}: visible ${base.at(-1)!.visibleMs.toFixed(0)} ms, hook ${base.at(-1)!.hookMs.toFixed(0)} ms (load ${loadAverage()})`);
        await sleep(SETTLE_MS);
      }
      baseLoad.push(loadAverage());
    }

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
    out.push(`load: before ${loadBefore}; FFS batch ${ffsLoad.join(' → ')}${base.length > 0 ? `; baseline batch ${baseLoad.join(' → ')}` : ''}; after: ${uptime}`);
    out.push(`swaps: ${SWAP_KIND} (${IN_PLACE ? '4 drives, no virtio-scsi: the medium changed in the layer\'s own drive' : '6 drives: into a spare drive, the old one ejected after'}), ${SWAPS} per side; settle ${SETTLE_MS} ms; hook debounceMs ${DEBOUNCE ?? `default (FFS: ${DEFAULT_DEBOUNCE_MS})`}; console tailed every ${TAIL_MS} ms`);
    out.push('');
    out.push('| ms after the host\'s attach call returned (n = ' + SWAPS + ') | median | p95 | min | max |');
    out.push('|---|---:|---:|---:|---:|');
    out.push(`| FFS (uevents, the built-in watcher): new content visible (\`stack changed\`) | ${stats(ffs.map((s) => s.visibleMs))} |`);
    out.push(`| FFS: hook ran (its first console line) | ${stats(ffs.map((s) => s.hookMs))} |`);
    if (base.length > 0) {
      out.push(`| baseline (1 s polling agent, remount + copy): new view in place | ${stats(base.map((s) => s.visibleMs))} |`);
      out.push(`| baseline: hook ran | ${stats(base.map((s) => s.hookMs))} |`);
    }
    out.push(`| (the host's attach call itself${IN_PLACE ? ': eject request, the guest releases, the new medium in' : ''}) | ${stats(ffs.map((s) => s.attachCallMs))} |`);
    out.push('');
    out.push(`FFS hook runs on an intermediate stack (before the run that saw the new image): ${ffs.reduce((n, x) => n + x.stray, 0)} over ${SWAPS} swaps; runs after it: ${strayAfter}`);
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
    if (migrations.length > 0) {
      const all = (f: (m: Migration) => number) => stats(migrations.map(f));
      out.push('');
      out.push(`migration-like swaps (both zone-dependent layers re-rendered for the other zone; a probe hook on both layers' files, debounceMs ${DEBOUNCE ?? `default ${DEFAULT_DEBOUNCE_MS}`}), n = ${migrations.length}:`);
      out.push('| | median | p95 | min | max |');
      out.push('|---|---:|---:|---:|---:|');
      out.push(`| media changes per migration (host) | ${all((m) => m.changes)} |`);
      out.push(`| the host's attach call (all changes), ms | ${all((m) => m.attachCallMs)} |`);
      out.push(`| stack changes per migration (guest) | ${all((m) => m.stackChanges)} |`);
      out.push(`| first → last stack change, ms (guest clock) | ${all((m) => m.spanMs)} |`);
      out.push(`| **probe hook runs per migration (must be 1)** | ${all((m) => m.runs)} |`);
      out.push(`gaps between consecutive stack changes (ms, guest clock): ${migrations.map((m) => m.gapsMs.join('+') || '-').join(' ')}; migrations with more than one hook run: ${migrations.filter((m) => m.runs > 1).length} of ${migrations.length}`);
    }
    // The baseline's uptime stamps → host clock, by the same minimum rule over its BASE-VIEW lines.
    const polls = base.map((s) => s.poll!);
    if (base.length > 0) {
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
    }
    const ffsMedian = median(ffs.map((s) => s.hookMs));
    out.push(`goal: attach → hook ≤ ${GOAL_MS} ms median under ${tb.accelerator.accel} (${SWAP_KIND}): FFS ${ffsMedian.toFixed(0)} ms (p95 ${quantile(ffs.map((s) => s.hookMs), 0.95).toFixed(0)}) ${ffsMedian <= GOAL_MS ? 'met' : 'MISSED'}${base.length > 0 ? `; baseline ${median(base.map((s) => s.hookMs)).toFixed(0)} ms` : ''}`);
    out.push(`samples (ms, attach → hook): FFS ${ffs.map((s) => s.hookMs.toFixed(0)).join(' ')}${base.length > 0 ? `; baseline ${base.map((s) => s.hookMs.toFixed(0)).join(' ')}` : ''}`);
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
