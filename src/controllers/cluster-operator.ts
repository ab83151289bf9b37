// The operator process: informers feed the caches and route events to controller queues; the
// controllers run only while this replica leads (the informers run always, so a standby takes
// over with warm caches); health, readiness and metrics are served throughout.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import type { ContextLayer, MigrationPolicy, VMContext } from '../crds/index.js';
import type { Driver } from '../drivers/driver.js';
import { LayerImageStore } from '../images/layer-image.js';
import { startImageServer, type ImageServer, type ImageUrlSigner } from '../images/server.js';
import type { KubeClient } from '../kube/client.js';
import { CONFIG_MAPS, CONTEXT_LAYERS, MIGRATION_POLICIES, SECRETS, VM_CONTEXTS, type ResourceRef } from '../kube/resources.js';
import type { MetricSource, ReportedSource } from '../metric-sources/index.js';
import { EventRecorder } from './events.js';
import { startHealthServer } from '../runtime/health.js';
import { Informer, type ObjectMeta } from '../runtime/informer.js';
import { LeaderElector } from '../runtime/leader.js';
import { errorMessage, type Logger } from '../runtime/log.js';
import { realClock } from '../runtime/clock.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import { Reconcilers } from './reconcilers.js';
import { sourceLookup, type ConfigMapObject, type SecretObject } from './sources.js';
import { kubeWriter } from './ports.js';

/** On the leader's pod; the image Service selects it. */
export const LEADER_LABEL = 'recontext.dev/leader';

export interface OperatorOptions {
  readonly client: KubeClient;
  readonly driver: Driver;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  /** Directory of the content-addressed image store. */
  readonly imageDirectory: string;
  /** Watch one namespace only; all when unset. */
  readonly namespace?: string;
  /** Workers per controller. Default 4. */
  readonly concurrency?: number;
  /** host:port of /healthz, /readyz, /metrics; none when unset. */
  readonly metricsAddress?: string;
  /** Default true. Without it, this replica reconciles unconditionally. */
  readonly leaderElection?: boolean;
  readonly leaseNamespace?: string;
  readonly leaseName?: string;
  readonly identity?: string;
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
  readonly resyncMs?: number;
  readonly watchdogMs?: number;
  /** How often images no VMContext uses are deleted from the store. Default 300 000 ms. */
  readonly imageGcIntervalMs?: number;
  /** A just-built image is kept this long even before a status names it. Default 600 000 ms. */
  readonly imageGcGraceMs?: number;
  /** Serve the images over HTTP(S) for platforms that fetch them (the KubeVirt driver's CDI imports). */
  readonly imageServer?: { readonly address: string; readonly signer: ImageUrlSigner; readonly tls?: { readonly cert: Buffer; readonly key: Buffer } };
  /**
   * This replica's pod: labelled recontext.dev/leader=true while it leads, so that a Service can
   * send image downloads to the one replica that builds the images.
   */
  readonly pod?: { readonly name: string; readonly namespace: string };
  /**
   * Where MigrationPolicy metrics come from. With `reported`, POST /v1/reports on the metrics
   * address feeds it (trusted networks only). Without this, MigrationPolicies are not acted on.
   */
  readonly policyMetrics?: { readonly source: MetricSource; readonly reported?: ReportedSource };
  /** Called when leadership is lost; the CLI exits so that a restart starts clean. */
  readonly onLostLeadership?: () => void;
}

/** What the manager needs of an informer, whatever its object type. */
type CacheRunner = Pick<Informer<ObjectMeta>, 'resource' | 'synced' | 'waitForSync' | 'start' | 'stopped'>;

export class ClusterOperator {
  readonly #o: OperatorOptions;
  readonly #abort = new AbortController();
  readonly #informers: CacheRunner[] = [];
  #reconcilers: Reconcilers | undefined;
  #unwatchDriver: (() => void) | undefined;
  #leader: LeaderElector | undefined;
  #leaderLoop: Promise<void> | undefined;
  #server: Server | undefined;
  #imageServer: ImageServer | undefined;
  #running = false;
  #lostLeadership = false;
  #gcTimer: { cancel(): void } | undefined;
  metricsUrl: string | undefined;
  imageServerUrl: string | undefined;

  constructor(options: OperatorOptions) {
    this.#o = options;
  }

  get leading(): boolean {
    return this.#leader?.leading ?? this.#running;
  }

  get synced(): boolean {
    return this.#informers.every((i) => i.synced);
  }

  async start(): Promise<void> {
    const { client, logger, metrics } = this.#o;
    const informer = <T extends ObjectMeta>(resource: ResourceRef): Informer<T> => {
      const created = new Informer<T>({
        client,
        resource,
        ...(this.#o.namespace ? { namespace: this.#o.namespace } : {}),
        logger,
        metrics,
        ...(this.#o.resyncMs ? { resyncMs: this.#o.resyncMs } : {}),
        ...(this.#o.watchdogMs ? { watchdogMs: this.#o.watchdogMs } : {}),
      });
      this.#informers.push(created);
      return created;
    };
    const vmContexts = informer<VMContext>(VM_CONTEXTS);
    const layers = informer<ContextLayer>(CONTEXT_LAYERS);
    const configMaps = informer<ConfigMapObject>(CONFIG_MAPS);
    const secrets = informer<SecretObject>(SECRETS);
    const policyMetrics = this.#o.policyMetrics;
    const policies = policyMetrics ? informer<MigrationPolicy>(MIGRATION_POLICIES) : undefined;
    const identity = this.#o.identity ?? `${hostname()}-${randomBytes(4).toString('hex')}`;
    const images = new LayerImageStore(this.#o.imageDirectory, this.#o.imageGcGraceMs !== undefined ? { graceMs: this.#o.imageGcGraceMs } : {});
    const reconcilers = new Reconcilers({
      vmContexts,
      layers,
      sources: (namespace) => sourceLookup(configMaps, secrets, namespace),
      writer: kubeWriter(client),
      events: new EventRecorder({ client, controller: 'recontext.dev/operator', instance: identity, logger }),
      driver: this.#o.driver,
      images,
      metrics,
      logger,
      ...(this.#o.concurrency ? { concurrency: this.#o.concurrency } : {}),
      ...(policies && policyMetrics ? { policies: { cache: policies, source: policyMetrics.source } } : {}),
    });
    this.#reconcilers = reconcilers;

    vmContexts.onEvent((_event, vm, previous) => reconcilers.vmContextChanged(vm, previous));
    layers.onEvent((_event, layer, previous) => reconcilers.layerChanged(layer, previous));
    configMaps.onEvent((_event, cm) => reconcilers.sourceChanged('ConfigMap', cm.metadata.namespace ?? '', cm.metadata.name));
    policies?.onEvent((_event, policy) => reconcilers.policyChanged(policy));
    secrets.onEvent((_event, secret) => reconcilers.sourceChanged('Secret', secret.metadata.namespace ?? '', secret.metadata.name));
    this.#unwatchDriver = this.#o.driver.watch?.((change) => {
      if (this.#running) reconcilers.vmChanged(change);
    });

    for (const i of this.#informers) i.start(this.#abort.signal);
    if (this.#o.metricsAddress) {
      const reported = policyMetrics?.reported;
      const { server, url } = await startHealthServer({
        address: this.#o.metricsAddress,
        registry: metrics.registry,
        ready: () => this.synced,
        ...(reported ? { reports: (body: string) => reported.applyAll(body) } : {}),
      });
      this.#server = server;
      this.metricsUrl = url;
      logger.info('serving health and metrics', { url });
    }
    if (this.#o.imageServer) {
      this.#imageServer = await startImageServer({ ...this.#o.imageServer, images, logger: logger.child({ component: 'image-server' }) });
      this.imageServerUrl = this.#imageServer.url;
      logger.info('serving images', { url: this.#imageServer.url });
    }
    await this.#labelPod(false);
    await Promise.all(this.#informers.map((i) => i.waitForSync()));
    logger.info('caches synced', { resources: this.#informers.map((i) => i.resource.plural) });

    if (this.#o.leaderElection ?? true) {
      this.#leader = new LeaderElector({
        client,
        namespace: this.#o.leaseNamespace ?? this.#o.namespace ?? 'default',
        leaseName: this.#o.leaseName ?? 'recontext-operator',
        identity,
        logger,
        ...(this.#o.leaseDurationMs ? { leaseDurationMs: this.#o.leaseDurationMs } : {}),
        ...(this.#o.renewDeadlineMs ? { renewDeadlineMs: this.#o.renewDeadlineMs } : {}),
        ...(this.#o.retryPeriodMs ? { retryPeriodMs: this.#o.retryPeriodMs } : {}),
        onChange: (leading) => {
          metrics.leader.set(leading ? 1 : 0);
          if (leading && this.#lostLeadership) {
            // Stopped controllers do not restart (their queues are shut down): a replica that lost
            // the lease is expected to exit (the CLI does) and come back as a fresh standby.
            logger.error('leading again after losing the lease; not reconciling until restarted');
          } else if (leading) this.#startControllers();
          else if (this.#running) {
            this.#lostLeadership = true;
            void this.#stopControllers();
            this.#o.onLostLeadership?.();
          }
        },
      });
      this.#leaderLoop = this.#leader.run(this.#abort.signal);
    } else {
      metrics.leader.set(1); // every replica reconciles: recontext_leader says so (alerts expect one per install)
      this.#startControllers();
    }
  }

  #startControllers(): void {
    const reconcilers = this.#reconcilers;
    if (this.#running || !reconcilers) return;
    this.#running = true;
    reconcilers.enqueueAll();
    for (const c of reconcilers.controllers) c.start();
    void this.#labelPod(true);
    this.#o.logger.info('controllers started', { controllers: reconcilers.controllers.map((c) => c.name) });
    this.#scheduleImageGc();
  }

  /** Deletes images that no VMContext's status names (only the leader: it is the one writing images). */
  async collectImages(): Promise<string[]> {
    return this.#reconcilers?.collectImages() ?? [];
  }

  #scheduleImageGc(): void {
    const every = this.#o.imageGcIntervalMs ?? 300_000;
    const tick = () => {
      if (!this.#running) return;
      this.collectImages().catch((error: unknown) => this.#o.logger.warn('image gc failed', { error: errorMessage(error) }));
      this.#gcTimer = realClock.setTimeout(tick, every);
    };
    this.#gcTimer = realClock.setTimeout(tick, every);
  }

  async #labelPod(leading: boolean): Promise<void> {
    const pod = this.#o.pod;
    if (!pod) return;
    try {
      await this.#o.client.mergePatch(`/api/v1/namespaces/${pod.namespace}/pods/${encodeURIComponent(pod.name)}`, { metadata: { labels: { [LEADER_LABEL]: String(leading) } } });
    } catch (error: unknown) {
      this.#o.logger.warn('could not label this pod', { pod: pod.name, leader: leading, error: errorMessage(error) });
    }
  }

  async #stopControllers(): Promise<void> {
    this.#running = false;
    this.#gcTimer?.cancel();
    await Promise.all((this.#reconcilers?.controllers ?? []).map((c) => c.stop()));
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#unwatchDriver?.();
    await this.#stopControllers();
    await this.#leaderLoop;
    await Promise.all(this.#informers.map((i) => i.stopped()));
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    await this.#imageServer?.close();
    await this.#o.driver.close?.();
    this.#o.logger.info('operator stopped');
  }
}
