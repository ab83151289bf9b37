// A real Prometheus for tests (Debian's `prometheus`, installed by the test setup's package
// mechanism when missing) and a small exporter the test controls.
//
// Each test file starts its own private Prometheus (startPrometheus) on a free loopback port, with
// a temporary data directory and a config that scrapes only the targets the file gives — its own
// exporter(s) — every second. Private rather than shared per run like the control plane: it is
// ready in ~0.2 s, its config is the file's own targets (a shared one would need file-based
// discovery and reloads, each as slow as a start, see below), and a file may stop it to see the
// source fail.
//
// Timing: /-/ready answers within ~0.2 s, but the FIRST scrape comes ~5 s after the start:
// Prometheus 2.42's discovery manager hands targets to the scrape manager on a fixed 5 s tick
// (no flag changes it; --scrape.discovery-reload-interval does not help). After that, samples
// follow every scrape interval (1 s). Use waitForSample() rather than sleeping.
//
// By hand, for development: test/support/README.md.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROMETHEUS_TOOLS, ensureTools, hasCommand } from '../setup/system-packages.js';
import { listenOn } from '../../src/runtime/health.js';
import { skipReason } from './skip.js';

let checked: string | undefined | null = null;

/**
 * Installs Debian's prometheus when missing (apt-get, as root) and says why tests needing it must
 * skip here, or undefined when they can run. The reason is printed once per file: no silent skip.
 * Use: describe.skipIf(prometheusSkipReason())(…).
 */
export function prometheusSkipReason(): string | undefined {
  if (checked === null) checked = ensurePrometheus((line) => console.log(line));
  return skipReason('tests needing a real Prometheus', checked, 'the test setup installs Debian\'s prometheus with apt-get as root');
}

function ensurePrometheus(log: (line: string) => void): string | undefined {
  if (process.env['RECONTEXT_PROMETHEUS'] === 'off') return 'RECONTEXT_PROMETHEUS=off';
  const before = hasCommand('prometheus');
  const missing = ensureTools(PROMETHEUS_TOOLS, log);
  if (!before && missing.length === 0) {
    // The package's postinst starts prometheus.service / /etc/init.d/prometheus where an init
    // system runs and policy-rc.d allows it (in containers it usually does not: "policy-rc.d
    // denied execution of start"). The tests start their own servers; a daemon installed just
    // for them on 0.0.0.0:9090 is stopped (best effort, the result does not matter).
    spawnSync('invoke-rc.d', ['prometheus', 'stop'], { stdio: 'ignore' });
  }
  return missing.length > 0 ? missing.join('; ') : undefined;
}

// ---------------------------------------------------------------------------------------------
// The exporter: an HTTP server answering GET /metrics in the text exposition format.

export type Labels = Readonly<Record<string, string>>;

export interface Exporter {
  /** http://127.0.0.1:port/metrics */
  readonly url: string;
  /** host:port, for a scrape config. */
  readonly target: string;
  /** Publishes a gauge sample (replacing the one with the same labels); a function is evaluated at each scrape. */
  set(metric: string, labels: Labels, value: number | (() => number)): void;
  /** Stops publishing the series (Prometheus marks it stale at the next scrape). */
  remove(metric: string, labels: Labels): void;
  /** How many times /metrics was scraped. */
  readonly scrapes: number;
  /** Resolves after the next scrape has been answered. */
  nextScrape(): Promise<void>;
  stop(): Promise<void>;
}

export async function startExporter(): Promise<Exporter> {
  const series = new Map<string, Map<string, { labels: Labels; value: number | (() => number) }>>();
  let scrapes = 0;
  let waiters: Array<() => void> = [];
  const server: Server = createHttpServer((request, response) => {
    if (request.method !== 'GET' || !request.url?.startsWith('/metrics')) return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    response.end(exposition(series), () => {
      scrapes += 1;
      const done = waiters;
      waiters = [];
      for (const resolve of done) resolve();
    });
  });
  const port = new URL(await listenOn(server, '127.0.0.1:0')).port;
  return {
    url: `http://127.0.0.1:${port}/metrics`,
    target: `127.0.0.1:${port}`,
    set(metric, labels, value) {
      if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(metric)) throw new Error(`not a metric name: ${metric}`);
      let byLabels = series.get(metric);
      if (!byLabels) series.set(metric, (byLabels = new Map()));
      byLabels.set(labelKey(labels), { labels, value });
    },
    remove(metric, labels) {
      series.get(metric)?.delete(labelKey(labels));
    },
    get scrapes() {
      return scrapes;
    },
    nextScrape: () => new Promise<void>((resolve) => waiters.push(resolve)),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function exposition(series: Map<string, Map<string, { labels: Labels; value: number | (() => number) }>>): string {
  let text = '';
  for (const [metric, byLabels] of series) {
    if (byLabels.size === 0) continue;
    text += `# TYPE ${metric} ${metric.endsWith('_bucket') ? 'untyped' : 'gauge'}\n`;
    for (const { labels, value } of byLabels.values()) {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
      const n = typeof value === 'function' ? value() : value;
      const shown = Number.isNaN(n) ? 'NaN' : n === Infinity ? '+Inf' : n === -Infinity ? '-Inf' : String(n);
      text += `${metric}${pairs.length > 0 ? `{${pairs.join(',')}}` : ''} ${shown}\n`;
    }
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Prometheus itself.

export interface PrometheusServer {
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:40123 (what metric.prometheus.address takes). */
  readonly url: string;
  readonly dir: string;
  /** How long the start took until /-/ready, ms. */
  readonly startMs: number;
  /** The instant query's data.result (throws on status error). */
  query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  /**
   * Polls until the query yields exactly one series whose value passes `accept` (default: any),
   * and returns that value: wait for a scrape instead of sleeping blindly.
   */
  waitForSample(promql: string, accept?: (value: number) => boolean, timeoutMs?: number): Promise<number>;
  /** The server's log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port of each target to scrape (job "test", path /metrics). */
  readonly targets: readonly string[];
  readonly scrapeIntervalMs?: number;
  /** Milliseconds to wait for /-/ready. Default 30 s. */
  readonly readyTimeoutMs?: number;
}

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const dir = await mkdtemp(join(tmpdir(), 'recontext-prometheus-'));
  const interval = `${Math.max(1, Math.round((options.scrapeIntervalMs ?? 1000) / 1000))}s`;
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    'scrape_configs:',
    '  - job_name: test',
    '    static_configs:',
    `      - targets: [${options.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), config);
  const started = Date.now();
  // A free port is found by binding and closing; another process could take it in between, so
  // a start that fails on "address already in use" is retried on a new port.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await launch(dir, port, options.readyTimeoutMs ?? 30_000, started);
    } catch (error: unknown) {
      lastError = error;
      if (!(error instanceof Error && /address already in use/.test(error.message))) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

async function launch(dir: string, port: number, readyTimeoutMs: number, started: number): Promise<PrometheusServer> {
  const url = `http://127.0.0.1:${port}`;
  const args = [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--storage.tsdb.retention.time=1h',
    '--log.level=info',
  ];
  const child: ChildProcess = spawn('prometheus', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  });
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  child.once('error', (error) => {
    output += `\nspawn failed: ${error.message}`;
  });
  // Never leave a server behind if the worker exits without stop().
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stop = async (): Promise<void> => {
    process.off('exit', killOnExit);
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(timer);
    }
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exited) throw new Error(`prometheus exited (${exited.code ?? exited.signal}) before it was ready:\n${output.slice(-4000)}`);
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus was not ready within ${readyTimeoutMs} ms:\n${output.slice(-4000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const startMs = Date.now() - started;

  const query = async (promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
    const response = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
    const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
    if (body.status !== 'success' || !body.data) throw new Error(`query ${promql} failed: ${body.error ?? response.status}`);
    if (body.data.resultType !== 'vector') throw new Error(`query ${promql} yields a ${body.data.resultType}, not a vector`);
    return body.data.result as Array<{ metric: Record<string, string>; value: [number, string] }>;
  };

  return {
    url,
    dir,
    startMs,
    query,
    async waitForSample(promql, accept = () => true, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      let last = 'no answer yet';
      for (;;) {
        const result = await query(promql);
        if (result.length === 1) {
          const value = Number(result[0]!.value[1]);
          if (accept(value)) return value;
          last = `value ${value}`;
        } else {
          last = `${result.length} series`;
        }
        if (exited) throw new Error(`prometheus exited while waiting for ${promql}:\n${output.slice(-4000)}`);
        if (Date.now() > until) throw new Error(`no accepted sample for ${promql} within ${timeoutMs} ms (last: ${last})`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    log: () => output,
    async stop() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

/** A loopback port nothing listens on (for Unreachable). */
export const closedPort = freePort;
