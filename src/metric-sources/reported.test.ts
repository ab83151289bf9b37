import { describe, expect, it } from 'vitest';
import { MetricError } from './source.js';
import { parseReport, parseReports, ReportedSource, ReportError } from './reported.js';
import { clockReading } from '../runtime/clock.js';

const vm = { name: 'vm-a', namespace: 'ns' };
const metric = { reported: { key: 'queue_wait_seconds' } };
const signal = new AbortController().signal;

describe('ReportedSource', () => {
  it('reads the latest value with its time', async () => {
    let now = 1_000_000;
    const source = new ReportedSource({ clock: clockReading(() => now) });
    source.report(vm, 'queue_wait_seconds', 3);
    now += 1000;
    source.report(vm, 'queue_wait_seconds', 5);
    await expect(source.read(metric, vm, signal)).resolves.toEqual({ at: 1_001_000, value: 5 });
  });

  it('keys by VM and key', async () => {
    const source = new ReportedSource({ clock: clockReading(() => 0) });
    source.report(vm, 'queue_wait_seconds', 1);
    source.report({ ...vm, namespace: 'other' }, 'queue_wait_seconds', 2);
    source.report(vm, 'other_key', 3);
    await expect(source.read(metric, vm, signal)).resolves.toMatchObject({ value: 1 });
    await expect(source.read(metric, { ...vm, namespace: 'other' }, signal)).resolves.toMatchObject({ value: 2 });
  });

  it('ignores a report older than the one held (latest time wins)', async () => {
    const source = new ReportedSource({ clock: clockReading(() => 10_000) });
    expect(source.report(vm, 'queue_wait_seconds', 7, 9_000)).toBe(true);
    expect(source.report(vm, 'queue_wait_seconds', 1, 8_000)).toBe(false);
    await expect(source.read(metric, vm, signal)).resolves.toEqual({ at: 9_000, value: 7 });
  });

  it('nothing reported → NoData; stale → NoData saying so', async () => {
    let now = 0;
    const source = new ReportedSource({ clock: clockReading(() => now), maxAgeMs: 60_000 });
    await expect(source.read(metric, vm, signal)).rejects.toMatchObject({ reason: 'NoData', message: expect.stringContaining('nothing reported for ns/vm-a') });
    source.report(vm, 'queue_wait_seconds', 4);
    now = 60_000;
    await expect(source.read(metric, vm, signal)).resolves.toMatchObject({ value: 4 });
    now = 60_001;
    const error = await source.read(metric, vm, signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MetricError);
    expect(error).toMatchObject({ reason: 'NoData', message: expect.stringMatching(/^stale: .* 60 s ago/) });
  });

  it('defaults to a 5 minute max age', async () => {
    let now = 0;
    const source = new ReportedSource({ clock: clockReading(() => now) });
    source.report(vm, 'queue_wait_seconds', 4);
    now = 5 * 60_000;
    await expect(source.read(metric, vm, signal)).resolves.toMatchObject({ value: 4 });
    now += 1;
    await expect(source.read(metric, vm, signal)).rejects.toMatchObject({ reason: 'NoData' });
  });

  it('forget() drops a deleted VM', async () => {
    const source = new ReportedSource();
    source.report(vm, 'queue_wait_seconds', 1);
    source.forget(vm);
    await expect(source.read(metric, vm, signal)).rejects.toMatchObject({ reason: 'NoData' });
  });

  it('refuses invalid values and keys in report()', () => {
    const source = new ReportedSource();
    expect(() => source.report(vm, 'queue_wait_seconds', NaN)).toThrow(ReportError);
    expect(() => source.report(vm, 'queue_wait_seconds', Infinity)).toThrow(/finite number/);
    expect(() => source.report(vm, '1bad', 1)).toThrow(/key/);
  });

  it('rejects a Prometheus metric and an aborted signal', async () => {
    const source = new ReportedSource();
    await expect(source.read({ prometheus: { query: 'up' } }, vm, signal)).rejects.toMatchObject({ reason: 'NotConfigured' });
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(source.read(metric, vm, controller.signal)).rejects.toThrow('stop');
  });
});

describe('parseReport', () => {
  it('parses a valid body, with and without time', () => {
    expect(parseReport('{"namespace":"ns","name":"vm-a","key":"queue_wait_seconds","value":12.5}')).toEqual({ vm, key: 'queue_wait_seconds', value: 12.5 });
    expect(parseReport({ namespace: 'ns', name: 'vm-a.x', key: 'a.b_c', value: -1, time: '2026-11-23T14:00:00Z' })).toEqual({
      vm: { namespace: 'ns', name: 'vm-a.x' },
      key: 'a.b_c',
      value: -1,
      at: Date.parse('2026-11-23T14:00:00Z'),
    });
    // Standalone mode identifies a VM by its libvirt domain name, which need not be DNS-1123.
    expect(parseReport({ namespace: 'default', name: 'Web_Server 1', key: 'k', value: 1 }).vm.name).toBe('Web_Server 1');
    expect(parseReport({ namespace: 'ns', name: 'vm-a', key: 'k', value: 0, time: '2026-11-23T15:00:00.5+01:00' }).at).toBe(Date.parse('2026-11-23T14:00:00.500Z'));
  });

  const base = { namespace: 'ns', name: 'vm-a', key: 'queue_wait_seconds', value: 1 };
  const invalid: Array<[string, unknown, RegExp]> = [
    ['not JSON', '{nope', /not JSON/],
    ['not an object', '[1]', /JSON object/],
    ['null', 'null', /JSON object/],
    ['a string value', { ...base, value: '1' }, /finite number/],
    ['a null value', { ...base, value: null }, /finite number/],
    ['a missing value', { namespace: 'ns', name: 'vm-a', key: 'k' }, /finite number/],
    ['a huge value (Infinity after parsing)', '{"namespace":"ns","name":"vm-a","key":"k","value":1e999}', /finite number/],
    ['a bad key', { ...base, key: 'with space' }, /key "with space" must match/],
    ['a key starting with a digit', { ...base, key: '9lives' }, /key/],
    ['a too long key', { ...base, key: 'k'.repeat(129) }, /at most 128/],
    ['a missing key', { namespace: 'ns', name: 'vm-a', value: 1 }, /key must be a string/],
    ['an empty name', { ...base, name: '' }, /not a VM name/],
    ['a name with a slash', { ...base, name: 'ns/vm' }, /not a VM name/],
    ['a name with a line break', { ...base, name: 'a\nb' }, /not a VM name/],
    ['a too long name', { ...base, name: 'a'.repeat(254) }, /not a VM name/],
    ['a namespace with a dot', { ...base, namespace: 'a.b' }, /namespace/],
    ['an unknown field', { ...base, extra: 1 }, /unknown field "extra"/],
    ['a bad time', { ...base, time: 'yesterday' }, /RFC 3339/],
    ['a numeric time', { ...base, time: 1700000000 }, /RFC 3339/],
  ];
  for (const [what, input, message] of invalid) {
    it(`refuses ${what}`, () => {
      expect(() => parseReport(input)).toThrow(ReportError);
      expect(() => parseReport(input)).toThrow(message);
    });
  }
});

describe('parseReports', () => {
  it('accepts one object or a list, naming the bad item', () => {
    expect(parseReports('{"namespace":"ns","name":"vm-a","key":"k","value":1}')).toHaveLength(1);
    const list = [
      { namespace: 'ns', name: 'vm-a', key: 'k', value: 1 },
      { namespace: 'ns', name: 'vm-b', key: 'k', value: 2 },
    ];
    expect(parseReports(JSON.stringify(list)).map((r) => r.vm.name)).toEqual(['vm-a', 'vm-b']);
    expect(() => parseReports([list[0], { ...list[1], value: 'x' }])).toThrow(/^item 1: value must be a finite number/);
  });

  it("feeds a ReportedSource, the report's time kept", async () => {
    const source = new ReportedSource({ clock: clockReading(() => Date.parse('2026-11-23T14:01:00Z')) });
    for (const report of parseReports('[{"namespace":"ns","name":"vm-a","key":"queue_wait_seconds","value":9,"time":"2026-11-23T14:00:00Z"}]')) source.apply(report);
    await expect(source.read(metric, vm, signal)).resolves.toEqual({ at: Date.parse('2026-11-23T14:00:00Z'), value: 9 });
  });
});
