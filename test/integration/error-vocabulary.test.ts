// The one error vocabulary at the reconciler, on a real API server: the operator reconciles four
// VMContexts whose driver answers (or whose layer renders) with one kind each — pending, blocked,
// retry, terminal — and each shows its condition and event, and its queue behaviour in how often
// the operator comes back. The driver is scripted: the kinds' meaning is the subject here (the
// real drivers' errors are tested with the drivers).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterOperator } from '../../src/controllers/cluster-operator.js';
import { ConvergePendingError, PlatformUnavailableError, VMConfigurationError, type DesiredLayer, type Driver, type VMChange, type VMTarget } from '../../src/drivers/driver.js';
import { KubeClient } from '../../src/kube/client.js';
import { createLogger } from '../../src/runtime/log.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { controlPlaneSkipReason, installCrds, useControlPlane, type SharedControlPlane } from '../controlplane/shared.js';
import { getVMContext, strict, until } from './scenario.js';

const NS = 'error-vocabulary';
/** The pending and blocked delays of this test (production: 5 s and 60 s). */
const PENDING_MS = 300;
const BLOCKED_MS = 600;

/** Converge answers by VMContext name; every call is timed. */
class ScriptedDriver implements Driver {
  readonly name = 'scripted';
  readonly attaches = true;
  readonly calls = new Map<string, number[]>();
  #healed = false;
  #listener: ((change: VMChange) => void) | undefined;

  watch(listener: (change: VMChange) => void) {
    this.#listener = listener;
    return () => void (this.#listener = undefined);
  }

  /** The platform is back: as a libvirt reconnect does, say every VM may have changed. */
  heal(): void {
    this.#healed = true;
    this.#listener?.({ all: true, reason: 'reconnected' });
  }

  async observe(target: VMTarget) {
    this.#call(`observe ${target.vmContext}`);
    return { running: true, node: 'node-a', nodeLabels: {} };
  }

  async converge(target: VMTarget, desired: readonly DesiredLayer[]) {
    this.#call(target.vmContext);
    if (!this.#healed) {
      if (target.vmContext === 'pending') throw new ConvergePendingError('ImportInProgress', 'importing: 42%', PENDING_MS);
      if (target.vmContext === 'blocked') throw new VMConfigurationError('NoFreeDrive', 'the domain needs 1 more empty CD-ROM drive', BLOCKED_MS);
      if (target.vmContext === 'retry') throw new PlatformUnavailableError('libvirt host h1 is unavailable (socket /run/x): connect ECONNREFUSED');
    }
    return { layers: desired.map((d) => ({ name: d.name, digest: d.digest, device: 'sdc' })), detachMs: 0, attachMs: 0 };
  }

  #call(what: string): void {
    this.calls.set(what, [...(this.calls.get(what) ?? []), performance.now()]);
  }
}

const gaps = (times: readonly number[]) => times.slice(1).map((t, i) => t - times[i]!);

/** Past the first look (its own status write brings it back once at once): every wait is the delay, none grows. */
function expectSteady(waits: readonly number[], delayMs: number): void {
  for (const wait of waits.slice(1)) {
    expect(wait).toBeGreaterThan(delayMs - 20);
    expect(wait).toBeLessThan(delayMs * 3); // generous for a loaded machine; a backoff would double
  }
}

describe.skipIf(controlPlaneSkipReason())('the error vocabulary at the VMContext reconciler, on a real API server', () => {
  let plane: SharedControlPlane;
  let operator: ClusterOperator;
  let client: KubeClient;
  let kubectl: ReturnType<typeof strict>;
  const driver = new ScriptedDriver();
  const metrics = new OperatorMetrics({ defaultMetrics: false });

  const layer = (template: string) => `apiVersion: recontext.dev/v1alpha1\nkind: ContextLayer\nmetadata:\n  name: base\nspec:\n  class: service\n  files:\n    - path: a.conf\n      template: true\n      content: ${JSON.stringify(template)}\n`;
  const vmContext = (name: string) => `apiVersion: recontext.dev/v1alpha1\nkind: VMContext\nmetadata:\n  name: ${name}\nspec:\n  target:\n    libvirt:\n      domain: ${name}\n  layers:\n    - name: base\n`;
  const ready = async (name: string) => (await getVMContext(client, NS, name)).status?.conditions?.find((c) => c.type === 'Ready');
  const degraded = async (name: string) => (await getVMContext(client, NS, name)).status?.conditions?.find((c) => c.type === 'Degraded')?.status;
  const eventsOf = async (name: string) =>
    (await kubectl(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={range .items[*]}{.type} {.reason}{"\\n"}{end}'])).trim().split('\n');

  beforeAll(async () => {
    plane = await useControlPlane();
    kubectl = strict(plane.kubectl);
    await installCrds(plane);
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['apply', '-n', NS, '-f', '-'], layer('x'));
    // The terminal one gets its own layer, broken: a template reading a value nobody sets.
    await kubectl(['apply', '-n', NS, '-f', '-'], layer('{{ values.unset }}').replace('name: base', 'name: broken'));
    for (const name of ['pending', 'blocked', 'retry']) await kubectl(['apply', '-n', NS, '-f', '-'], vmContext(name));
    await kubectl(['apply', '-n', NS, '-f', '-'], vmContext('terminal').replace('- name: base', '- name: broken'));
    client = KubeClient.fromKubeconfig(plane.kubeconfigPath);
    operator = new ClusterOperator({ client, driver, logger: createLogger({ write: () => {} }), metrics, imageDirectory: mkdtempSync(join(tmpdir(), 'vocabulary-images-')), namespace: NS, leaderElection: false });
    await operator.start();
    // Let every kind show its queue behaviour for a while.
    await until('every VMContext reports', async () => ((await Promise.all(['pending', 'blocked', 'retry', 'terminal'].map(ready))).every(Boolean) ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 3_000));
  });

  afterAll(async () => {
    await operator?.stop();
  });

  it('pending: Ready=False with the reason, a Normal event, not Degraded; again at the same short delay each time', async () => {
    expect(await ready('pending')).toMatchObject({ status: 'False', reason: 'ImportInProgress', message: 'importing: 42%' });
    expect(await degraded('pending')).toBeUndefined();
    expect(await eventsOf('pending')).toEqual(['Normal ImportInProgress']);
    const times = driver.calls.get('pending')!;
    expect(times.length).toBeGreaterThanOrEqual(6); // 3 s at 300 ms
    expectSteady(gaps(times), PENDING_MS);
  });

  it('blocked: Ready=False with the reason, Degraded, a Warning event; again at its (longer) fixed delay', async () => {
    expect(await ready('blocked')).toMatchObject({ status: 'False', reason: 'NoFreeDrive', message: 'the domain needs 1 more empty CD-ROM drive' });
    expect(await degraded('blocked')).toBe('True');
    expect(await eventsOf('blocked')).toEqual(['Warning NoFreeDrive']);
    const times = driver.calls.get('blocked')!;
    expect(times.length).toBeGreaterThanOrEqual(4);
    expectSteady(gaps(times), BLOCKED_MS);
  });

  it('retry: Ready=False with the reason, a Warning event, not Degraded; again with a growing backoff', async () => {
    expect(await ready('retry')).toMatchObject({ status: 'False', reason: 'HostUnavailable' });
    expect(await degraded('retry')).toBeUndefined();
    expect(await eventsOf('retry')).toEqual(['Warning HostUnavailable']);
    const waits = gaps(driver.calls.get('retry')!);
    // 5 ms doubling: ~10 tries in 3 s, the last waits far longer than the first.
    expect(waits.length).toBeGreaterThanOrEqual(6);
    expect(waits.at(-1)!).toBeGreaterThan(8 * waits[0]!);
    expect(waits.at(-1)!).toBeGreaterThan(300);
  });

  it('terminal: Ready=False with the reason, Degraded, a Warning event; not looked at again until the object changes', async () => {
    expect(await ready('terminal')).toMatchObject({ status: 'False', reason: 'TemplateError' });
    expect(await degraded('terminal')).toBe('True');
    expect(await eventsOf('terminal')).toEqual(['Warning TemplateError']);
    const before = driver.calls.get('observe terminal')!.length;
    // (Our own status write is a change too: at most one look after it.)
    expect(before).toBeLessThanOrEqual(3);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(driver.calls.get('observe terminal')!.length).toBe(before);
    // Fixing what it refers to brings it back, and it converges.
    await kubectl(['apply', '-n', NS, '-f', '-'], layer('fixed').replace('name: base', 'name: broken'));
    await until('terminal Ready', async () => ((await ready('terminal'))?.status === 'True' ? true : undefined));
  });

  it('counts each kind under its own result in recontext_controller_reconcile_total', async () => {
    const results = Object.fromEntries((await metrics.reconcileTotal.get()).values.filter((v) => v.labels.controller === 'vmcontext').map((v) => [v.labels.result, v.value]));
    expect(results).toMatchObject({ pending: expect.any(Number), blocked: expect.any(Number), error: expect.any(Number), terminal: expect.any(Number) });
  });

  it('each recovers once the platform does (the retry one woken by the reconnect, not its backoff)', async () => {
    driver.heal();
    await until('all Ready', async () => ((await Promise.all(['pending', 'blocked', 'retry'].map(ready))).every((c) => c?.status === 'True') ? true : undefined), 10_000);
  });
});
