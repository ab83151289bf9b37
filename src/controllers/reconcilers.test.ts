// Which changes reach which queue: updates that changed only the status (the operator's own
// writes) must enqueue nothing, or every status write of N VMContexts fans out again (bench/scale).
import { describe, expect, it } from 'vitest';
import type { ContextLayer, VMContext } from '../crds/index.js';
import { createLogger } from '../runtime/log.js';
import { OperatorMetrics } from '../runtime/metrics.js';
import { layerNeedsReconcile, Reconcilers, vmContextNeedsReconcile, type ReconcilerDeps } from './reconcilers.js';
import { FINALIZER } from './vmcontext.js';

const vm = (patch: Partial<VMContext['metadata']> = {}, status?: object): VMContext =>
  ({
    apiVersion: 'recontext.dev/v1alpha1',
    kind: 'VMContext',
    metadata: { name: 'vm-1', namespace: 'ns', generation: 1, resourceVersion: '1', labels: { app: 'a' }, ...patch },
    spec: { target: { kubevirt: { name: 'vm-1' } }, layers: [{ name: 'l1' }] },
    ...(status ? { status } : {}),
  }) as VMContext;

const layer = (name: string, patch: Partial<ContextLayer['metadata']> = {}, status?: object): ContextLayer =>
  ({
    apiVersion: 'recontext.dev/v1alpha1',
    kind: 'ContextLayer',
    metadata: { name, namespace: 'ns', generation: 1, resourceVersion: '1', ...patch },
    spec: { class: 'service', files: [{ path: 'a', content: 'x' }] },
    ...(status ? { status } : {}),
  }) as ContextLayer;

function reconcilers(vms: VMContext[], layers: ContextLayer[]) {
  const cache = <T extends { metadata: { name: string; namespace?: string } }>(items: T[]) => ({
    get: (key: string) => items.find((i) => `${i.metadata.namespace}/${i.metadata.name}` === key),
    list: () => items,
  });
  const deps = {
    vmContexts: cache(vms),
    layers: cache(layers),
    sources: () => ({ configMap: () => undefined, secret: () => undefined }),
    writer: { applyStatus: async () => false, setFinalizers: async () => {} },
    events: { record: () => {} },
    driver: {},
    images: {},
    metrics: new OperatorMetrics({ defaultMetrics: false }),
    logger: createLogger({ write: () => {} }),
  } as unknown as ReconcilerDeps;
  const r = new Reconcilers(deps);
  const queued = { vmcontext: [] as string[], contextlayer: [] as string[] };
  r.vmContext.enqueue = (key) => void queued.vmcontext.push(key);
  r.contextLayer.enqueue = (key) => void queued.contextlayer.push(key);
  return { r, queued };
}

describe('Reconcilers routing', () => {
  it('a status-only update of a VMContext enqueues nothing; add, resync and spec changes do', () => {
    const before = vm();
    const { r, queued } = reconcilers([before], [layer('l1'), layer('l2'), layer('other', { namespace: 'ns2' })]);
    r.vmContextChanged(before); // add or resync: no previous
    expect(queued).toEqual({ vmcontext: ['ns/vm-1'], contextlayer: ['ns/l1', 'ns/l2'] });
    r.vmContextChanged(vm({ resourceVersion: '2' }, { conditions: [{ type: 'Ready', status: 'True' }] }), before);
    expect(queued.vmcontext).toHaveLength(1);
    expect(queued.contextlayer).toHaveLength(2);
    // A spec change (generation) reconciles the VM; the layers only when what selects them changed.
    r.vmContextChanged(vm({ resourceVersion: '3', generation: 2 }), before);
    expect(queued).toEqual({ vmcontext: ['ns/vm-1', 'ns/vm-1'], contextlayer: ['ns/l1', 'ns/l2'] });
    r.vmContextChanged(vm({ resourceVersion: '4', labels: { app: 'b' } }), before);
    expect(queued.vmcontext).toHaveLength(3);
    expect(queued.contextlayer).toEqual(['ns/l1', 'ns/l2', 'ns/l1', 'ns/l2']);
  });

  it('a status-only update of a layer enqueues neither it nor its VMs; a spec change enqueues both', () => {
    const before = layer('l1');
    const { r, queued } = reconcilers([vm()], [before]);
    r.layerChanged(layer('l1', { resourceVersion: '2' }, { renderedFor: 1 }), before);
    expect(queued).toEqual({ vmcontext: [], contextlayer: [] });
    r.layerChanged({ ...layer('l1', { resourceVersion: '3', generation: 2 }), spec: { class: 'service', files: [{ path: 'a', content: 'y' }] } } as ContextLayer, before);
    expect(queued).toEqual({ vmcontext: ['ns/vm-1'], contextlayer: ['ns/l1'] });
    r.layerChanged(before); // no previous: add, delete, resync
    expect(queued).toEqual({ vmcontext: ['ns/vm-1', 'ns/vm-1'], contextlayer: ['ns/l1', 'ns/l1'] });
  });

  it('our finalizer being added is our own write; its removal, deletion and others\' finalizers are not', () => {
    const plain = vm();
    const ours = vm({ finalizers: [FINALIZER] });
    expect(vmContextNeedsReconcile(plain, ours)).toBe(false);
    expect(vmContextNeedsReconcile(ours, plain)).toBe(true);
    expect(vmContextNeedsReconcile(ours, vm({ finalizers: [FINALIZER, 'example.com/other'] }))).toBe(true);
    expect(vmContextNeedsReconcile(ours, vm({ finalizers: [FINALIZER], deletionTimestamp: '2026-01-01T00:00:00Z' }))).toBe(true);
    expect(vmContextNeedsReconcile(ours, vm({ finalizers: [FINALIZER], annotations: { a: 'b' } }))).toBe(true);
    expect(vmContextNeedsReconcile(plain, vm({}, { node: 'n1' }))).toBe(false);
    expect(layerNeedsReconcile(layer('l'), layer('l', { labels: { x: 'y' } }))).toBe(true);
    expect(layerNeedsReconcile(layer('l'), layer('l', { resourceVersion: '9' }, { renderedFor: 3 }))).toBe(false);
  });
});
