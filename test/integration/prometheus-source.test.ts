// PrometheusSource against a real Prometheus (Debian's, private to this file) scraping an exporter
// the test controls every second: the reading for each VM, a change seen after the next scrape,
// and each failure a policy must see as such (never a silent 0).
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { MetricError, PrometheusSource, type Metric, type MetricErrorReason, type VMIdentity } from '../../src/metric-sources/index.js';
import { closedPort, prometheusSkipReason, startExporter, startPrometheus, type Exporter, type PrometheusServer } from '../support/prometheus.js';

const GAUGE = 'avg(vm_cpu{name="{{ vm.name }}",namespace="{{ vm.namespace }}"})';
const a: VMIdentity = { name: 'a', namespace: 'ns' };
const b: VMIdentity = { name: 'b', namespace: 'ns' };
/** A name no Kubernetes object can have, published as a label value: escaping must round-trip. */
const weird: VMIdentity = { name: 'we"ird\\', namespace: 'odd' };

/** The query of examples/policies/threshold.yaml, as a user would write it. */
const thresholdQuery = (parse(readFileSync(new URL('../../examples/policies/threshold.yaml', import.meta.url), 'utf8')) as { spec: { metric: Metric } }).spec
  .metric.prometheus!.query;

describe.skipIf(prometheusSkipReason())('PrometheusSource with a real Prometheus', () => {
  let exporter: Exporter;
  let prometheus: PrometheusServer;
  let source: PrometheusSource;
  const signal = new AbortController().signal;
  const gauge = (query = GAUGE): Metric => ({ prometheus: { query } });

  async function failure(metric: Metric, vm: VMIdentity, from: PrometheusSource = source): Promise<{ reason: MetricErrorReason; message: string }> {
    const error = await from.read(metric, vm, signal).then(
      (reading) => new Error(`expected a MetricError, got ${JSON.stringify(reading)}`),
      (e: unknown) => e,
    );
    if (!(error instanceof MetricError)) throw error;
    return { reason: error.reason, message: error.message };
  }

  beforeAll(async () => {
    exporter = await startExporter();
    exporter.set('vm_cpu', { name: 'a', namespace: 'ns' }, 0.25);
    exporter.set('vm_cpu', { name: 'b', namespace: 'ns' }, 0.75);
    exporter.set('vm_cpu', { name: weird.name, namespace: weird.namespace }, 0.5);
    exporter.set('vm_cpu', { name: 'c', namespace: 'nan' }, NaN);
    // Request-duration histograms per VM (label vm, as in threshold.yaml), 10 requests per
    // scrape: all of a's within (0.1, 0.5] s, all of b's within (0.5, 1] s.
    for (const [vm, bucketOf] of [
      ['a', 1],
      ['b', 2],
    ] as const) {
      const bounds = ['0.1', '0.5', '1', '+Inf'];
      bounds.forEach((le, i) => {
        let count = 0;
        exporter.set('http_request_duration_seconds_bucket', { vm, le }, () => (i >= bucketOf ? (count += 10) : 0));
      });
    }
    const started = Date.now();
    prometheus = await startPrometheus({ targets: [exporter.target] });
    await prometheus.waitForSample('vm_cpu{name="b"}');
    console.log(`prometheus: ready after ${prometheus.startMs} ms, first sample after ${Date.now() - started} ms`);
    source = new PrometheusSource({ defaultAddress: prometheus.url, timeoutMs: 5000 });
  });

  afterAll(async () => {
    await prometheus?.stop();
    await exporter?.stop();
  });

  it("reads each VM's own value", async () => {
    await expect(source.read(gauge(), a, signal)).resolves.toMatchObject({ value: 0.25 });
    await expect(source.read(gauge(), b, signal)).resolves.toMatchObject({ value: 0.75 });
    const reading = await source.read(gauge(), a, signal);
    expect(Math.abs(reading.at - Date.now())).toBeLessThan(5000);
  });

  it('reads through the address named in the metric, not only the default', async () => {
    const bare = new PrometheusSource({});
    await expect(bare.read({ prometheus: { query: GAUGE, address: `${prometheus.url}/` } }, b, signal)).resolves.toMatchObject({ value: 0.75 });
  });

  it('evaluates the query of examples/policies/threshold.yaml per VM (p95 of the request durations)', async () => {
    expect(thresholdQuery).toContain('{{ vm.name }}');
    const metric = gauge(thresholdQuery);
    // rate() over [2m] needs two scrapes of the counters.
    await prometheus.waitForSample('count_over_time(http_request_duration_seconds_bucket{vm="b",le="1"}[2m])', (n) => n >= 2);
    const p95a = await source.read(metric, { name: 'a', namespace: 'any' }, signal);
    const p95b = await source.read(metric, { name: 'b', namespace: 'any' }, signal);
    expect(p95a.value).toBeCloseTo(0.1 + 0.4 * 0.95, 6); // below the policy's high (0.8)
    expect(p95b.value).toBeCloseTo(0.5 + 0.5 * 0.95, 6); // at or above it
  });

  it('sees a changed value after the next scrape', async () => {
    const before = exporter.scrapes;
    exporter.set('vm_cpu', { name: 'a', namespace: 'ns' }, 0.9);
    await prometheus.waitForSample('vm_cpu{name="a",namespace="ns"}', (v) => v === 0.9, 10_000);
    // Seen after the scrape that followed the change (two, if one was in flight as it was made).
    expect(exporter.scrapes - before).toBeGreaterThanOrEqual(1);
    expect(exporter.scrapes - before).toBeLessThanOrEqual(2);
    await expect(source.read(gauge(), a, signal)).resolves.toMatchObject({ value: 0.9 });
    await expect(source.read(gauge(), b, signal)).resolves.toMatchObject({ value: 0.75 });
  });

  it('NoData for a VM without series, and once a series is gone', async () => {
    const none = await failure(gauge(), { name: 'nobody', namespace: 'ns' });
    expect(none.reason).toBe('NoData');
    // avg() of nothing is nothing, not 0; so is a bare selector.
    expect((await failure(gauge('vm_cpu{name="{{ vm.name }}"}'), { name: 'nobody', namespace: 'ns' })).reason).toBe('NoData');

    exporter.set('vm_cpu', { name: 'gone', namespace: 'ns' }, 1);
    await prometheus.waitForSample('vm_cpu{name="gone"}');
    exporter.remove('vm_cpu', { name: 'gone', namespace: 'ns' });
    // Prometheus writes a staleness marker at the next scrape: the series ends then, not after 5 minutes.
    const removed = Date.now();
    for (;;) {
      if ((await prometheus.query('vm_cpu{name="gone"}')).length === 0) break;
      if (Date.now() - removed > 10_000) throw new Error('the removed series did not go stale');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await failure(gauge(), { name: 'gone', namespace: 'ns' })).reason).toBe('NoData');
  });

  it('Ambiguous for a query matching both VMs, saying how many and which', async () => {
    const both = await failure(gauge('vm_cpu{namespace="{{ vm.namespace }}"}'), a);
    expect(both.reason).toBe('Ambiguous');
    expect(both.message).toContain('2 series');
    expect(both.message).toContain('name="a"');
    expect(both.message).toContain('name="b"');
  });

  it("QueryError for bad PromQL, with Prometheus' errorType and message", async () => {
    const bad = await failure(gauge('avg(vm_cpu{name="{{ vm.name }}"'), a);
    expect(bad.reason).toBe('QueryError');
    expect(bad.message).toMatch(/^Prometheus rejected the query \(bad_data\): .*parse error/);
    const range = await failure(gauge('vm_cpu{name="{{ vm.name }}",namespace="{{ vm.namespace }}"}[1m]'), a);
    expect(range.reason).toBe('QueryError');
    expect(range.message).toContain('range vector');
  });

  it('NotANumber for a NaN sample', async () => {
    expect((await failure(gauge(), { name: 'c', namespace: 'nan' })).reason).toBe('NotANumber');
    expect((await failure(gauge('1 / (vm_cpu{name="{{ vm.name }}",namespace="{{ vm.namespace }}"} * 0)'), b)).reason).toBe('NotANumber');
  });

  it('Unreachable for a closed port, at once (not after the timeout)', async () => {
    const port = await closedPort();
    const nowhere = new PrometheusSource({ defaultAddress: `http://127.0.0.1:${port}`, timeoutMs: 5000 });
    const started = Date.now();
    const error = await failure(gauge(), a, nowhere);
    expect(error.reason).toBe('Unreachable');
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  describe('an injection attempt in the VM name does not widen the match', () => {
    const attempts = ['a",name=~".+', 'a"} or vm_cpu{name=~".+', '.+', 'a\\', "a'} or vm_cpu{name=~'.+"];
    for (const name of attempts) {
      it(`name ${JSON.stringify(name)} → NoData, not a's value nor Ambiguous`, async () => {
        expect((await failure(gauge(), { name, namespace: 'ns' })).reason).toBe('NoData');
        expect((await failure(gauge("avg(vm_cpu{name='{{ vm.name }}',namespace='{{ vm.namespace }}'})"), { name, namespace: 'ns' })).reason).toBe('NoData');
      });
    }

    it('in a regex matcher, a name is matched literally (.* and a.b match nothing)', async () => {
      const regex = gauge('vm_cpu{name=~"{{ vm.name }}",namespace=~"{{ vm.namespace }}"}');
      await expect(source.read(regex, b, signal)).resolves.toMatchObject({ value: 0.75 });
      expect((await failure(regex, { name: '.*', namespace: 'ns' })).reason).toBe('NoData');
      expect((await failure(regex, { name: 'a|b', namespace: 'ns' })).reason).toBe('NoData');
      expect((await failure(regex, { name: 'b', namespace: 'n.' })).reason).toBe('NoData');
    });

    it('a label value with quotes and backslashes is matched exactly (the escaping round-trips)', async () => {
      await expect(source.read(gauge(), weird, signal)).resolves.toMatchObject({ value: 0.5 });
      await expect(source.read(gauge('vm_cpu{name=~"{{ vm.name }}",namespace="{{ vm.namespace }}"}'), weird, signal)).resolves.toMatchObject({ value: 0.5 });
    });
  });

  it('Unreachable once Prometheus is gone (the last test: it stops the server)', async () => {
    await prometheus.stop();
    expect((await failure(gauge(), a)).reason).toBe('Unreachable');
  });
});
