// Edge cases of the VMContext reconciliation that a real hypervisor makes hard to provoke on
// demand, with a scripted driver (the real thing is in test/integration/standalone.test.ts and
// libvirt-faults.test.ts): how driver failures become status conditions.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../runtime/log.js';
import { OperatorMetrics } from '../runtime/metrics.js';
import { PlatformUnavailableError, type ConvergeResult, type DesiredLayer, type Driver, type ObservedVM, type VMChange } from '../drivers/driver.js';
import { NoFreeDriveError } from '../drivers/libvirt/devices.js';
import { StandaloneOperator } from './operator.js';

const manifests = `apiVersion: recontext.dev/v1alpha1
kind: ContextLayer
metadata: { name: svc }
spec:
  class: service
  files: [{ path: etc/a.conf, content: "a" }]
---
apiVersion: recontext.dev/v1alpha1
kind: VMContext
metadata: { name: vm1 }
spec:
  target: { libvirt: { domain: vm1 } }
  layers: [{ name: svc }]
`;

class ScriptedDriver implements Driver {
  readonly name = 'scripted';
  readonly attaches = true;
  observeError: Error | undefined;
  convergeError: Error | undefined;
  async observe(): Promise<ObservedVM | undefined> {
    if (this.observeError) throw this.observeError;
    return { running: true, node: 'h1', nodeLabels: {} };
  }
  async converge(_target: unknown, desired: readonly DesiredLayer[]): Promise<ConvergeResult> {
    if (this.convergeError) throw this.convergeError;
    return { layers: desired.map((d) => ({ name: d.name, digest: d.digest, device: 'sda' })), detachMs: 0, attachMs: 0 };
  }
  async release(): Promise<void> {}
  listener: ((change: VMChange) => void) | undefined;
  watch(listener: (change: VMChange) => void): () => void {
    this.listener = listener;
    return () => (this.listener = undefined);
  }
}

describe('StandaloneOperator: driver failures as conditions', () => {
  const dirs: string[] = [];
  let operator: StandaloneOperator | undefined;
  afterEach(async () => {
    await operator?.stop();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function run(driver: Driver) {
    const dir = mkdtempSync(join(tmpdir(), 'sa-op-'));
    const state = mkdtempSync(join(tmpdir(), 'sa-op-state-'));
    dirs.push(dir, state);
    writeFileSync(join(dir, 'all.yaml'), manifests);
    operator = new StandaloneOperator({ directory: dir, stateDirectory: state, driver, logger: createLogger({ level: 'error', write: () => {} }), metrics: new OperatorMetrics() });
    await operator.start();
    const ready = async (reason: string) => {
      for (let i = 0; i < 200; i++) {
        const condition = operator!.store.vmContexts.get('default/vm1')?.status?.conditions?.find((c) => c.type === 'Ready');
        if (condition?.reason === reason) return condition;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`Ready never had reason ${reason}: ${JSON.stringify(operator!.store.vmContexts.get('default/vm1')?.status)}`);
    };
    return { operator, ready };
  }

  it('a domain without a free drive is Degraded with what to change, and recovers', async () => {
    const driver = new ScriptedDriver();
    driver.convergeError = new NoFreeDriveError(1);
    const { operator, ready } = await run(driver);
    expect((await ready('NoFreeDrive')).message).toMatch(/add <controller type='scsi' model='virtio-scsi'\/>/);
    expect(operator.store.vmContexts.get('default/vm1')?.status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'NoFreeDrive' });
    // The owner adds drives and restarts the domain; its lifecycle event wakes the reconciliation.
    driver.convergeError = undefined;
    driver.listener?.({ libvirtDomain: 'vm1', reason: 'started' });
    await ready('Converged');
  });

  it('an unreachable host is HostUnavailable, not an error loop', async () => {
    const driver = new ScriptedDriver();
    driver.observeError = new PlatformUnavailableError('libvirt host h1 is unavailable (socket /x): connect ENOENT');
    const { ready } = await run(driver);
    expect((await ready('HostUnavailable')).message).toMatch(/libvirt host h1 is unavailable/);
  });
});
