import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MetricError, MetricSources, parseQueryResponse, PrometheusSource, queryUrl, type Metric, type MetricErrorReason } from './index.js';
import { clockReading } from '../runtime/clock.js';

const about = { query: 'vm_cpu{name="a"}', address: 'http://prom:9090' };
const ok = (data: unknown): string => JSON.stringify({ status: 'success', data });
const vector = (...series: Array<{ metric: Record<string, string>; value: [number, string] }>): string => ok({ resultType: 'vector', result: series });

function reason(fn: () => unknown): MetricErrorReason {
  try {
    fn();
  } catch (error: unknown) {
    if (error instanceof MetricError) return error.reason;
    throw error;
  }
  throw new Error('no MetricError thrown');
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error: unknown) {
    return error instanceof Error ? error.message : String(error);
  }
  throw new Error('nothing thrown');
}

describe('parseQueryResponse', () => {
  it('one series with a finite value → the reading with its time', () => {
    expect(parseQueryResponse(200, vector({ metric: { name: 'a' }, value: [1700000000.123, '0.75'] }), about)).toEqual({ at: 1700000000123, value: 0.75 });
    expect(parseQueryResponse(200, vector({ metric: {}, value: [1700000000, '-3e2'] }), about)).toEqual({ at: 1700000000000, value: -300 });
  });

  it('a scalar → the reading', () => {
    expect(parseQueryResponse(200, ok({ resultType: 'scalar', result: [1700000000, '42'] }), about)).toEqual({ at: 1700000000000, value: 42 });
  });

  it('no series → NoData, never 0', () => {
    expect(reason(() => parseQueryResponse(200, vector(), about))).toBe('NoData');
    expect(messageOf(() => parseQueryResponse(200, vector(), about))).toContain('vm_cpu{name="a"}');
  });

  it('several series → Ambiguous, with how many and their labels', () => {
    const two = vector({ metric: { __name__: 'vm_cpu', name: 'a', namespace: 'ns' }, value: [1, '1'] }, { metric: { __name__: 'vm_cpu', name: 'b', namespace: 'ns' }, value: [1, '2'] });
    expect(reason(() => parseQueryResponse(200, two, about))).toBe('Ambiguous');
    const message = messageOf(() => parseQueryResponse(200, two, about));
    expect(message).toContain('2 series');
    expect(message).toContain('vm_cpu{name="a",namespace="ns"}');
    expect(message).toContain('vm_cpu{name="b",namespace="ns"}');
    const many = vector(...Array.from({ length: 9 }, (_, i) => ({ metric: { i: String(i) }, value: [1, '1'] as [number, string] })));
    expect(messageOf(() => parseQueryResponse(200, many, about))).toMatch(/9 series.*and 4 more/);
  });

  it('NaN, ±Inf, empty → NotANumber', () => {
    for (const v of ['NaN', '+Inf', '-Inf', 'Inf', '', ' ']) {
      expect(reason(() => parseQueryResponse(200, vector({ metric: {}, value: [1, v] }), about))).toBe('NotANumber');
    }
    expect(reason(() => parseQueryResponse(200, ok({ resultType: 'scalar', result: [1, 'NaN'] }), about))).toBe('NotANumber');
  });

  it('a string result or a native histogram → NotANumber', () => {
    expect(reason(() => parseQueryResponse(200, ok({ resultType: 'string', result: [1, 'hello'] }), about))).toBe('NotANumber');
    const histogram = ok({ resultType: 'vector', result: [{ metric: {}, histogram: [1, { count: '3', sum: '1', buckets: [] }] }] });
    expect(reason(() => parseQueryResponse(200, histogram, about))).toBe('NotANumber');
  });

  it('a range vector → QueryError saying how to fix it', () => {
    const matrix = ok({ resultType: 'matrix', result: [{ metric: {}, values: [[1, '1']] }] });
    expect(reason(() => parseQueryResponse(200, matrix, about))).toBe('QueryError');
    expect(messageOf(() => parseQueryResponse(200, matrix, about))).toMatch(/range vector/);
  });

  it('status error → QueryError with errorType and error', () => {
    const body = JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'invalid parameter "query": 1:8: parse error: unexpected "}"' });
    expect(reason(() => parseQueryResponse(400, body, about))).toBe('QueryError');
    expect(messageOf(() => parseQueryResponse(400, body, about))).toBe('Prometheus rejected the query (bad_data): invalid parameter "query": 1:8: parse error: unexpected "}"');
    const timeout = JSON.stringify({ status: 'error', errorType: 'timeout', error: 'query timed out in expression evaluation' });
    expect(reason(() => parseQueryResponse(503, timeout, about))).toBe('QueryError');
  });

  it('HTTP errors without a Prometheus body → Unreachable', () => {
    expect(reason(() => parseQueryResponse(502, '<html>Bad Gateway</html>', about))).toBe('Unreachable');
    expect(messageOf(() => parseQueryResponse(502, '<html>Bad Gateway</html>', about))).toContain('HTTP 502');
    expect(reason(() => parseQueryResponse(404, '{"message":"not found"}', about))).toBe('Unreachable');
  });

  it('a 200 that is not the Prometheus API → BadResponse', () => {
    expect(reason(() => parseQueryResponse(200, '<html>login</html>', about))).toBe('BadResponse');
    expect(reason(() => parseQueryResponse(200, '{"hello":1}', about))).toBe('BadResponse');
    expect(reason(() => parseQueryResponse(200, ok({ result: [] }), about))).toBe('BadResponse');
    expect(reason(() => parseQueryResponse(200, ok({ resultType: 'vector', result: {} }), about))).toBe('BadResponse');
    expect(reason(() => parseQueryResponse(200, ok({ resultType: 'vector', result: [{ metric: {}, value: [1, 2] }] }), about))).toBe('BadResponse');
    expect(reason(() => parseQueryResponse(200, ok({ resultType: 'exotic', result: [] }), about))).toBe('BadResponse');
  });
});

describe('queryUrl', () => {
  it('builds the instant query under a path prefix, keeping the address query string', () => {
    const { url, headers, shown } = queryUrl('http://prom.example:9090/prometheus/', 'up{a="b"}', 1700000000123, 10_000);
    expect(url.origin + url.pathname).toBe('http://prom.example:9090/prometheus/api/v1/query');
    expect(url.searchParams.get('query')).toBe('up{a="b"}');
    expect(url.searchParams.get('time')).toBe('1700000000.123');
    expect(url.searchParams.get('timeout')).toBe('10s');
    expect(headers).toEqual({});
    expect(shown).toBe('http://prom.example:9090/prometheus');
  });

  it('moves credentials into a Basic header and never shows them', () => {
    const { url, headers, shown } = queryUrl('https://alice:s%3Acret@prom.example/?tenant=t1', 'up', 0, 1000);
    expect(url.username).toBe('');
    expect(url.password).toBe('');
    expect(url.searchParams.get('tenant')).toBe('t1');
    expect(headers['authorization']).toBe(`Basic ${Buffer.from('alice:s:cret').toString('base64')}`);
    expect(shown).toBe('https://prom.example');
    expect(shown).not.toContain('cret');
  });

  it('refuses what is not an http(s) URL', () => {
    expect(reason(() => queryUrl('prom:9090', 'up', 0, 1000))).toBe('NotConfigured');
    expect(reason(() => queryUrl('not a url', 'up', 0, 1000))).toBe('NotConfigured');
  });
});

describe('PrometheusSource (with a fetch stand-in; the real server is in test/integration/prometheus-source.test.ts)', () => {
  const metric: Metric = { prometheus: { query: 'vm_cpu{name="{{ vm.name }}",namespace="{{ vm.namespace }}"}' } };
  const vm = { name: 'a', namespace: 'ns' };

  it('sends the substituted query to the metric address, else the default address', async () => {
    const seen: string[] = [];
    const fetch = (async (input: string | URL | Request) => {
      seen.push(String(input));
      return new Response(vector({ metric: {}, value: [1700000000, '0.5'] }));
    }) as typeof globalThis.fetch;
    const source = new PrometheusSource({ defaultAddress: 'http://default:9090', fetch, clock: clockReading(() => 1700000000000) });
    await expect(source.read(metric, vm, new AbortController().signal)).resolves.toEqual({ at: 1700000000000, value: 0.5 });
    await source.read({ prometheus: { ...metric.prometheus!, address: 'http://other:9090' } }, vm, new AbortController().signal);
    expect(new URL(seen[0]!).host).toBe('default:9090');
    expect(new URL(seen[0]!).searchParams.get('query')).toBe('vm_cpu{name="a",namespace="ns"}');
    expect(new URL(seen[1]!).host).toBe('other:9090');
  });

  it('NotConfigured without an address; InvalidQuery for a bad template', async () => {
    const source = new PrometheusSource({ fetch: (() => Promise.reject(new Error('not called'))) as typeof fetch });
    await expect(source.read(metric, vm, new AbortController().signal)).rejects.toMatchObject({ reason: 'NotConfigured' });
    await expect(
      source.read({ prometheus: { query: 'x{{ vm.name }}', address: 'http://p' } }, vm, new AbortController().signal),
    ).rejects.toMatchObject({ reason: 'InvalidQuery' });
    await expect(source.read({ reported: { key: 'k' } }, vm, new AbortController().signal)).rejects.toMatchObject({ reason: 'NotConfigured' });
  });

  it('a slow server → Timeout; the caller aborting → its abort reason, not a MetricError', async () => {
    const hang = ((_: unknown, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)))) as typeof fetch;
    const slow = new PrometheusSource({ defaultAddress: 'http://p', fetch: hang, timeoutMs: 50 });
    await expect(slow.read(metric, vm, new AbortController().signal)).rejects.toMatchObject({ reason: 'Timeout' });

    const patient = new PrometheusSource({ defaultAddress: 'http://p', fetch: hang, timeoutMs: 60_000 });
    const controller = new AbortController();
    const reading = patient.read(metric, vm, controller.signal);
    const why = new Error('controller shutting down');
    controller.abort(why);
    await expect(reading).rejects.toBe(why);
    await expect(patient.read(metric, vm, controller.signal)).rejects.toBe(why);
  });

  it('connection errors → Unreachable, without the credentials of the address', async () => {
    const port = await closedPort();
    const source = new PrometheusSource({ defaultAddress: `http://bob:hunter2@127.0.0.1:${port}` });
    const error = await source.read(metric, vm, new AbortController().signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MetricError);
    expect((error as MetricError).reason).toBe('Unreachable');
    expect((error as MetricError).transient).toBe(true);
    expect((error as MetricError).message).toContain(`http://127.0.0.1:${port}`);
    expect((error as MetricError).message).toContain('ECONNREFUSED');
    expect((error as MetricError).message).not.toContain('hunter2');
  });
});

describe('MetricSources', () => {
  it('dispatches by the kind of metric and says when a kind has no source', async () => {
    const reading = { at: 1, value: 2 };
    const prometheus = { read: () => Promise.resolve(reading) };
    const sources = new MetricSources({ prometheus });
    const signal = new AbortController().signal;
    await expect(sources.read({ prometheus: { query: 'up' } }, { name: 'a', namespace: 'b' }, signal)).resolves.toBe(reading);
    await expect(sources.read({ reported: { key: 'k' } }, { name: 'a', namespace: 'b' }, signal)).rejects.toMatchObject({ reason: 'NotConfigured' });
  });
});

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}
