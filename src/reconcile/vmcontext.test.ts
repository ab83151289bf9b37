import { describe, expect, it } from 'vitest';
import type { ContextLayer, VMContext } from '../crds/index.js';
import { planVMContext, vmContextStatus, type Converge } from './vmcontext.js';

const noSources = { configMap: () => undefined, secret: () => undefined };
const layer = (name: string, spec: ContextLayer['spec']): ContextLayer => ({ apiVersion: 'recontext.dev/v1alpha1', kind: 'ContextLayer', metadata: { name, namespace: 'ns' }, spec });
const svc = layer('svc', { class: 'service', files: [{ path: 'a', content: 'x' }] });
const cache = layer('cache', {
  class: 'infrastructure',
  variants: [
    { name: 'a', nodeSelector: { zone: 'a' }, values: { host: 'ca' } },
    { name: 'b', nodeSelector: { zone: 'b' }, values: { host: 'cb' } },
  ],
  files: [{ path: 'c', template: true, content: '{{ values.host }}' }],
});
const ctx = (status?: VMContext['status'], recontextOn?: VMContext['spec']['recontextOn']): VMContext => ({
  apiVersion: 'recontext.dev/v1alpha1',
  kind: 'VMContext',
  metadata: { name: 'vm1', namespace: 'ns', generation: 3 },
  spec: { target: { kubevirt: { name: 'vm1' } }, layers: [{ name: 'svc' }, { name: 'cache' }], ...(recontextOn ? { recontextOn } : {}) },
  ...(status ? { status } : {}),
});
const nodeA = { name: 'n-a', labels: { zone: 'a' } };
const nodeB = { name: 'n-b', labels: { zone: 'b' } };
const now = new Date('2026-11-23T10:00:00Z');

function converged(plan: ReturnType<typeof planVMContext>): Converge {
  expect(plan.kind).toBe('converge');
  return plan as Converge;
}

function statusAfter(vmContext: VMContext, node: typeof nodeA, observed = { running: true, node: node.name }) {
  const plan = converged(planVMContext({ vmContext, layers: [svc, cache], sources: noSources, observed, node }));
  return vmContextStatus({
    vmContext,
    vmDisplay: 'ns/vm1',
    plan,
    attached: plan.layers.map((l) => ({ name: l.name, digest: l.digest, device: `sd-${l.name}`, attachedAt: '2026-11-23T10:00:00Z' })),
    timing: { startedAt: now, resolveMs: 1, detachMs: 2, buildMs: 3, attachMs: 4 },
    observed,
    attaches: true,
    now,
  });
}

describe('planVMContext', () => {
  it('renders every layer for the node, highest priority first, on first sight (Initial)', () => {
    const plan = converged(planVMContext({ vmContext: ctx(), layers: [svc, cache], sources: noSources, observed: { running: true, node: 'n-a' }, node: nodeA }));
    expect(plan.trigger).toBe('Initial');
    expect(plan.layers.map((l) => l.name)).toEqual(['cache', 'svc']);
    expect(plan.layers[0]!.rendered?.files[0]?.content.toString()).toBe('ca');
  });

  it('is quiet when nothing changed, and names the trigger when something did', () => {
    const first = statusAfter(ctx(), nodeA);
    const same = converged(planVMContext({ vmContext: ctx(first), layers: [svc, cache], sources: noSources, observed: { running: true, node: 'n-a' }, node: nodeA }));
    expect(same.trigger).toBeUndefined();
    const moved = converged(planVMContext({ vmContext: ctx(first), layers: [svc, cache], sources: noSources, observed: { running: true, node: 'n-b' }, node: nodeB }));
    expect(moved.trigger).toBe('NodeChange');
    const migrated = converged(planVMContext({ vmContext: ctx(first), layers: [svc, cache], sources: noSources, observed: { running: true, node: 'n-b', migrationId: 'm1' }, node: nodeB }));
    expect(migrated.trigger).toBe('Migration');
    const edited = layer('svc', { class: 'service', files: [{ path: 'a', content: 'y' }] });
    expect(converged(planVMContext({ vmContext: ctx(first), layers: [edited, cache], sources: noSources, observed: { running: true, node: 'n-a' }, node: nodeA })).trigger).toBe('LayerChange');
  });

  it('keeps the current images of a VM that opted out of the trigger', () => {
    const first = statusAfter(ctx(undefined, ['LayerChange']), nodeA);
    const plan = converged(planVMContext({ vmContext: ctx(first, ['LayerChange']), layers: [svc, cache], sources: noSources, observed: { running: true, node: 'n-b', migrationId: 'm1' }, node: nodeB }));
    expect(plan.trigger).toBe('Migration');
    const cacheLayer = plan.layers.find((l) => l.name === 'cache')!;
    expect(cacheLayer.digest).toBe(first.layers!.find((l) => l.name === 'cache')!.digest);
    expect(cacheLayer.rendered).toBeUndefined();
  });

  it('blocks with a reason when it cannot proceed', () => {
    const missing = planVMContext({ vmContext: ctx(), layers: [svc], sources: noSources, observed: { running: true, node: 'n-a' }, node: nodeA });
    expect(missing).toMatchObject({ kind: 'not-ready', reason: 'LayerNotFound' });
    expect(planVMContext({ vmContext: ctx(), layers: [svc, cache], sources: noSources, observed: undefined, node: undefined })).toMatchObject({ reason: 'VMNotFound' });
    expect(planVMContext({ vmContext: ctx(), layers: [svc, cache], sources: noSources, observed: { running: false }, node: undefined })).toMatchObject({ reason: 'VMNotRunning' });
    const broken = layer('cache', { class: 'infrastructure', files: [{ path: 'c', template: true, content: '{{ values.nope }}' }] });
    expect(planVMContext({ vmContext: ctx(), layers: [svc, broken], sources: noSources, observed: { running: true, node: 'n-a' }, node: nodeA })).toMatchObject({ reason: 'TemplateError' });
  });
});

describe('vmContextStatus', () => {
  it('records layers, node, timings and Ready', () => {
    const status = statusAfter(ctx(), nodeA);
    expect(status).toMatchObject({ observedGeneration: 3, vm: 'ns/vm1', node: 'n-a', lastRecontext: { trigger: 'Initial', totalMs: 10, phasesMs: { resolve: 1, detach: 2, build: 3, attach: 4 } } });
    expect(status.layers!.map((l) => [l.name, l.device])).toEqual([
      ['cache', 'sd-cache'],
      ['svc', 'sd-svc'],
    ]);
    expect(status.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Converged', observedGeneration: 3 });
  });

  it('reports blocked plans as Ready=False with the reason and keeps what the VM has', () => {
    const first = statusAfter(ctx(), nodeA);
    const status = vmContextStatus({ vmContext: ctx(first), vmDisplay: 'ns/vm1', plan: { kind: 'not-ready', reason: 'TemplateError', message: 'bad' }, attaches: true, now });
    expect(status.layers).toEqual(first.layers);
    expect(status.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'TemplateError' });
    expect(status.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True' });
  });

  it('lists no layers once the VM is gone (nothing holds them), and a returning VM starts over', () => {
    const first = statusAfter(ctx(), nodeA);
    const gone = vmContextStatus({ vmContext: ctx(first), vmDisplay: 'ns/vm1', plan: { kind: 'not-ready', reason: 'VMNotFound', message: 'the target VM does not exist' }, attaches: true, now });
    expect(gone.layers).toBeUndefined();
    expect(gone.node).toBe('n-a');
    expect(gone.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'VMNotFound' });
    expect(gone.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'False' }); // pending, not broken
    expect(statusAfter(ctx(gone), nodeA).lastRecontext?.trigger).toBe('Initial');
  });

  it('keeps lastTransitionTime when the condition status does not change', () => {
    const first = statusAfter(ctx(), nodeA);
    const later = vmContextStatus({
      vmContext: ctx(first),
      vmDisplay: 'ns/vm1',
      plan: converged(planVMContext({ vmContext: ctx(first), layers: [svc, cache], sources: noSources, observed: { running: true, node: 'n-a' }, node: nodeA })),
      attached: first.layers!.map((l) => ({ name: l.name, digest: l.digest, device: l.device! })),
      attaches: true,
      now: new Date('2026-11-23T11:00:00Z'),
    });
    expect(later).toEqual(first);
  });
});
