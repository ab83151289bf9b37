// Benchmark: the operator at scale from a cold start (issue 10, part 5). N VMContexts × 3
// ContextLayers on a real kube-apiserver + etcd (test/controlplane), the operator as a separate
// process (so RSS and CPU are the operator's alone) with the images-only driver: VMs are KubeVirt
// VMIs that exist with status.phase Running on labelled nodes, so every reconciliation observes
// the VMI (the driver's informer) and its node's labels (GET, then cached) for real and renders
// the zone-dependent layer for the right zone. The images-only driver attaches nothing and so
// writes no finalizer; a delivering driver adds that PATCH and its own requests per VM.
// Measures: time from the operator's start to every VMContext Ready=True, Kubernetes API
// requests per VMContext (the operator's own recontext_kube_requests_total), peak RSS (VmHWM),
// CPU seconds to converge, and CPU and requests over an idle window after convergence.
// Both sides: a small N and the large N in one run, each on a fresh control plane, so per-object
// costs and how they scale are visible side by side (an O(n²) shows as a per-VM cost that grows).
// Run: npm run bench:scale
//   env BENCH_SCALE_VMS=<n>          the large N (default 5000)
//       BENCH_SCALE_SMALL=<n>        the small N printed beside it (default N/10; 0 = only N)
//       BENCH_SCALE_PER_NS=<n>       VMContexts per namespace (default 100)
//       BENCH_SCALE_CONCURRENCY=<n,…> the operator's --concurrency for the large N, one run each
//                                    (default 4,16: its default, and what a latency-bound start
//                                    gains from more workers); the small N runs with the first
//       BENCH_SCALE_IDLE_S=<s>       idle window after convergence (default 30)
//       BENCH_SCALE_TIMEOUT_S=<s>    give up on convergence after (default 600)
//       BENCH_SCALE_CPU_PROF=<dir>   run the operator with --cpu-prof into <dir>
//   quick check: BENCH_SCALE_VMS=500 BENCH_SCALE_SMALL=0 npm run bench:scale
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import type { VMContext } from '../../src/crds/index.js';
import { KubeClient } from '../../src/kube/client.js';
import { startControlPlane, type ControlPlane } from '../../test/controlplane/index.js';

const REPO = join(import.meta.dirname, '..', '..');
const large = Number(process.env.BENCH_SCALE_VMS ?? '5000');
const small = Number(process.env.BENCH_SCALE_SMALL ?? String(Math.round(large / 10)));
const perNamespace = Number(process.env.BENCH_SCALE_PER_NS ?? '100');
const concurrencies = (process.env.BENCH_SCALE_CONCURRENCY ?? '4,16').split(',').map(Number);
const idleSeconds = Number(process.env.BENCH_SCALE_IDLE_S ?? '30');
const timeoutSeconds = Number(process.env.BENCH_SCALE_TIMEOUT_S ?? '600');
const cpuProfDir = process.env.BENCH_SCALE_CPU_PROF || undefined;
const GOAL_SECONDS = 60;
const GOAL_RSS_MB = 500;
/** Requests in flight while creating the objects. */
const SETUP_CONCURRENCY = 48;
const NODES = 10;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || '100');
const BUILD_DIR = join(REPO, 'node_modules', '.cache', 'recontext-bench-scale');

const progress = (line: string): void => void process.stderr.write(`bench:scale: ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

interface Result {
  readonly vms: number;
  readonly concurrency: number;
  readonly namespaces: number;
  readonly layers: number;
  readonly setupS: number;
  readonly setupObjects: number;
  readonly syncedS: number | undefined;
  readonly readyS: number;
  readonly settledS: number;
  readonly requests: Record<string, number>;
  readonly idleRequests: number;
  readonly peakRssMb: number;
  readonly rssAfterMb: number;
  readonly cpuToReadyS: number;
  readonly cpuToSettledS: number;
  readonly idleCpuS: number;
  readonly apiServerCpuS: number;
  readonly etcdCpuS: number;
  readonly imageBuilds: number;
  readonly reconciles: Record<string, number>;
  readonly load: string;
}

/** The operator compiled once into a private directory: RSS without tsx's transpiler, and dist/ left alone. */
function buildOperator(): string {
  const started = Date.now();
  const out = join(BUILD_DIR, 'dist');
  rmSync(BUILD_DIR, { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO, 'tsconfig.build.json'), '--outDir', out, '--declaration', 'false', '--sourceMap', 'false'], { encoding: 'utf8' });
  // tsc emits despite type errors; only a missing output is fatal (a type error elsewhere in a
  // tree others are editing should not stop the bench; a real break shows when the operator starts).
  if (!existsSync(join(out, 'cli', 'main.js'))) throw new Error(`building the operator failed:\n${tsc.stdout}${tsc.stderr}`);
  if (tsc.status !== 0) progress(`warning: tsc reported errors (emitted anyway):\n${tsc.stdout.split('\n').slice(0, 5).join('\n')}`);
  // Inside node_modules, Node looks no further up for "type": "module".
  writeFileSync(join(BUILD_DIR, 'package.json'), '{"type":"module"}\n');
  const launcher = join(BUILD_DIR, 'recontext.js');
  writeFileSync(launcher, "import { main } from './dist/cli/main.js';\nprocess.exitCode = await main(process.argv);\n");
  progress(`built the operator in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return launcher;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        for (let attempt = 1; ; attempt++) {
          try {
            await work(item);
            break;
          } catch (error: unknown) {
            if (attempt >= 5) throw error;
            await sleep(200 * attempt);
          }
        }
      }
    }),
  );
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** VmHWM and VmRSS in MB. */
function memory(pid: number): { hwm: number; rss: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { hwm: kb('VmHWM') / 1024, rss: kb('VmRSS') / 1024 };
  } catch {
    return { hwm: Number.NaN, rss: Number.NaN };
  }
}

/** Every sample of the operator's /metrics, keyed by name{labels} as printed. */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, name, labels, value] = match as unknown as [string, string, string | undefined, string];
    values.set(`${name}${labels ?? ''}`, Number(value));
  }
  return values;
}

/** The samples of one metric summed per value of the label `by` (one sum under '' without it). */
function sumOf(values: Map<string, number>, name: string, by?: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const [key, value] of values) {
    if (!key.startsWith(`${name}{`) && key !== name) continue;
    const group = by ? (new RegExp(`${by}="([^"]*)"`).exec(key)?.[1] ?? '') : '';
    sums.set(group, (sums.get(group) ?? 0) + value);
  }
  return sums;
}

const ZONES = ['zone-a', 'zone-b'] as const;

function layerObjects(namespace: string): object[] {
  const meta = (name: string) => ({ apiVersion: 'recontext.dev/v1alpha1', kind: 'ContextLayer', metadata: { name, namespace } });
  return [
    // service: from a ConfigMap of the namespace (one image per namespace)
    { ...meta('app-config'), spec: { class: 'service', files: [{ path: 'etc/app/app.conf', contentFrom: { configMapKeyRef: { name: 'app-config', key: 'app.conf' } } }, { path: 'etc/app/static.conf', content: 'mode = production\n' }] } },
    // infrastructure: differs per zone (two images, shared by every namespace)
    {
      ...meta('site-cache'),
      spec: {
        class: 'infrastructure',
        variants: ZONES.map((zone) => ({ name: zone, nodeSelector: { 'topology.kubernetes.io/zone': zone }, values: { cacheHost: `cache.${zone}.example.net` } })),
        values: { cacheHost: 'cache.example.net' },
        files: [{ path: 'etc/cache.conf', template: true, content: 'cache-server = {{ values.cacheHost }}\nzone = {{ node.zone }}\n' }],
      },
    },
    // legislative: the same everywhere (one image)
    { ...meta('data-residency'), spec: { class: 'legislative', files: [{ path: 'etc/residency.conf', content: 'jurisdiction = eu\nretention-days = 30\n' }] } },
  ];
}

/** Namespaces, nodes, ConfigMaps, layers, running VMIs and VMContexts, as fast as the API server takes them. */
async function populate(client: KubeClient, vms: number): Promise<{ namespaces: number; layers: number; objects: number }> {
  const namespaces = Array.from({ length: Math.ceil(vms / perNamespace) }, (_, i) => `scale-${String(i).padStart(3, '0')}`);
  let objects = 0;
  const post = async (path: string, body: object) => {
    await client.create(path, body);
    objects++;
  };
  await pool(
    Array.from({ length: NODES }, (_, i) => i),
    SETUP_CONCURRENCY,
    (i) => post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${i}`, labels: { 'topology.kubernetes.io/zone': ZONES[i % 2], 'topology.kubernetes.io/region': 'eu-north' } } }),
  );
  await pool(namespaces, SETUP_CONCURRENCY, (ns) => post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }));
  const perNs = namespaces.flatMap((ns) => [
    [`/api/v1/namespaces/${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-config', namespace: ns }, data: { 'app.conf': `tenant = ${ns}\nlisten = 0.0.0.0:8080\n` } }] as const,
    ...layerObjects(ns).map((layer) => [`/apis/recontext.dev/v1alpha1/namespaces/${ns}/contextlayers`, layer] as const),
  ]);
  await pool(perNs, SETUP_CONCURRENCY, ([path, body]) => post(path, body));
  const names = Array.from({ length: vms }, (_, i) => ({ ns: namespaces[Math.floor(i / perNamespace)] as string, name: `vm-${String(i).padStart(5, '0')}`, node: `node-${i % NODES}` }));
  await pool(names, SETUP_CONCURRENCY, async ({ ns, name, node }) => {
    const path = `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances`;
    try {
      await post(path, { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name, namespace: ns }, spec: {} });
    } catch (error: unknown) {
      if (!String(error).includes('already exists')) throw error;
    }
    await client.mergePatch(`${path}/${name}/status`, { status: { phase: 'Running', nodeName: node } });
    objects++;
  });
  await pool(names, SETUP_CONCURRENCY, ({ ns, name }) =>
    post(`/apis/recontext.dev/v1alpha1/namespaces/${ns}/vmcontexts`, {
      apiVersion: 'recontext.dev/v1alpha1',
      kind: 'VMContext',
      metadata: { name, namespace: ns, labels: { app: 'scale' } },
      spec: { target: { kubevirt: { name } }, layers: [{ name: 'app-config' }, { name: 'site-cache' }, { name: 'data-residency' }], recontextOn: ['Migration', 'LayerChange', 'NodeChange'] },
    }).catch((error: unknown) => {
      if (!String(error).includes('already exists')) throw error;
    }),
  );
  return { namespaces: namespaces.length, layers: namespaces.length * 3, objects };
}

function isReady(vm: VMContext): boolean {
  return vm.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true && vm.status.observedGeneration === vm.metadata.generation;
}

/** Follows every VMContext by list + watch; resolves when all `expected` are Ready. */
function readyTracker(client: KubeClient, expected: number, signal: AbortSignal): { all: Promise<void>; count(): number } {
  const ready = new Set<string>();
  let resolveAll!: () => void;
  const all = new Promise<void>((resolve) => (resolveAll = resolve));
  const note = (vm: VMContext) => {
    const key = `${vm.metadata.namespace}/${vm.metadata.name}`;
    if (isReady(vm)) ready.add(key);
    else ready.delete(key);
    if (ready.size >= expected) resolveAll();
  };
  const path = '/apis/recontext.dev/v1alpha1/vmcontexts';
  void (async () => {
    let resourceVersion: string | undefined;
    while (!signal.aborted) {
      try {
        if (resourceVersion === undefined) {
          ready.clear();
          let cont: string | undefined;
          do {
            const page = await client.list<VMContext>(path, { limit: 1000, continue: cont });
            for (const vm of page.items) note(vm);
            resourceVersion = page.metadata.resourceVersion;
            cont = page.metadata.continue || undefined;
          } while (cont);
        }
        await client.watch<VMContext>(path, { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 600 }, (event) => {
          if (event.type === 'ERROR') {
            resourceVersion = undefined;
            return;
          }
          if (event.object.metadata?.resourceVersion) resourceVersion = event.object.metadata.resourceVersion;
          if (event.type === 'ADDED' || event.type === 'MODIFIED') note(event.object);
        }, signal);
      } catch (error: unknown) {
        if (signal.aborted) return;
        progress(`tracker: ${String(error)}; relisting`);
        resourceVersion = undefined;
        await sleep(500);
      }
    }
  })();
  return { all, count: () => ready.size };
}

async function runSize(launcher: string, vms: number, concurrency: number): Promise<Result> {
  progress(`N=${vms}: starting a control plane`);
  const plane: ControlPlane = await startControlPlane({ log: (line) => progress(line) });
  let operator: ChildProcess | undefined;
  const abort = new AbortController();
  try {
    const kubectl = async (args: string[]) => {
      const result = await plane.kubectl(args);
      if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
    };
    const crds = [join(REPO, 'config', 'crd', 'recontext.dev_contextlayers.yaml'), join(REPO, 'config', 'crd', 'recontext.dev_vmcontexts.yaml'), join(REPO, 'config', 'crd', 'recontext.dev_migrationpolicies.yaml'), join(REPO, 'test', 'fixtures', 'kubevirt', 'vmi-crd.yaml')];
    await kubectl(['apply', '--server-side', ...crds.flatMap((f) => ['-f', f])]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...crds.flatMap((f) => ['-f', f])]);
    // The same client the operator uses, without the operator: setup is not counted in its metrics.
    const client = KubeClient.fromKubeconfig(plane.kubeconfigPath);
    const setupStarted = Date.now();
    const made = await populate(client, vms);
    const setupS = (Date.now() - setupStarted) / 1000;
    progress(`N=${vms}: created ${made.objects} objects (${made.namespaces} namespaces, ${made.layers} layers) in ${setupS.toFixed(1)} s`);
    await sleep(2000); // let the API server's and etcd's own work after the burst end before timing

    const port = await freePort();
    const imageDir = mkdtempSync(join(tmpdir(), 'bench-scale-images-'));
    const logFile = join(tmpdir(), `bench-scale-operator-${vms}.log`);
    const log = createWriteStream(logFile);
    const nodeArgs = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir, '--cpu-prof-name', `operator-${vms}-c${concurrency}.cpuprofile`] : [];
    if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
    const apiServerCpu0 = cpuSeconds(plane.state().pids.apiServer);
    const etcdCpu0 = cpuSeconds(plane.state().pids.etcd);
    const tracker = readyTracker(KubeClient.fromKubeconfig(plane.kubeconfigPath), vms, abort.signal);
    const started = Date.now();
    operator = spawn(process.execPath, [...nodeArgs, launcher, 'operator', '--kubeconfig', plane.kubeconfigPath, '--driver', 'none', '--image-dir', imageDir, '--metrics-address', `127.0.0.1:${port}`, '--concurrency', String(concurrency), '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const pid = operator.pid;
    if (pid === undefined) throw new Error('the operator did not start');
    let syncedS: number | undefined;
    let exited: string | undefined;
    operator.on('exit', (code, signal) => (exited = `exited with ${code ?? signal}`));
    const lines = createInterface({ input: operator.stderr! });
    lines.on('line', (line) => {
      log.write(`${line}\n`);
      if (syncedS === undefined && line.includes('"caches synced"')) syncedS = (Date.now() - started) / 1000;
    });
    const metricsUrl = `http://127.0.0.1:${port}/metrics`;
    const peak = { hwm: 0 };
    const sampler = setInterval(() => {
      const m = memory(pid);
      if (m.hwm > peak.hwm) peak.hwm = m.hwm;
    }, 250);
    try {
      const deadline = started + timeoutSeconds * 1000;
      let lastReport = 0;
      for (;;) {
        if (exited) throw new Error(`the operator ${exited}; log: ${logFile}`);
        const done = await Promise.race([tracker.all.then(() => true), sleep(250).then(() => false)]);
        if (done) break;
        if (Date.now() > deadline) throw new Error(`only ${tracker.count()}/${vms} Ready after ${timeoutSeconds} s; log: ${logFile}`);
        if (Date.now() - lastReport > 5000) {
          lastReport = Date.now();
          progress(`N=${vms}: ${tracker.count()} Ready after ${((Date.now() - started) / 1000).toFixed(0)} s (rss ${memory(pid).rss.toFixed(0)} MB, cpu ${cpuSeconds(pid).toFixed(1)} s)`);
        }
      }
      const readyS = (Date.now() - started) / 1000;
      const cpuToReadyS = cpuSeconds(pid);
      progress(`N=${vms}: all Ready after ${readyS.toFixed(1)} s`);
      // Settled: nothing queued and no reconciliation for 2 s (the layer statuses and Events trail the VMs).
      let previous = '';
      let quiet = 0;
      for (;;) {
        await sleep(1000);
        const m = await scrape(metricsUrl);
        const depth = [...sumOf(m, 'recontext_workqueue_depth').values()].reduce((a, b) => a + b, 0);
        // Not GET/PUT: the leader lease is renewed every 2 s for as long as the operator runs.
        const writes = sumOf(m, 'recontext_kube_requests_total', 'verb');
        const signature = JSON.stringify([...sumOf(m, 'recontext_controller_reconcile_total').values(), writes.get('PATCH'), writes.get('POST')]);
        quiet = depth === 0 && signature === previous ? quiet + 1 : 0;
        previous = signature;
        if (quiet >= 2) break;
        if (Date.now() > deadline) throw new Error(`not settled after ${timeoutSeconds} s`);
      }
      const settledS = (Date.now() - started) / 1000 - 2;
      const settledMetrics = await scrape(metricsUrl);
      const cpuSettled = cpuSeconds(pid);
      progress(`N=${vms}: settled; idle for ${idleSeconds} s`);
      await sleep(idleSeconds * 1000);
      const idleCpuS = cpuSeconds(pid) - cpuSettled;
      const idleMetrics = await scrape(metricsUrl);
      const requestTotal = (m: Map<string, number>) => [...sumOf(m, 'recontext_kube_requests_total').values()].reduce((a, b) => a + b, 0);
      const idleRequests = requestTotal(idleMetrics) - requestTotal(settledMetrics);
      const requests = Object.fromEntries(sumOf(settledMetrics, 'recontext_kube_requests_total', 'verb'));
      const reconciles = Object.fromEntries(sumOf(settledMetrics, 'recontext_controller_reconcile_total', 'controller'));
      const imageBuilds = [...sumOf(settledMetrics, 'recontext_image_builds_total').values()].reduce((a, b) => a + b, 0);
      const failed = sumOf(settledMetrics, 'recontext_kube_requests_total', 'code');
      const errors = [...failed].filter(([code]) => !code.startsWith('2')).map(([code, n]) => `${code}: ${n}`);
      if (errors.length > 0) progress(`N=${vms}: operator requests that failed: ${errors.join(', ')}`);
      const m = memory(pid);
      return {
        vms,
        concurrency,
        namespaces: made.namespaces,
        layers: made.layers,
        setupS,
        setupObjects: made.objects,
        syncedS,
        readyS,
        settledS,
        requests,
        idleRequests,
        peakRssMb: Math.max(peak.hwm, m.hwm),
        rssAfterMb: m.rss,
        cpuToReadyS,
        cpuToSettledS: cpuSettled,
        idleCpuS,
        apiServerCpuS: cpuSeconds(plane.state().pids.apiServer) - apiServerCpu0,
        etcdCpuS: cpuSeconds(plane.state().pids.etcd) - etcdCpu0,
        imageBuilds,
        reconciles,
        load: loadavg().map((l) => l.toFixed(2)).join(' '),
      };
    } finally {
      clearInterval(sampler);
      abort.abort();
      if (operator.exitCode === null) {
        const gone = new Promise((resolve) => operator?.once('exit', resolve));
        operator.kill('SIGTERM'); // a clean exit writes the CPU profile
        await Promise.race([gone, sleep(15_000)]);
        if (operator.exitCode === null) operator.kill('SIGKILL');
      }
      log.end();
      rmSync(imageDir, { recursive: true, force: true });
    }
  } finally {
    abort.abort();
    await plane.stop();
  }
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')).join('\n');
}

function report(results: readonly Result[]): void {
  const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
  const verbs = (r: Result, names: string[]) => names.reduce((s, v) => s + (r.requests[v] ?? 0), 0);
  const total = (r: Result) => Object.values(r.requests).reduce((a, b) => a + b, 0);
  const rows: string[][] = [
    ['', ...results.map((r) => `N = ${r.vms}, c = ${r.concurrency}`)],
    ['namespaces × layers', ...results.map((r) => `${r.namespaces} × 3`)],
    ['setup: objects created (s)', ...results.map((r) => `${r.setupObjects} in ${f(r.setupS)}`)],
    ['operator start → caches synced (s)', ...results.map((r) => f(r.syncedS ?? Number.NaN))],
    ['operator start → all Ready (s)', ...results.map((r) => f(r.readyS))],
    ['  per 1000 VMContexts (s)', ...results.map((r) => f((r.readyS / r.vms) * 1000, 2))],
    ['operator start → settled (s)', ...results.map((r) => f(r.settledS))],
    ['API requests per VMContext', ...results.map((r) => f(total(r) / r.vms, 2))],
    ['  LIST + WATCH', ...results.map((r) => f(verbs(r, ['LIST', 'WATCH']) / r.vms, 3))],
    ['  GET (nodes, discovery, lease)', ...results.map((r) => f(verbs(r, ['GET']) / r.vms, 2))],
    ['  writes (PATCH, POST, PUT)', ...results.map((r) => f(verbs(r, ['PATCH', 'POST', 'PUT', 'DELETE']) / r.vms, 2))],
    ['reconciles per VMContext (vmcontext)', ...results.map((r) => f((r.reconciles.vmcontext ?? 0) / r.vms, 2))],
    ['reconciles per layer (contextlayer)', ...results.map((r) => f((r.reconciles.contextlayer ?? 0) / r.layers, 2))],
    ['images built', ...results.map((r) => String(r.imageBuilds))],
    ['peak RSS (MB)', ...results.map((r) => f(r.peakRssMb, 0))],
    ['RSS after idle (MB)', ...results.map((r) => f(r.rssAfterMb, 0))],
    ['operator CPU to all Ready (s)', ...results.map((r) => f(r.cpuToReadyS))],
    ['  per VMContext (ms)', ...results.map((r) => f((r.cpuToReadyS / r.vms) * 1000, 2))],
    ['operator CPU to settled (s)', ...results.map((r) => f(r.cpuToSettledS))],
    ['kube-apiserver + etcd CPU, start → idle end (s)', ...results.map((r) => `${f(r.apiServerCpuS)} + ${f(r.etcdCpuS)}`)],
    [`idle ${idleSeconds} s: operator CPU (s, % of a core)`, ...results.map((r) => `${f(r.idleCpuS, 2)} (${f((r.idleCpuS / idleSeconds) * 100, 2)} %)`)],
    [`idle ${idleSeconds} s: API requests`, ...results.map((r) => String(r.idleRequests))],
    ['load average at the end', ...results.map((r) => r.load)],
  ];
  console.log(table(rows));
  console.log('');
  console.log(`requests by verb: ${results.map((r) => `N=${r.vms} c=${r.concurrency} ${JSON.stringify(r.requests)}`).join('; ')}`);
  console.log('');
  const largest = Math.max(...results.map((r) => r.vms));
  for (const big of results.filter((r) => r.vms === largest)) console.log(`goal (N=${big.vms}, --concurrency ${big.concurrency}): all Ready ≤ ${GOAL_SECONDS} s: ${big.readyS <= GOAL_SECONDS ? 'met' : 'MISSED'} (${f(big.readyS)} s); peak RSS ≤ ${GOAL_RSS_MB} MB: ${big.peakRssMb <= GOAL_RSS_MB ? 'met' : 'MISSED'} (${f(big.peakRssMb, 0)} MB); idle CPU near zero: ${big.idleCpuS / idleSeconds < 0.01 ? 'yes' : 'NO'} (${f((big.idleCpuS / idleSeconds) * 100, 2)} % of a core)`);
}

async function main(): Promise<void> {
  const cases = [...(small > 0 && small < large ? [{ vms: small, concurrency: concurrencies[0]! }] : []), ...concurrencies.map((c) => ({ vms: large, concurrency: c }))];
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}; load at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`settings: N (--concurrency) ${cases.map((c) => `${c.vms} (${c.concurrency})`).join(', ')}; ${perNamespace} VMContexts per namespace, 3 ContextLayers + 1 ConfigMap per namespace, ${NODES} nodes in 2 zones; operator --driver none, leader election on, each case on a fresh control plane; idle window ${idleSeconds} s${cpuProfDir ? `; CPU profiles in ${cpuProfDir}` : ''}`);
  const launcher = buildOperator();
  const results: Result[] = [];
  for (const c of cases) results.push(await runSize(launcher, c.vms, c.concurrency));
  console.log('');
  report(results);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
