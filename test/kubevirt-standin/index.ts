// KubeVirtStandIn: a TEST-ONLY stand-in for KubeVirt's controllers + node agent and CDI's
// importer (README.md). It watches VirtualMachines, VirtualMachineInstances,
// VirtualMachineInstanceMigrations and DataVolumes on a real API server and realizes them on the
// test bed's two real libvirt hosts. The operator's KubeVirt driver talks only to the API server;
// this is what makes that API behave like a cluster running KubeVirt + CDI.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Informer, type ObjectMeta } from '../../src/runtime/informer.js';
import { createLogger } from '../../src/runtime/log.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { WorkQueue } from '../../src/runtime/queue.js';
import { LibvirtClient } from '../../src/drivers/libvirt/client.js';
import { ApiError, type KubeClient } from '../../src/kube/client.js';
import { keyOf, objectPath, splitKey, type ResourceRef } from '../../src/kube/resources.js';
import type { DomainOptions } from '../testbed/domain.js';
import { CdiImporter, type DataVolume } from './cdi.js';
import { DATA_VOLUMES, KUBEVIRTS, KeyedLock, VMIMS, VMIS, VMS, domainName, type Log, type StandInNode } from './common.js';
import { MigrationController } from './migrations.js';
import { DECLARATIVE_HOTPLUG, VirtController } from './virt.js';

export type { StandInNode } from './common.js';
export { DATA_VOLUMES, VMIMS, VMIS, VMS, KUBEVIRTS, domainName } from './common.js';
export { DECLARATIVE_HOTPLUG } from './virt.js';
export { installKubeVirtCrds } from './crds.js';

export interface KubeVirtStandInOptions {
  readonly client: KubeClient;
  /** The test bed's domain XML builder: pass `(o) => tb.domainXml(o)`. */
  readonly domainXml: (options: DomainOptions) => string;
  /** node-a, node-b … each on one test bed host. The first is the default for scheduling. */
  readonly nodes: readonly StandInNode[];
  /**
   * Where imported DataVolumes are stored (<dir>/<namespace>/<name>.img). Must be on the file
   * system both libvirt hosts share: not under the paths each host has privately bind-mounted.
   */
  readonly storageDir: string;
  /** KubeVirt feature gates written into the KubeVirt CR. Default ['DeclarativeHotplugVolumes']. */
  readonly featureGates?: readonly string[];
  /** What every domain boots: another guest image (e.g. the fat one), extra kernel words, memory. */
  readonly guest?: DomainOptions['guest'];
  readonly cmdlineExtra?: string;
  readonly memoryMiB?: number;
  /** Watch one namespace (default: all) — the KubeVirt CR always goes to namespace `kubevirt`. */
  readonly namespace?: string;
  /** Retry delays of failed imports (default 1 s doubling up to 30 s). */
  readonly importRetryBaseMs?: number;
  readonly importRetryMaxMs?: number;
  /** Action lines (default console.log), prefixed `[kubevirt-standin]`. */
  readonly log?: Log;
  /** Concurrent reconciles (default 3; a VM and its migrations share a lock). */
  readonly workers?: number;
}

/** The private paths of each test bed host's mount namespace (test/testbed/README.md). */
const HOST_PRIVATE = ['/etc/libvirt', '/run/libvirt', '/var/lib/libvirt', '/var/cache/libvirt', '/var/log/libvirt'];

type Kind = 'vm' | 'dv' | 'vmim';

export class KubeVirtStandIn {
  readonly #o: KubeVirtStandInOptions;
  readonly #log: Log;
  readonly #queue = new WorkQueue({ baseDelayMs: 200, maxDelayMs: 10_000 });
  readonly #abort = new AbortController();
  readonly #libvirt = new Map<string, LibvirtClient>();
  readonly #locks = new KeyedLock();
  readonly #cdi: CdiImporter;
  readonly #virt: VirtController;
  readonly #migrations: MigrationController;
  readonly #informers: { vm: Informer<ObjectMeta>; vmi: Informer<ObjectMeta>; vmim: Informer<ObjectMeta>; dv: Informer<ObjectMeta> };
  #workers: Promise<void>[] = [];

  constructor(options: KubeVirtStandInOptions) {
    const storageDir = resolve(options.storageDir);
    const clash = HOST_PRIVATE.find((dir) => storageDir === dir || storageDir.startsWith(`${dir}/`));
    if (clash) throw new Error(`storageDir ${storageDir} is under ${clash}, which each test bed host mounts privately: QEMU on the other host could not open the images`);
    if (options.nodes.length === 0) throw new Error('the stand-in needs at least one node');
    this.#o = { ...options, storageDir };
    const write = options.log ?? ((line: string) => console.log(line));
    this.#log = (line) => write(`[kubevirt-standin] ${line}`);
    const libvirt = (node: string): Promise<LibvirtClient> => this.#connect(node);
    this.#cdi = new CdiImporter({ client: options.client, storageDir, log: this.#log, retryBaseMs: options.importRetryBaseMs, retryMaxMs: options.importRetryMaxMs });
    this.#virt = new VirtController({
      client: options.client,
      nodes: options.nodes,
      libvirt,
      domainXml: options.domainXml,
      domainOptions: { ...(options.guest ? { guest: options.guest } : {}), ...(options.cmdlineExtra ? { cmdlineExtra: options.cmdlineExtra } : {}), ...(options.memoryMiB ? { memoryMiB: options.memoryMiB } : {}) },
      featureGates: () => this.featureGates,
      dataVolume: (namespace, name) => this.#informers.dv.get(`${namespace}/${name}`) as DataVolume | undefined,
      importedFile: (dv) => this.#cdi.importedFile(dv),
      locks: this.#locks,
      log: this.#log,
    });
    this.#migrations = new MigrationController({
      client: options.client,
      nodes: options.nodes,
      libvirt,
      locks: this.#locks,
      log: this.#log,
      migrated: (namespace, name) => this.#queue.add(`vm:${namespace}/${name}`),
    });
    const informer = (resource: ResourceRef) =>
      new Informer<ObjectMeta>({
        client: options.client,
        resource,
        namespace: options.namespace,
        logger: createLogger({ level: 'warn', write: (line) => this.#log(`informer: ${line.trim()}`) }),
        metrics: new OperatorMetrics({ defaultMetrics: false }),
        resyncMs: 30_000,
        backoffBaseMs: 200,
        backoffMaxMs: 5_000,
      });
    this.#informers = { vm: informer(VMS), vmi: informer(VMIS), vmim: informer(VMIMS), dv: informer(DATA_VOLUMES) };
    this.#informers.vm.onEvent((_event, object) => this.#queue.add(`vm:${keyOf(object)}`));
    // A VMI changed or vanished behind our back: its VM decides (recreate, follow, clean up).
    this.#informers.vmi.onEvent((_event, object) => this.#queue.add(`vm:${keyOf(object)}`));
    this.#informers.vmim.onEvent((_event, object) => this.#queue.add(`vmim:${keyOf(object)}`));
    this.#informers.dv.onEvent((_event, object) => {
      this.#queue.add(`dv:${keyOf(object)}`);
      // VMs whose volumes wait for this DataVolume (any VM of the namespace: cheap and level-based).
      for (const vm of this.#informers.vm.list()) if (vm.metadata.namespace === object.metadata.namespace) this.#queue.add(`vm:${keyOf(vm)}`);
    });
  }

  get featureGates(): readonly string[] {
    return this.#o.featureGates ?? [DECLARATIVE_HOTPLUG];
  }

  /** The file a DataVolume is imported to (whether or not the import is done). */
  dataVolumeFile(namespace: string, name: string): string {
    return this.#cdi.filePath(namespace, name);
  }

  /** The node whose host runs the VM's domain now, or undefined. */
  async domainRunning(namespace: string, name: string): Promise<string | undefined> {
    return (await this.#virt.findDomain(domainName(namespace, name)))?.node.name;
  }

  /** Nodes, the KubeVirt CR, libvirt connections, informers, workers. Resolves once the caches are synced. */
  async start(): Promise<void> {
    mkdirSync(this.#o.storageDir, { recursive: true });
    for (const node of this.#o.nodes) await this.#connect(node.name);
    await this.#virt.ensureNodes();
    await this.#writeKubeVirtCR();
    for (const informer of Object.values(this.#informers)) informer.start(this.#abort.signal);
    await Promise.all(Object.values(this.#informers).map((informer) => informer.waitForSync()));
    this.#workers = Array.from({ length: this.#o.workers ?? 3 }, () => this.#work());
    this.#log(`started: nodes ${this.#o.nodes.map((n) => `${n.name}=${n.host.name}`).join(', ')}; feature gates ${this.featureGates.join(',') || 'none'}; storage ${this.#o.storageDir}`);
  }

  /** Stops watching and destroys every domain it started (on either host). */
  async stop(): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    this.#queue.shutdown();
    await Promise.all(this.#workers);
    await Promise.all(Object.values(this.#informers).map((informer) => informer.stopped()));
    if (this.#libvirt.size > 0) await this.#virt.destroyAll();
    for (const client of this.#libvirt.values()) await client.close().catch(() => undefined);
    this.#libvirt.clear();
    this.#log('stopped');
  }

  /** The node's libvirt connection; a closed one (libvirtd restarted) is replaced. */
  async #connect(node: string): Promise<LibvirtClient> {
    const open = this.#libvirt.get(node);
    if (open && !open.connection.closed) return open;
    const host = this.#o.nodes.find((n) => n.name === node)?.host;
    if (!host) throw new Error(`no such node ${node}`);
    if (this.#abort.signal.aborted && !open) throw new Error('the stand-in is stopped');
    const client = await LibvirtClient.connect({ socketPath: host.socket, keepalive: { intervalMs: 5000, count: 5 } });
    this.#libvirt.set(node, client);
    if (open) this.#log(`reconnected to libvirtd of ${node} (${host.name})`);
    return client;
  }

  async #writeKubeVirtCR(): Promise<void> {
    const { client } = this.#o;
    await client.apply('/api/v1/namespaces/kubevirt', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kubevirt' } }, 'kubevirt-standin');
    const path = objectPath(KUBEVIRTS, 'kubevirt', 'kubevirt');
    await client.apply(
      path,
      {
        apiVersion: 'kubevirt.io/v1',
        kind: 'KubeVirt',
        metadata: { name: 'kubevirt', namespace: 'kubevirt' },
        spec: { configuration: { developerConfiguration: { featureGates: [...this.featureGates] } } },
      },
      'kubevirt-standin',
    );
    await client.mergePatch(`${path}/status`, {
      status: {
        phase: 'Deployed',
        observedKubeVirtVersion: 'v1.6.0-standin',
        targetKubeVirtVersion: 'v1.6.0-standin',
        conditions: [{ type: 'Available', status: 'True', reason: 'AllResourcesReady', message: 'test-only stand-in, not KubeVirt' }],
      },
    });
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.#queue.get();
      if (key === undefined) return;
      const colon = key.indexOf(':');
      const kind = key.slice(0, colon) as Kind;
      const { namespace, name } = splitKey(key.slice(colon + 1));
      try {
        let requeueMs: number | undefined;
        if (kind === 'vm') requeueMs = await this.#virt.reconcile(namespace!, name);
        else if (kind === 'dv') requeueMs = await this.#cdi.reconcile(namespace!, name);
        else requeueMs = await this.#migrations.reconcile(namespace!, name);
        this.#queue.forget(key);
        if (requeueMs !== undefined) this.#queue.addAfter(key, requeueMs);
      } catch (error: unknown) {
        if (this.#abort.signal.aborted) return this.#queue.done(key);
        if (error instanceof ApiError && error.notFound) {
          // Deleted while we worked on it: its delete event queues the key again.
          this.#log(`${kind} ${namespace}/${name}: gone meanwhile (${error.message})`);
          this.#queue.forget(key);
          continue;
        }
        const conflict = error instanceof ApiError && error.conflict;
        this.#log(`${kind} ${namespace}/${name}: ${conflict ? 'conflict, retrying' : `failed, retrying: ${error instanceof Error ? error.message : String(error)}`}`);
        this.#queue.addRateLimited(key);
      } finally {
        this.#queue.done(key);
      }
    }
  }
}
