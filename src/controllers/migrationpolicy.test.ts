// The MigrationPolicy controller with in-memory ports: the policy engine decides (real), the
// metric source, the driver and the object store are small fakes, so timing and guard rails can
// be driven sample by sample. The real Prometheus, API server and live migrations are in
// test/integration/migrationpolicy*.test.ts.
import { describe, expect, it } from 'vitest';
import type { MigrationPolicy, VMContext } from '../crds/index.js';
import { MigrationImpossibleError, type Driver, type MigrationRequest, type ObservedVM } from '../drivers/driver.js';
import { MetricError, type Metric, type MetricSource, type VMIdentity } from '../metric-sources/index.js';
import { createLogger } from '../runtime/log.js';
import { OperatorMetrics } from '../runtime/metrics.js';
import { memoryFromDecisions, migrationPolicyReconciler, recordDecision } from './migrationpolicy.js';
import type { Cache, ObjectWriter } from './ports.js';
import { clockReading } from '../runtime/clock.js';

const ZONE = 'topology.kubernetes.io/zone';

function policy(overrides: Partial<MigrationPolicy['spec']> = {}): MigrationPolicy {
  return {
    apiVersion: 'recontext.dev/v1alpha1',
    kind: 'MigrationPolicy',
    metadata: { name: 'cpu', namespace: 'ns', generation: 1 },
    spec: {
      type: 'Threshold',
      vmSelector: { matchLabels: { app: 'web' } },
      metric: { prometheus: { query: 'cpu{vm="{{ vm.name }}"}' } },
      sampleInterval: '10s',
      high: 0.8,
      highFor: 3,
      arrays: [
        { name: 'a', nodeSelector: { [ZONE]: 'zone-a' }, cost: 1 },
        { name: 'b', nodeSelector: { [ZONE]: 'zone-b' }, cost: 1 },
      ],
      cooldown: '5m',
      maxMigrationsPerHour: 4,
      dryRun: false,
      ...overrides,
    },
  } as MigrationPolicy;
}

const vm = { apiVersion: 'recontext.dev/v1alpha1', kind: 'VMContext', metadata: { name: 'web-1', namespace: 'ns', labels: { app: 'web' } }, spec: { target: { libvirt: { domain: 'web-1' } }, layers: [] } } as unknown as VMContext;

function harness(options: { values: (number | MetricError)[]; policy?: MigrationPolicy; impossible?: boolean }) {
  let clock = Date.parse('2026-11-23T12:00:00Z');
  let stored = options.policy ?? policy();
  let node = 'zone-a';
  const migrations: MigrationRequest[] = [];
  const cache = <T>(get: () => T[]): Cache<T> => ({ get: (key) => get().find((o) => `${(o as { metadata: { namespace: string; name: string } }).metadata.namespace}/${(o as { metadata: { name: string } }).metadata.name}` === key), list: get });
  const writer: ObjectWriter = {
    async applyStatus(_resource, _current, status) {
      stored = { ...stored, status: status as MigrationPolicy['status'] };
      return true;
    },
    async setFinalizers() {},
  };
  const source: MetricSource = {
    async read(_metric: Metric, _vm: VMIdentity) {
      const next = options.values.shift();
      if (next === undefined) throw new MetricError('NoData', 'no more values');
      if (next instanceof MetricError) throw next;
      return { at: clock, value: next };
    },
  };
  const driver: Driver = {
    name: 'fake',
    attaches: true,
    async observe(): Promise<ObservedVM> {
      return { running: true, node, nodeLabels: { [ZONE]: node } };
    },
    async converge() {
      return { layers: [], detachMs: 0, attachMs: 0 };
    },
    async release() {},
    async migrate(_target, request) {
      if (options.impossible) throw new MigrationImpossibleError('NoTargetNode', 'no host has the labels');
      migrations.push(request);
      node = request.nodeSelector[ZONE]!;
      return { id: `m${migrations.length}`, state: 'Succeeded', node };
    },
  };
  const events: string[] = [];
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const reconcile = migrationPolicyReconciler({
    policies: cache(() => [stored]),
    vmContexts: cache(() => [vm]),
    writer,
    events: { record: (_r, type, reason, note) => void events.push(`${type} ${reason}: ${note}`) },
    driver,
    source,
    metrics,
    logger: createLogger({ write: () => {} }),
    clock: clockReading(() => clock),
  });
  return {
    migrations,
    events,
    metrics,
    get policy() {
      return stored;
    },
    /** A pass without moving the clock (another event, before any sample is due). */
    async reconcileNow(): Promise<void> {
      await reconcile('ns/cpu', new AbortController().signal);
    },
    /** One pass; then the clock moves to when the controller asked to be woken. */
    async tick(): Promise<number | undefined> {
      const result = await reconcile('ns/cpu', new AbortController().signal);
      const after = result ? result.requeueAfterMs : undefined;
      if (after !== undefined) clock += after;
      return after;
    },
  };
}

describe('MigrationPolicy controller', () => {
  it('samples every interval and migrates after highFor samples at or above high, once', async () => {
    const h = harness({ values: [0.5, 0.9, 0.9, 0.9, 0.95, 0.95, 0.95] });
    const waits: (number | undefined)[] = [];
    for (let i = 0; i < 7; i++) waits.push(await h.tick());
    expect(waits.every((w) => w === 10_000)).toBe(true);
    expect(h.migrations).toEqual([{ nodeSelector: { [ZONE]: 'zone-b' }, requester: 'ns/cpu' }]);
    const decisions = h.policy.status?.decisions ?? [];
    expect(decisions[0]).toMatchObject({ vm: 'web-1', from: 'b', result: 'Skipped' }); // then cooldown holds the next wish
    expect(decisions.find((d) => d.result === 'Succeeded')).toMatchObject({ vm: 'web-1', from: 'a', to: 'b', value: 0.9 });
    expect(h.events.filter((e) => e.includes('MigrationRequested'))).toHaveLength(1);
    expect(h.policy.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Active' });
  });

  it('dryRun records the decision and moves nothing', async () => {
    const h = harness({ values: [0.9, 0.9, 0.9], policy: policy({ dryRun: true }) });
    for (let i = 0; i < 3; i++) await h.tick();
    expect(h.migrations).toEqual([]);
    expect(h.policy.status?.decisions?.[0]).toMatchObject({ result: 'DryRun', to: 'b' });
    expect(h.policy.status?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('DryRun');
  });

  it('a metric it cannot read is a condition, not a decision', async () => {
    const h = harness({ values: [new MetricError('Unreachable', 'connect ECONNREFUSED 127.0.0.1:9')] });
    await h.reconcileNow();
    expect(h.policy.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'MetricUnavailable' });
    expect(h.policy.status?.conditions?.find((c) => c.type === 'Ready')?.message).toMatch(/web-1: .*ECONNREFUSED/);
    expect(h.policy.status?.decisions).toBeUndefined();
    // Another event reconciles before the next sample is due: the condition stays.
    await h.reconcileNow();
    expect(h.policy.status?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('MetricUnavailable');
  });

  it('Schedule outside its working hours sends the VM to base without reading the metric (found on the real cluster: an unreadable metric kept it away)', async () => {
    // 2026-11-23 is a Monday; the only window is on Wednesday.
    const offHours = policy({ type: 'Schedule', metric: { reported: { key: 'queue' } }, high: 30, highFor: 3, low: 2, lowFor: 3, base: 'b', schedule: { timeZone: 'UTC', windows: [{ days: ['Wed'], start: '12:00', end: '12:01' }] } });
    const h = harness({ values: [new MetricError('Unreachable', 'no reported metric source is configured')], policy: offHours });
    await h.tick();
    expect(h.migrations).toEqual([{ nodeSelector: { [ZONE]: 'zone-b' }, requester: 'ns/cpu' }]);
    expect(h.policy.status?.decisions?.[0]).toMatchObject({ vm: 'web-1', from: 'a', to: 'b', result: 'Succeeded' });
    expect(h.policy.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
  });

  it('an impossible migration is a condition and one recorded decision, not a loop of them', async () => {
    const h = harness({ values: [0.9, 0.9, 0.9, 0.9, 0.9], impossible: true });
    for (let i = 0; i < 5; i++) await h.tick();
    expect(h.policy.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'MigrationImpossible' });
    expect(h.policy.status?.decisions?.filter((d) => d.reason.startsWith('impossible'))).toHaveLength(1);
  });

  it('keeps decisions newest first, bounded, without repeats; rebuilds the guard rails from them', () => {
    let decisions = recordDecision([], { time: '2026-11-23T12:00:00Z', vm: 'v', reason: 'r', from: 'a', to: 'b', result: 'Skipped' });
    decisions = recordDecision(decisions, { time: '2026-11-23T12:00:10Z', vm: 'v', reason: 'r2', from: 'a', to: 'b', result: 'Skipped' });
    expect(decisions).toHaveLength(1);
    for (let i = 0; i < 60; i++) decisions = recordDecision(decisions, { time: `2026-11-23T13:${String(i).padStart(2, '0')}:00Z`, vm: 'v', reason: 'r', to: 'b', result: 'Succeeded' });
    expect(decisions).toHaveLength(50);
    expect(decisions[0]?.time).toBe('2026-11-23T13:59:00Z');
    expect(memoryFromDecisions(decisions, 'v').migrations.at(-1)).toBe(Date.parse('2026-11-23T13:59:00Z'));
  });
});
