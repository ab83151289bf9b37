// Standalone mode: the operator without Kubernetes. Objects come from a directory of manifests
// (re-read when it changes), VMs are libvirt domains on local hosts, status is kept in a state
// directory, events go to the log. The controllers are the very ones the cluster mode runs.
import type { Server } from 'node:http';
import { watch, type FSWatcher } from 'node:fs';
import { join, resolve } from 'node:path';
import { startHealthServer } from '../runtime/health.js';
import type { MetricSource, ReportedSource } from '../metric-sources/index.js';
import { errorMessage, type Logger } from '../runtime/log.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import { Reconcilers } from '../controllers/reconcilers.js';
import type { EventSink } from '../controllers/ports.js';
import type { Regarding } from '../controllers/events.js';
import type { Driver } from '../drivers/driver.js';
import { LayerImageStore } from '../images/layer-image.js';
import { keyOf } from '../kube/resources.js';
import { DirectoryStore, type StoreChange } from './store.js';

export interface StandaloneOptions {
  /** The manifests (a GitOps checkout). */
  readonly directory: string;
  /** Statuses, finalizers and (by default) images; must not be inside `directory`. */
  readonly stateDirectory: string;
  /** Default `<stateDirectory>/images`. */
  readonly imageDirectory?: string;
  readonly driver: Driver;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  /** Files of `directory` that are not manifests (the hosts file). */
  readonly exclude?: readonly string[];
  readonly concurrency?: number;
  readonly metricsAddress?: string;
  /** MigrationPolicy metrics; with `reported`, POST /v1/reports on the metrics address feeds it. */
  readonly policyMetrics?: { readonly source: MetricSource; readonly reported?: ReportedSource };
  /** Re-read the directory this often even without a file-system event. Default 30 000 ms. */
  readonly rescanMs?: number;
  /** Look at every VMContext again this often. Default 300 000 ms. */
  readonly resyncMs?: number;
  /** How often images no VMContext uses are deleted. Default 300 000 ms. */
  readonly imageGcIntervalMs?: number;
  /** A just-built image is kept this long even before a status names it. Default 600 000 ms. */
  readonly imageGcGraceMs?: number;
}

export interface RecordedEvent {
  readonly regarding: Regarding;
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly note: string;
}

export class StandaloneOperator {
  readonly store: DirectoryStore;
  readonly images: LayerImageStore;
  metricsUrl: string | undefined;
  readonly #o: StandaloneOptions;
  readonly #reconcilers: Reconcilers;
  readonly #listeners = new Set<(event: RecordedEvent) => void>();
  readonly #timers: NodeJS.Timeout[] = [];
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #unwatchDriver: (() => void) | undefined;
  #server: Server | undefined;
  #synced = false;

  constructor(options: StandaloneOptions) {
    const directory = resolve(options.directory);
    const state = resolve(options.stateDirectory);
    if (state === directory || state.startsWith(`${directory}/`)) {
      throw new Error(`the state directory ${state} must not be inside the manifest directory ${directory} (a checkout is not ours to write)`);
    }
    this.#o = options;
    this.store = new DirectoryStore({ directory, stateDirectory: state, ...(options.exclude ? { exclude: options.exclude } : {}) });
    this.images = new LayerImageStore(options.imageDirectory ?? join(state, 'images'), options.imageGcGraceMs !== undefined ? { graceMs: options.imageGcGraceMs } : {});
    const log = options.logger.child({ component: 'events' });
    const events: EventSink = {
      record: (regarding, type, reason, note) => {
        (type === 'Warning' ? log.warn : log.info)(note, { event: reason, object: `${regarding.kind}/${regarding.metadata.namespace ?? 'default'}/${regarding.metadata.name}` });
        for (const listener of this.#listeners) listener({ regarding, type, reason, note });
      },
    };
    this.#reconcilers = new Reconcilers({
      vmContexts: this.store.vmContexts,
      layers: this.store.layers,
      sources: this.store.sources,
      writer: this.store.writer,
      events,
      driver: options.driver,
      images: this.images,
      metrics: options.metrics,
      logger: options.logger,
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.policyMetrics ? { policies: { cache: this.store.policies, source: options.policyMetrics.source } } : {}),
    });
  }

  /** What the controllers report (Kubernetes Events in cluster mode), e.g. Recontextualized. */
  onEvent(listener: (event: RecordedEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async start(): Promise<void> {
    const { logger } = this.#o;
    if (this.#o.metricsAddress) {
      const reported = this.#o.policyMetrics?.reported;
      const { server, url } = await startHealthServer({
        address: this.#o.metricsAddress,
        registry: this.#o.metrics.registry,
        ready: () => this.#synced,
        ...(reported ? { reports: (body: string) => reported.applyAll(body) } : {}),
      });
      this.#server = server;
      this.metricsUrl = url;
      logger.info('serving health and metrics', { url });
    }
    this.rescan();
    this.#synced = true;
    this.#unwatchDriver = this.#o.driver.watch?.((change) => {
      logger.debug('vm changed', { reason: change.reason, domain: change.libvirtDomain, all: change.all ?? false, incoming: change.incoming?.node });
      this.#reconcilers.vmChanged(change);
    });
    this.#reconcilers.enqueueAll();
    this.#o.metrics.leader.set(1); // no leader election: this process reconciles
    for (const c of this.#reconcilers.controllers) c.start();
    this.#watch();
    this.#timers.push(setInterval(() => this.rescan(), this.#o.rescanMs ?? 30_000).unref());
    this.#timers.push(setInterval(() => this.#reconcilers.enqueueAll(), this.#o.resyncMs ?? 300_000).unref());
    this.#timers.push(
      setInterval(() => {
        this.collectImages().catch((error: unknown) => logger.warn('image gc failed', { error: errorMessage(error) }));
      }, this.#o.imageGcIntervalMs ?? 300_000).unref(),
    );
    logger.info('standalone operator started', { directory: resolve(this.#o.directory), vmContexts: this.store.vmContexts.list().length, layers: this.store.layers.list().length, driver: this.#o.driver.name });
  }

  /** Re-reads the directory now and queues what changed. Called on file-system events and periodically. */
  rescan(): void {
    let result;
    try {
      result = this.store.sync();
    } catch (error: unknown) {
      this.#o.logger.error('could not read the manifest directory; keeping what was read before', { directory: this.#o.directory, error: errorMessage(error) });
      return;
    }
    for (const problem of result.problems) this.#o.logger.error('manifest not applied; the objects it defines keep their last good version', { problem });
    for (const change of result.changes) this.#route(change);
  }

  /** Deletes images that no VMContext's status names (run periodically; callable for tests). */
  collectImages(): Promise<string[]> {
    return this.#reconcilers.collectImages();
  }

  /** Number of keys waiting in the controllers' queues (tests wait for 0). */
  get queued(): number {
    return this.#reconcilers.controllers.reduce((sum, c) => sum + c.queueLength, 0);
  }

  async stop(): Promise<void> {
    this.#watcher?.close();
    clearTimeout(this.#debounce);
    for (const timer of this.#timers) clearInterval(timer);
    this.#unwatchDriver?.();
    await Promise.all(this.#reconcilers.controllers.map((c) => c.stop()));
    await this.#o.driver.close?.();
    await new Promise<void>((done) => (this.#server ? this.#server.close(() => done()) : done()));
    this.#o.logger.info('standalone operator stopped');
  }

  #route(change: StoreChange): void {
    if (change.kind === 'VMContext') {
      this.#o.logger.debug('vmcontext changed', { key: keyOf(change.object) });
      this.#reconcilers.vmContextChanged(change.object);
    } else if (change.kind === 'ContextLayer') this.#reconcilers.layerChanged(change.object);
    else if (change.kind === 'MigrationPolicy') this.#reconcilers.policyChanged(change.object);
    else this.#reconcilers.sourceChanged(change.kind, change.namespace, change.name);
  }

  // fs.watch is a hint (editors write temp files, git swaps many files at once): changes are
  // debounced into one rescan, and the periodic rescan catches whatever the watch missed.
  #watch(): void {
    try {
      this.#watcher = watch(this.#o.directory, { recursive: true }, () => {
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => this.rescan(), 150);
      });
      this.#watcher.on('error', (error) => this.#o.logger.warn('watching the manifest directory failed; relying on the periodic rescan', { error: error.message }));
    } catch (error: unknown) {
      this.#o.logger.warn('cannot watch the manifest directory; relying on the periodic rescan', { error: errorMessage(error) });
    }
  }
}
