// Metric sources for MigrationPolicy: where a policy's performance indicator comes from.
//   - PrometheusSource: an instant query against the Prometheus HTTP API, the VM's identity
//     substituted into the query template (promql.ts).
//   - ReportedSource (reported.ts): values pushed by guests/agents or read from a file.
//   - MetricSources: dispatches a Metric to the one of the two it names.
// A read either yields a finite number with its time or throws MetricError with a reason: never a
// silent 0. The caller's AbortSignal cancels a read (the abort reason is rethrown as is).
import { QueryTemplateError, substituteIdentity } from './promql.js';
import { MetricError, type Metric, type MetricReading, type MetricSource, type VMIdentity } from './source.js';
import { realClock, type Clock } from '../runtime/clock.js';

export { MetricError, type Metric, type MetricErrorReason, type MetricReading, type MetricSource, type VMIdentity } from './source.js';

export interface PrometheusSourceOptions {
  /** The operator's --prometheus-url, used when a metric names no address. */
  readonly defaultAddress?: string;
  /** Per read; the query is also sent with Prometheus' own timeout parameter. Default 10 s. */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
  /** The evaluation time of the instant queries comes from it. Default the real clock. */
  readonly clock?: Clock;
}

const MAX_SERIES_IN_MESSAGE = 5;

export class PrometheusSource implements MetricSource {
  private readonly defaultAddress: string | undefined;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;

  constructor(options: PrometheusSourceOptions = {}) {
    this.defaultAddress = options.defaultAddress;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetch = options.fetch ?? globalThis.fetch;
    const clock = options.clock ?? realClock;
    this.now = () => clock.now();
  }

  async read(metric: Metric, vm: VMIdentity, signal: AbortSignal): Promise<MetricReading> {
    signal.throwIfAborted();
    const prometheus = metric.prometheus;
    if (!prometheus) throw new MetricError('NotConfigured', 'the metric is not a Prometheus query');
    const address = prometheus.address ?? this.defaultAddress;
    if (!address) throw new MetricError('NotConfigured', 'no Prometheus address: set metric.prometheus.address or the operator flag --prometheus-url');
    let query: string;
    try {
      query = substituteIdentity(prometheus.query, vm);
    } catch (error: unknown) {
      if (error instanceof QueryTemplateError) throw new MetricError('InvalidQuery', error.message);
      throw error;
    }
    const { url, headers, shown } = queryUrl(address, query, this.now(), this.timeoutMs);
    const body = await this.get(url, headers, shown, signal);
    return parseQueryResponse(body.status, body.text, { query, address: shown });
  }

  private async get(url: URL, headers: Record<string, string>, shown: string, signal: AbortSignal): Promise<{ status: number; text: string }> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = AbortSignal.any([signal, timeout]);
    try {
      const response = await this.fetch(url, { headers: { accept: 'application/json', ...headers }, signal: combined, redirect: 'error' });
      return { status: response.status, text: await response.text() };
    } catch (error: unknown) {
      if (signal.aborted) throw signal.reason;
      if (timeout.aborted) throw new MetricError('Timeout', `Prometheus at ${shown} did not answer within ${this.timeoutMs} ms`);
      throw new MetricError('Unreachable', `Prometheus at ${shown} is unreachable: ${describeFetchError(error)}`, { cause: error });
    }
  }
}

/**
 * The instant-query URL for an address (a base URL, possibly with a path prefix and user:password
 * — moved into a Basic Authorization header, since fetch refuses URLs with credentials) and the
 * form of the address safe to show in messages (no credentials, no query string).
 */
export function queryUrl(address: string, query: string, atMs: number, timeoutMs: number): { url: URL; headers: Record<string, string>; shown: string } {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new MetricError('NotConfigured', 'the Prometheus address is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MetricError('NotConfigured', `the Prometheus address must be http(s), not ${url.protocol}`);
  const headers: Record<string, string> = {};
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    headers['authorization'] = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/v1/query`;
  url.hash = '';
  const shown = `${url.origin}${url.pathname.replace(/\/api\/v1\/query$/, '')}`;
  url.searchParams.set('query', query);
  url.searchParams.set('time', (atMs / 1000).toFixed(3));
  url.searchParams.set('timeout', `${Math.max(1, Math.floor(timeoutMs / 1000))}s`);
  return { url, headers, shown };
}

/**
 * Interprets an answer of GET /api/v1/query (pure; every shape is unit-tested). One series or a
 * scalar with a finite value → the reading; everything else → MetricError.
 */
export function parseQueryResponse(httpStatus: number, text: string, about: { query: string; address: string }): MetricReading {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    if (httpStatus < 200 || httpStatus >= 300) throw new MetricError('Unreachable', `Prometheus at ${about.address} answered HTTP ${httpStatus}: ${snippet(text)}`);
    throw new MetricError('BadResponse', `${about.address} answered HTTP ${httpStatus} with something that is not JSON (is it the Prometheus API?): ${snippet(text)}`);
  }
  if (!isRecord(body) || (body['status'] !== 'success' && body['status'] !== 'error')) {
    if (httpStatus < 200 || httpStatus >= 300) throw new MetricError('Unreachable', `Prometheus at ${about.address} answered HTTP ${httpStatus}: ${snippet(text)}`);
    throw new MetricError('BadResponse', `${about.address} answered JSON that is not a Prometheus API response: ${snippet(text)}`);
  }
  if (body['status'] === 'error') {
    const errorType = typeof body['errorType'] === 'string' ? body['errorType'] : 'unknown';
    const error = typeof body['error'] === 'string' ? body['error'] : '(no message)';
    throw new MetricError('QueryError', `Prometheus rejected the query (${errorType}): ${error}`);
  }
  const data = body['data'];
  if (!isRecord(data) || typeof data['resultType'] !== 'string') throw new MetricError('BadResponse', `Prometheus answered no data.resultType: ${snippet(text)}`);
  const result = data['result'];
  switch (data['resultType']) {
    case 'scalar':
      return sample(result, 'the scalar');
    case 'string':
      throw new MetricError('NotANumber', `the query yields a string, not a number: ${snippet(JSON.stringify(result))}`);
    case 'matrix':
      throw new MetricError('QueryError', 'the query yields a range vector (…[5m]); wrap it in a function such as rate() or avg_over_time() so it yields one value');
    case 'vector': {
      if (!Array.isArray(result)) throw new MetricError('BadResponse', 'Prometheus answered a vector that is not a list');
      if (result.length === 0) throw new MetricError('NoData', `no series for the query ${about.query}`);
      if (result.length > 1) {
        const labels = result.slice(0, MAX_SERIES_IN_MESSAGE).map((s: unknown) => formatLabels(isRecord(s) ? s['metric'] : undefined));
        const more = result.length > MAX_SERIES_IN_MESSAGE ? ` and ${result.length - MAX_SERIES_IN_MESSAGE} more` : '';
        throw new MetricError('Ambiguous', `the query yields ${result.length} series, not one: ${labels.join(', ')}${more}; aggregate it (avg, max, sum) or match the VM's labels exactly`);
      }
      const series: unknown = result[0];
      if (!isRecord(series)) throw new MetricError('BadResponse', 'Prometheus answered a series that is not an object');
      const what = `the series ${formatLabels(series['metric'])}`;
      if (series['value'] === undefined && series['histogram'] !== undefined) throw new MetricError('NotANumber', `${what} is a native histogram, not a number; use histogram_quantile() or similar`);
      return sample(series['value'], what);
    }
    default:
      throw new MetricError('BadResponse', `Prometheus answered an unknown resultType ${JSON.stringify(data['resultType'])}`);
  }
}

function sample(value: unknown, what: string): MetricReading {
  if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== 'number' || typeof value[1] !== 'string') {
    throw new MetricError('BadResponse', `Prometheus answered ${what} in an unexpected form: ${snippet(JSON.stringify(value) ?? String(value))}`);
  }
  const number = Number(value[1]);
  if (value[1].trim() === '' || !Number.isFinite(number)) throw new MetricError('NotANumber', `${what} is ${value[1]}, not a finite number`);
  return { at: Math.round(value[0] * 1000), value: number };
}

function formatLabels(metric: unknown): string {
  if (!isRecord(metric)) return '{}';
  const name = typeof metric['__name__'] === 'string' ? metric['__name__'] : '';
  const labels = Object.entries(metric)
    .filter(([k]) => k !== '__name__')
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${name}{${labels.join(',')}}`;
}

function describeFetchError(error: unknown): string {
  // undici wraps the socket error: "fetch failed" with the cause ECONNREFUSED 127.0.0.1:9.
  const cause = error instanceof Error ? (error.cause as unknown) : undefined;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a Metric from the source it names: prometheus → PrometheusSource, reported → ReportedSource. */
export class MetricSources implements MetricSource {
  constructor(private readonly sources: { readonly prometheus?: MetricSource; readonly reported?: MetricSource }) {}

  read(metric: Metric, vm: VMIdentity, signal: AbortSignal): Promise<MetricReading> {
    const kind = metric.prometheus ? 'prometheus' : metric.reported ? 'reported' : undefined;
    if (!kind) return Promise.reject(new MetricError('NotConfigured', 'the metric names neither prometheus nor reported'));
    const source = this.sources[kind];
    if (!source) return Promise.reject(new MetricError('NotConfigured', `no ${kind} metric source is configured in this operator`));
    return source.read(metric, vm, signal);
  }
}

export { substituteIdentity, checkQueryTemplate, QueryTemplateError } from './promql.js';
export { ReportedSource, parseReport, parseReports, ReportError, type Report, type ReportedSourceOptions } from './reported.js';
