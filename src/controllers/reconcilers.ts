// The two controllers of the operator and how changes reach their queues, whatever holds the
// objects: the Kubernetes manager (manager.ts) and standalone mode (src/standalone) both build
// them here and feed them the changes their sources see.
import { isDeepStrictEqual } from 'node:util';
import type { ContextLayer, MigrationPolicy, VMContext } from '../crds/index.js';
import type { VMChange } from '../drivers/driver.js';
import { keyOf } from '../kube/resources.js';
import { contextLayerReconciler } from './contextlayer.js';
import { Controller, DEFAULT_CONCURRENCY } from '../runtime/controller.js';
import { errorMessage } from '../runtime/log.js';
import { migrationPolicyReconciler, POLICY_RECONCILE_TIMEOUT_MS } from './migrationpolicy.js';
import type { MetricSource } from '../metric-sources/index.js';
import { selectorMatches } from '../reconcile/labels.js';
import type { Cache } from './ports.js';
import { layersUsingSource, vmContextsTargeting, vmContextsUsingLayer } from './routing.js';
import { FINALIZER, prepareImages, vmContextReconciler, type VMContextDeps } from './vmcontext.js';

export interface ReconcilerDeps extends VMContextDeps {
  /** Workers per controller. Default 4. */
  readonly concurrency?: number;
  /** MigrationPolicies and where their metrics come from; no policy controller without them. */
  readonly policies?: { readonly cache: Cache<MigrationPolicy>; readonly source: MetricSource };
}

export class Reconcilers {
  readonly vmContext: Controller;
  readonly contextLayer: Controller;
  readonly migrationPolicy: Controller | undefined;
  readonly #deps: ReconcilerDeps;

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    const { logger, metrics } = deps;
    const concurrency = deps.concurrency ?? DEFAULT_CONCURRENCY;
    this.vmContext = new Controller({ name: 'vmcontext', logger, metrics, concurrency, reconcile: vmContextReconciler({ ...deps, logger: logger.child({ controller: 'vmcontext' }) }) });
    this.contextLayer = new Controller({ name: 'contextlayer', logger, metrics, concurrency, reconcile: contextLayerReconciler(deps) });
    const policies = deps.policies;
    this.migrationPolicy = policies
      ? new Controller({
          name: 'migrationpolicy',
          logger,
          metrics,
          concurrency,
          timeoutMs: POLICY_RECONCILE_TIMEOUT_MS,
          reconcile: migrationPolicyReconciler({ ...deps, policies: policies.cache, source: policies.source, logger: logger.child({ controller: 'migrationpolicy' }) }),
        })
      : undefined;
  }

  get controllers(): Controller[] {
    return [this.vmContext, this.contextLayer, ...(this.migrationPolicy ? [this.migrationPolicy] : [])];
  }

  /** Everything there is, e.g. when this replica starts leading. */
  enqueueAll(): void {
    for (const vm of this.#deps.vmContexts.list()) this.vmContext.enqueue(keyOf(vm));
    for (const layer of this.#deps.layers.list()) this.contextLayer.enqueue(keyOf(layer));
    for (const policy of this.#deps.policies?.cache.list() ?? []) this.migrationPolicy?.enqueue(keyOf(policy));
  }

  policyChanged(policy: MigrationPolicy): void {
    this.migrationPolicy?.enqueue(keyOf(policy));
  }

  /**
   * `previous`: the version an update replaced, when known. An update that changed only the status
   * (our own status writes, most of all) or added our finalizer (our own write) enqueues nothing;
   * without `previous` (add, delete, resync) everything concerned is enqueued.
   */
  vmContextChanged(vm: VMContext, previous?: VMContext): void {
    if (previous && !vmContextNeedsReconcile(previous, vm)) return;
    this.vmContext.enqueue(keyOf(vm));
    // A new or relabelled VMContext changes how many VMs a layer reaches.
    if (!previous || !isDeepStrictEqual(selectionOf(previous), selectionOf(vm))) {
      for (const layer of this.#deps.layers.list()) if (layer.metadata.namespace === vm.metadata.namespace) this.contextLayer.enqueue(keyOf(layer));
    }
    // …and which VMs a policy samples.
    for (const policy of this.#deps.policies?.cache.list() ?? []) {
      if (policy.metadata.namespace === vm.metadata.namespace && selectorMatches(policy.spec.vmSelector ?? {}, vm.metadata.labels)) this.migrationPolicy?.enqueue(keyOf(policy));
    }
  }

  /** `previous` as for vmContextChanged: a status-only update (its renderedFor, say) concerns no VM. */
  layerChanged(layer: ContextLayer, previous?: ContextLayer): void {
    if (previous && !layerNeedsReconcile(previous, layer)) return;
    this.contextLayer.enqueue(keyOf(layer));
    for (const key of vmContextsUsingLayer(layer, this.#deps.vmContexts.list())) this.vmContext.enqueue(key);
  }

  sourceChanged(kind: 'ConfigMap' | 'Secret', namespace: string, name: string): void {
    for (const layer of layersUsingSource(kind, namespace, name, this.#deps.layers.list())) this.layerChanged(layer);
  }

  /** The platform reported something about a VM (migrated, stopped, device changed …). */
  vmChanged(change: VMChange): void {
    if (change.all) {
      for (const vm of this.#deps.vmContexts.list()) this.vmContext.enqueue(keyOf(vm));
      return;
    }
    for (const key of vmContextsTargeting(change, this.#deps.vmContexts.list())) {
      if (change.incoming) this.#prepare(key, change.incoming);
      else this.vmContext.enqueue(key);
    }
  }

  /**
   * Deletes images that no VMContext's status names (and that were not just built: the store's
   * grace period covers a reconciliation between building and writing its status).
   */
  async collectImages(): Promise<string[]> {
    const keep = this.#deps.vmContexts.list().flatMap((vm) => (vm.status?.layers ?? []).map((l) => l.digest));
    const removed = await this.#deps.images.gc(keep);
    if (removed.length > 0) this.#deps.logger.info('removed unused images', { count: removed.length });
    return removed;
  }

  // Off the queue on purpose: preparing is an optimisation the reconciliation does not wait for;
  // if it fails or is late, the reconciliation builds what is missing itself.
  #prepare(key: string, node: { node: string; labels: Readonly<Record<string, string>> }): void {
    const started = performance.now();
    prepareImages(this.#deps, key, { name: node.node, labels: node.labels }, AbortSignal.timeout(120_000)).then(
      (built) => this.#deps.logger.info('prepared images for an incoming migration', { key, node: node.node, built, ms: Math.round(performance.now() - started) }),
      (error: unknown) => this.#deps.logger.warn('could not prepare images for an incoming migration', { key, node: node.node, error: errorMessage(error) }),
    );
  }
}

// What of an object its reconciliation reads; an update that changed none of it (a status write,
// a managedFields bump) needs no reconciliation. Status is not among it on purpose: the operator
// writes the status, and a status someone else overwrote is put right at the next resync.
function metaOf(o: { metadata: { generation?: number; labels?: Record<string, string>; annotations?: Record<string, string>; deletionTimestamp?: string } }): unknown[] {
  const m = o.metadata;
  return [m.generation, m.labels ?? {}, m.annotations ?? {}, m.deletionTimestamp];
}

/** Changed besides status? Our own finalizer being added is our own write; any other finalizer change counts. */
export function vmContextNeedsReconcile(previous: VMContext, current: VMContext): boolean {
  if (!isDeepStrictEqual(metaOf(previous), metaOf(current)) || !isDeepStrictEqual(previous.spec, current.spec)) return true;
  const before = previous.metadata.finalizers ?? [];
  const after = current.metadata.finalizers ?? [];
  const others = (finalizers: readonly string[]) => finalizers.filter((f) => f !== FINALIZER);
  return !isDeepStrictEqual(others(before), others(after)) || (before.includes(FINALIZER) && !after.includes(FINALIZER));
}

export function layerNeedsReconcile(previous: ContextLayer, current: ContextLayer): boolean {
  return !isDeepStrictEqual(metaOf(previous), metaOf(current)) || !isDeepStrictEqual(previous.spec, current.spec) || !isDeepStrictEqual(previous.metadata.finalizers ?? [], current.metadata.finalizers ?? []);
}

/** What decides which layers a VMContext has (and so the layers' renderedFor). */
function selectionOf(vm: VMContext): unknown[] {
  return [vm.metadata.labels ?? {}, vm.spec.layers, vm.spec.layerSelector];
}
