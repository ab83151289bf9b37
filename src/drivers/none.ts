// Driver "none": builds every layer image and records it in status, attaches nothing (so it has no
// release, and VMContexts no finalizer). For GitOps previews and for clusters where another system
// delivers the images. Where a KubeVirt VM runs is still observed for real — its VMI (one
// informer) and its Node's labels — so node-dependent layers render for the right place, and a
// migration re-renders them.
import { Informer } from '../runtime/informer.js';
import type { Logger } from '../runtime/log.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import type { KubeClient } from '../kube/client.js';
import { PlatformUnavailableError, type ConvergeResult, type DesiredLayer, type Driver, type ObservedVM, type VMChange, type VMTarget } from './driver.js';
import { ApiPresence, NodeLabelCache, observationOf, requireKubeVirtApi, VIRTUAL_MACHINE_INSTANCES, vmiSummary, type Vmi } from './kubevirt/observe.js';

const SYNC_WAIT_MS = 30_000;

export interface ImagesOnlyDriverOptions {
  readonly client: KubeClient;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  /** Watch one namespace's VMIs only; all when unset. */
  readonly namespace?: string;
}

export class ImagesOnlyDriver implements Driver {
  readonly name = 'none';
  readonly attaches = false;
  readonly #vmis: Informer<Vmi>;
  readonly #nodes: NodeLabelCache;
  readonly #kubevirt: ApiPresence;
  readonly #abort = new AbortController();
  readonly #listeners = new Set<(change: VMChange) => void>();
  /** vmiSummary of each VMI at its last event: other changes of a VMI are not ours. */
  readonly #seen = new Map<string, string>();
  #started: Promise<void> | undefined;

  constructor(options: ImagesOnlyDriverOptions) {
    const { client, logger, metrics, namespace } = options;
    this.#vmis = new Informer<Vmi>({ client, logger, metrics, resource: VIRTUAL_MACHINE_INSTANCES, ...(namespace ? { namespace } : {}) });
    this.#nodes = new NodeLabelCache(client);
    this.#kubevirt = new ApiPresence(() => requireKubeVirtApi(client));
    this.#vmis.onEvent((event, vmi) => {
      if (event === 'resync') return;
      const namespace = vmi.metadata.namespace ?? '';
      const key = `${namespace}/${vmi.metadata.name}`;
      const summary = event === 'delete' ? 'deleted' : vmiSummary(vmi);
      if (this.#seen.get(key) === summary) return;
      if (event === 'delete') this.#seen.delete(key);
      else this.#seen.set(key, summary);
      const change: VMChange = { kubevirt: { namespace, name: vmi.metadata.name }, reason: event === 'delete' ? 'vmi-deleted' : 'vmi-changed' };
      for (const listener of this.#listeners) listener(change);
    });
  }

  watch(listener: (change: VMChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async observe(target: VMTarget): Promise<ObservedVM | undefined> {
    if (!target.kubevirt) return { running: true }; // a libvirt domain without the libvirt driver: no node known
    await this.#start();
    const vmi = this.#vmis.get(`${target.namespace}/${target.kubevirt.name}`);
    return vmi ? observationOf(vmi, await this.#nodes.get(vmi.status?.nodeName)) : undefined;
  }

  async converge(_target: VMTarget, desired: readonly DesiredLayer[]): Promise<ConvergeResult> {
    return { layers: desired.map((d) => ({ name: d.name, digest: d.digest })), detachMs: 0, attachMs: 0 };
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#vmis.stopped();
  }

  /** The VMI informer starts with the first KubeVirt target, once the API is known to be served. */
  async #start(): Promise<void> {
    if (!this.#started) {
      await this.#kubevirt.require();
      this.#vmis.start(this.#abort.signal);
      this.#started = this.#vmis.waitForSync();
    }
    if (this.#vmis.synced) return;
    // A list that keeps failing (RBAC, an unreachable server) must not hold a worker forever.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PlatformUnavailableError('the VirtualMachineInstance cache has not synced yet (list/watch virtualmachineinstances failing? see the operator log)')), SYNC_WAIT_MS);
    });
    await Promise.race([this.#started, timeout]).finally(() => clearTimeout(timer));
  }
}
