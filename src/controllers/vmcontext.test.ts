// The VMContext reconciler ending short of Ready: each kind of the error vocabulary as its condition.
import { describe, expect, it } from 'vitest';
import type { ContextLayer, VMContext, VMContextStatus } from '../crds/index.js';
import { VMNotFoundError } from '../drivers/driver.js';
import { DeviceRemovalPendingError } from '../drivers/libvirt/actions.js';
import { NoFreeDriveError } from '../drivers/libvirt/devices.js';
import { HostUnavailableError } from '../drivers/libvirt/session.js';
import { IsoInputError, IsoLimitError } from '../iso/errors.js';
import { createLogger } from '../runtime/log.js';
import { BlockedError, PendingError, RetryError, TerminalError } from '../runtime/errors.js';
import { OperatorMetrics } from '../runtime/metrics.js';
import { FINALIZER, vmContextReconciler, type VMContextDeps } from './vmcontext.js';

const vmContext: VMContext = {
  apiVersion: 'recontext.dev/v1alpha1',
  kind: 'VMContext',
  metadata: { name: 'vm-1', namespace: 'ns', generation: 1, resourceVersion: '1', finalizers: [FINALIZER] },
  spec: { target: { libvirt: { domain: 'vm-1' } }, layers: [{ name: 'l1' }] },
};
const layer: ContextLayer = {
  apiVersion: 'recontext.dev/v1alpha1',
  kind: 'ContextLayer',
  metadata: { name: 'l1', namespace: 'ns' },
  spec: { class: 'service', files: [{ path: 'a', content: 'x' }] },
};

/** One reconciliation where building an image fails with `image`, or converging with `converge`. */
async function reconcileWith(failure: { image?: Error; converge?: Error }): Promise<{ statuses: VMContextStatus[]; converged: number; thrown: unknown }> {
  const statuses: VMContextStatus[] = [];
  let converged = 0;
  const cache = <T extends { metadata: { name: string; namespace?: string } }>(items: T[]) => ({ get: (key: string) => items.find((i) => `${i.metadata.namespace}/${i.metadata.name}` === key), list: () => items });
  const deps = {
    vmContexts: cache([vmContext]),
    layers: cache([layer]),
    sources: () => ({ configMap: () => undefined, secret: () => undefined }),
    writer: { applyStatus: async (_r: unknown, _c: unknown, status: VMContextStatus) => (statuses.push(status), true), setFinalizers: async () => {} },
    events: { record: () => {} },
    driver: {
      name: 'none',
      attaches: false,
      observe: async () => ({ running: true }),
      converge: async () => {
        converged++;
        if (failure.converge) throw failure.converge;
        return { layers: [], detachMs: 0, attachMs: 0 };
      },
      release: async () => {},
    },
    images: { ensure: async () => (failure.image ? Promise.reject(failure.image) : { digest: 'sha256:00', path: '/x', bytes: 1 }), path: () => '/x' },
    metrics: new OperatorMetrics({ defaultMetrics: false }),
    logger: createLogger({ write: () => {} }),
  } as unknown as VMContextDeps;
  const thrown = await vmContextReconciler(deps)('ns/vm-1', new AbortController().signal).then(
    () => undefined,
    (error: unknown) => error,
  );
  return { statuses, converged, thrown };
}

describe('vmContextReconciler: an image that cannot be built', () => {
  it('InvalidPath (TooLarge for a format limit) as Ready=False and Degraded, terminal: not retried until the layer changes', async () => {
    const invalid = await reconcileWith({ image: new IsoInputError('x/y', 'name has 300 bytes; at most 255') });
    expect(invalid.converged).toBe(0);
    expect(invalid.thrown).toBeInstanceOf(TerminalError);
    const ready = invalid.statuses.at(-1)?.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'InvalidPath' });
    expect(ready?.message).toMatch(/cannot build the image: x\/y: name has 300 bytes/);
    expect(invalid.statuses.at(-1)?.conditions?.find((c) => c.type === 'Degraded')?.status).toBe('True');
    const limit = await reconcileWith({ image: new IsoLimitError(undefined, 'too many directories') });
    expect(limit.statuses.at(-1)?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('TooLarge');
  });

  it('other errors go to the queue as they are, for a retry with backoff and without a condition', async () => {
    const full = await reconcileWith({ image: new Error('disk full') });
    expect(full.thrown).toMatchObject({ message: 'disk full' });
    expect(full.statuses).toEqual([]);
  });
});

describe('vmContextReconciler: driver errors in the one vocabulary', () => {
  const readyOf = (statuses: VMContextStatus[]) => statuses.at(-1)?.conditions?.find((c) => c.type === 'Ready');
  const degradedOf = (statuses: VMContextStatus[]) => statuses.at(-1)?.conditions?.find((c) => c.type === 'Degraded');

  it('each kind becomes its condition and reaches the queue as its kind', async () => {
    const cases = [
      { error: new DeviceRemovalPendingError('sdc', 10_000), kind: PendingError, reason: 'DeviceRemovalPending', degraded: undefined },
      { error: new VMNotFoundError('domain vm-1 is on none of the hosts a, b'), kind: PendingError, reason: 'VMNotFound', degraded: undefined },
      { error: new NoFreeDriveError(1), kind: BlockedError, reason: 'NoFreeDrive', degraded: 'True' },
      { error: new HostUnavailableError('h1', '/run/libvirt.sock', new Error('ECONNREFUSED')), kind: RetryError, reason: 'HostUnavailable', degraded: undefined },
    ];
    for (const { error, kind, reason, degraded } of cases) {
      const run = await reconcileWith({ converge: error });
      expect(run.thrown).toBe(error);
      expect(run.thrown).toBeInstanceOf(kind);
      expect(readyOf(run.statuses)).toMatchObject({ status: 'False', reason, message: error.message });
      expect(degradedOf(run.statuses)?.status).toBe(degraded);
    }
  });

  it('anything else goes to the queue for a retry with backoff, without a condition', async () => {
    const closed = await reconcileWith({ converge: new Error('socket closed') });
    expect(closed.thrown).toMatchObject({ message: 'socket closed' });
    expect(closed.statuses).toEqual([]);
  });
});

describe('vmContextReconciler: the finalizer', () => {
  async function run(object: VMContext, release: boolean): Promise<{ finalizers: (readonly string[])[]; released: number }> {
    const finalizers: (readonly string[])[] = [];
    let released = 0;
    const deps = {
      vmContexts: { get: () => object, list: () => [object] },
      layers: { get: () => layer, list: () => [layer] },
      sources: () => ({ configMap: () => undefined, secret: () => undefined }),
      writer: { applyStatus: async () => true, setFinalizers: async (_r: unknown, _c: unknown, f: readonly string[]) => void finalizers.push(f) },
      events: { record: () => {} },
      driver: { name: 'd', attaches: true, observe: async () => ({ running: true }), converge: async () => ({ layers: [], detachMs: 0, attachMs: 0 }), ...(release ? { release: async () => void released++ } : {}) },
      images: { ensure: async () => ({ path: '/x', bytes: 1 }), path: () => '/x' },
      metrics: new OperatorMetrics({ defaultMetrics: false }),
      logger: createLogger({ write: () => {} }),
    } as unknown as VMContextDeps;
    await vmContextReconciler(deps)('ns/vm-1', new AbortController().signal);
    return { finalizers, released };
  }
  const fresh: VMContext = { ...vmContext, metadata: { ...vmContext.metadata, finalizers: [] } };
  const deleted: VMContext = { ...vmContext, metadata: { ...vmContext.metadata, deletionTimestamp: '2026-11-23T00:00:00Z' } };

  it('is added by a driver that has something to release, not by one that delivers nothing', async () => {
    expect((await run(fresh, true)).finalizers).toEqual([[FINALIZER]]);
    expect((await run(fresh, false)).finalizers).toEqual([]);
  });

  it('on deletion: released, then removed; one left by an earlier driver is removed by a driver without release', async () => {
    expect(await run(deleted, true)).toEqual({ finalizers: [[]], released: 1 });
    expect(await run(deleted, false)).toEqual({ finalizers: [[]], released: 0 });
  });
});
