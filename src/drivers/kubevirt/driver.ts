// The KubeVirt driver: layer images reach a VM through CDI and KubeVirt's declarative hotplug.
//
//   image (operator's store) ── signed URL ──▶ DataVolume (CDI imports it into a PVC)
//   VirtualMachine spec: disk ctx-<layer> (cdrom, sata) + volume ctx-<layer> → that DataVolume
//   swap = change the volume's dataVolume.name; KubeVirt moves the new medium into the drive.
//
// converge is level-based: it creates missing DataVolumes, waits (bounded) for their import,
// writes the lists with server-side apply, waits (bounded) for the VMI to report the volumes
// Ready, then deletes DataVolumes nothing refers to. Waits end on watch events, not polling; a
// wait that runs out reports "pending" and the next reconciliation takes it from where it is.
import type { V1beta1DataVolume } from '@kubevirt-ui-ext/kubevirt-api/containerized-data-importer';
import type { V1VirtualMachine } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { realClock, type Clock } from '../../runtime/clock.js';
import { Informer, type ObjectMeta } from '../../runtime/informer.js';
import { errorMessage, type Logger } from '../../runtime/log.js';
import type { OperatorMetrics } from '../../runtime/metrics.js';
import { ApiError, type KubeClient } from '../../kube/client.js';
import { collectionPath, NODES, objectPath, PODS, type ResourceRef } from '../../kube/resources.js';
import { ConvergePendingError, MigrationImpossibleError, VMConfigurationError, type ConvergeResult, type DesiredLayer, type Driver, type MigrationRequest, type MigrationResult, type ObservedVM, type VMChange, type VMTarget } from '../driver.js';
import { declarativeHotplug, type KubeVirtResource } from './gates.js';
import { ApiPresence, apiServed, CREATED_BY_LABEL, incomingNode, KUBEVIRT_GROUP, KUBEVIRT_VERSION, MIGRATION_JOB_LABEL, NodeLabelCache, observationOf, requireKubeVirtApi, VIRTUAL_MACHINE_INSTANCES, vmiSummary, type LauncherPod, type Vmi } from './observe.js';
import {
  applyBody,
  dataVolumeManifest,
  importState,
  LABEL_MANAGED_BY,
  LABEL_VM_CONTEXT,
  layerVolume,
  MANAGED_BY,
  mergeLists,
  sameLists,
  splitByDrive,
  staleDataVolumes,
  VolumeNameConflict,
  volumeReadiness,
  vmListsOf,
  volumeNameOf,
  dnsLabel,
  type LayerVolume,
} from './volumes.js';

export const VIRTUAL_MACHINES: ResourceRef = { group: KUBEVIRT_GROUP, version: KUBEVIRT_VERSION, plural: 'virtualmachines', kind: 'VirtualMachine', namespaced: true };
export const MIGRATIONS: ResourceRef = { group: KUBEVIRT_GROUP, version: KUBEVIRT_VERSION, plural: 'virtualmachineinstancemigrations', kind: 'VirtualMachineInstanceMigration', namespaced: true };
export const KUBEVIRTS: ResourceRef = { group: KUBEVIRT_GROUP, version: KUBEVIRT_VERSION, plural: 'kubevirts', kind: 'KubeVirt', namespaced: true };
export const DATA_VOLUMES: ResourceRef = { group: 'cdi.kubevirt.io', version: 'v1beta1', plural: 'datavolumes', kind: 'DataVolume', namespaced: true };
/** Owns the context disks and volumes in VirtualMachines (and nothing else there). */
export const KUBEVIRT_FIELD_MANAGER = 'recontext-kubevirt';
/** How long one converge waits for imports, then for the VMI, before reporting pending (--kubevirt-wait). */
export const DEFAULT_KUBEVIRT_WAIT_MS = 60_000;

export interface KubeVirtDriverOptions {
  readonly client: KubeClient;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  /** Signed URL under which the platform can fetch an image (the operator's image server). */
  readonly imageUrl: (namespace: string, digest: string) => string;
  /** Watch one namespace only; all when unset. */
  readonly namespace?: string;
  readonly storageClassName?: string;
  readonly accessMode?: 'ReadWriteMany' | 'ReadWriteOnce' | 'ReadOnlyMany';
  /** How long one converge waits for imports, then for the VMI, before reporting pending. Default DEFAULT_KUBEVIRT_WAIT_MS. */
  readonly waitMs?: number;
  /**
   * Learn a migration's target from its target pod as soon as it is scheduled (needs pods list and
   * watch). Default true; without it, from the VMI once KubeVirt names the target.
   */
  readonly watchTargetPods?: boolean;
  readonly clock?: Clock;
}

type Vm = V1VirtualMachine & ObjectMeta;
type Dv = V1beta1DataVolume & ObjectMeta;
type Pod = LauncherPod & ObjectMeta;

function mergeWithoutConflict(...args: Parameters<typeof mergeLists>): ReturnType<typeof mergeLists> {
  try {
    return mergeLists(...args);
  } catch (error: unknown) {
    if (error instanceof VolumeNameConflict) throw new VMConfigurationError('VolumeNameConflict', error.message);
    throw error;
  }
}


export class KubeVirtDriver implements Driver {
  readonly name = 'kubevirt';
  readonly attaches = true;
  readonly #o: KubeVirtDriverOptions;
  readonly #vmis: Informer<Vmi>;
  readonly #vms: Informer<Vm>;
  readonly #dataVolumes: Informer<Dv>;
  /** Migration target pods (and the pods of VMs that migrated): where a migration is headed, early. */
  readonly #targetPods: Informer<Pod> | undefined;
  /** Those pods by the uid of the VMI they run (label kubevirt.io/created-by), and each VMI's key by its uid: no scans per event. */
  readonly #targetPodsByVmi = new Map<string, Map<string, Pod>>();
  readonly #vmiKeyByUid = new Map<string, string>();
  readonly #nodes: NodeLabelCache;
  readonly #apis: ApiPresence;
  /** Declarative volume hotplug is on (read from the KubeVirt resource). */
  readonly #hotplug: ApiPresence;
  readonly #abort = new AbortController();
  readonly #listeners = new Set<(change: VMChange) => void>();
  /** Waiters re-check their condition on every watch event. */
  readonly #waiters = new Set<() => void>();
  /** What each VM's (generation, conditions) was at its last event. */
  readonly #seen = new Map<string, string>();
  /** What each VMI was at its last event: its summary, and whether its last migration had completed. */
  readonly #seenVmis = new Map<string, { readonly summary: string; readonly completed?: boolean }>();
  /** The node each VMI's migration is headed for, as last announced (migration-started). */
  readonly #announcedIncoming = new Map<string, string>();
  #started: Promise<void> | undefined;

  constructor(options: KubeVirtDriverOptions) {
    this.#o = options;
    const clock = options.clock ? { clock: options.clock } : {};
    this.#nodes = new NodeLabelCache(options.client, clock);
    this.#apis = new ApiPresence(async () => {
      await requireKubeVirtApi(options.client);
      if (!(await apiServed(options.client, '/apis/cdi.kubevirt.io/v1beta1'))) throw new VMConfigurationError('CDIMissing', 'the cdi.kubevirt.io/v1beta1 API is not served: install CDI, which imports the context images (docs/kubevirt.md)');
    }, clock);
    // KubeVirt's configuration can change under a running operator (someone turns the gate on or
    // off): read again at most every 30 s either way, not on every reconciliation.
    this.#hotplug = new ApiPresence(async () => {
      const support = await this.#hotplugSupport();
      if (!support.on) throw new VMConfigurationError('HotplugDisabled', support.message);
    }, { ...clock, passMs: 30_000 });
    const informer = <T extends ObjectMeta>(resource: ResourceRef, labelSelector?: string) =>
      new Informer<T>({ client: options.client, resource, logger: options.logger, metrics: options.metrics, ...(options.namespace ? { namespace: options.namespace } : {}), ...(labelSelector ? { labelSelector } : {}) });
    this.#vmis = informer<Vmi>(VIRTUAL_MACHINE_INSTANCES);
    this.#vms = informer<Vm>(VIRTUAL_MACHINES);
    this.#dataVolumes = informer<Dv>(DATA_VOLUMES, `${LABEL_MANAGED_BY}=${MANAGED_BY}`);
    this.#targetPods = options.watchTargetPods === false ? undefined : informer<Pod>(PODS, MIGRATION_JOB_LABEL);
    this.#vmis.onEvent((event, vmi) => this.#vmiEvent(event, vmi));
    this.#targetPods?.onEvent((event, pod) => {
      if (event === 'resync') return;
      const uid = pod.metadata.labels?.[CREATED_BY_LABEL];
      if (!uid) return;
      const podKey = `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;
      const pods = this.#targetPodsByVmi.get(uid) ?? new Map<string, Pod>();
      if (event === 'delete') pods.delete(podKey);
      else pods.set(podKey, pod);
      if (pods.size > 0) this.#targetPodsByVmi.set(uid, pods);
      else this.#targetPodsByVmi.delete(uid);
      const vmiKey = this.#vmiKeyByUid.get(uid);
      const vmi = vmiKey ? this.#vmis.get(vmiKey) : undefined;
      if (vmi) this.#announceIncoming(vmi);
    });
    this.#vms.onEvent((event, vm) => {
      if (event === 'resync') return;
      const key = `vm/${vm.metadata.namespace}/${vm.metadata.name}`;
      const generation = `${event === 'delete' ? 'deleted' : (vm.metadata.generation ?? 0)}|${JSON.stringify(vm.status?.conditions?.map((c) => [c.type, c.status]) ?? [])}`;
      if (this.#seen.get(key) !== generation) {
        this.#seen.set(key, generation);
        this.#emit({ kubevirt: { namespace: vm.metadata.namespace ?? '', name: vm.metadata.name }, reason: event === 'delete' ? 'vm-deleted' : 'vm-changed' });
      }
      this.#wake();
    });
    this.#dataVolumes.onEvent((event, dv) => {
      if (event === 'resync') return;
      const vmName = dv.metadata.labels?.['recontext.dev/vm'];
      if (vmName && (event === 'delete' || dv.status?.phase === 'Succeeded' || dv.status?.phase === 'Failed')) this.#emit({ kubevirt: { namespace: dv.metadata.namespace ?? '', name: vmName }, reason: `datavolume-${dv.status?.phase ?? event}` });
      this.#wake();
    });
  }

  // ── Driver ────────────────────────────────────────────────────────────────────────────────

  watch(listener: (change: VMChange) => void): () => void {
    this.#listeners.add(listener);
    void this.#start().catch(() => undefined); // errors surface in observe/converge, as conditions
    return () => this.#listeners.delete(listener);
  }

  async observe(target: VMTarget): Promise<ObservedVM | undefined> {
    const name = this.#vmName(target);
    await this.#start();
    const vmi = this.#vmis.get(`${target.namespace}/${name}`);
    if (!vmi) {
      // No instance: the VM may still exist (stopped) — its spec can take the volumes for its next start.
      const vm = this.#vms.get(`${target.namespace}/${name}`);
      return vm ? { running: false } : undefined;
    }
    return observationOf(vmi, await this.#nodes.get(vmi.status?.nodeName));
  }

  async prepare(target: VMTarget, desired: readonly DesiredLayer[]): Promise<void> {
    await this.#start();
    // Marked with the migration's target: kept (not collected as unused) while it is under way.
    const vmi = this.#vmis.get(`${target.namespace}/${this.#vmName(target)}`);
    const targetNode = vmi ? this.#incoming(vmi) : undefined;
    await this.#ensureDataVolumes(target, desired.map((d) => ({ desired: d, volume: layerVolume(target, d) })), targetNode);
  }

  async converge(target: VMTarget, desired: readonly DesiredLayer[], signal: AbortSignal): Promise<ConvergeResult> {
    const name = this.#vmName(target);
    await this.#start();
    const key = `${target.namespace}/${name}`;
    const t0 = performance.now();
    const vm = this.#vms.get(key);
    if (!vm) throw new VMConfigurationError('NotAVirtualMachine', `no VirtualMachine ${key}: recontext delivers layers through a VirtualMachine's spec (a bare VirtualMachineInstance cannot take hotplugged CD-ROMs declaratively)`);
    await this.#hotplug.require();
    const layers = desired.map((d) => ({ desired: d, volume: layerVolume(target, d) }));
    const running = this.#vmis.get(key);
    const split = splitByDrive(layers.map((l) => l.volume), running?.status?.phase === 'Running' ? running : undefined);
    const deliverable = layers.filter((l) => split.now.includes(l.volume));
    const merged = mergeWithoutConflict(vmListsOf(vm), split.now, split.afterRestart.map((v) => v.volume));
    const changing = !sameLists(vmListsOf(vm), merged);
    const detachMs = performance.now() - t0;

    // 1. Every image version in a DataVolume, imported.
    const t1 = performance.now();
    await this.#ensureDataVolumes(target, layers);
    const imported = await this.#waitFor(signal, () => {
      const states = layers.map((l) => importState(this.#dataVolumes.get(`${target.namespace}/${l.volume.dataVolume}`)));
      const failed = states.find((s) => s.state === 'failed');
      if (failed && failed.state === 'failed') throw new VMConfigurationError('ImportFailed', failed.message);
      const waiting = states.filter((s) => s.state === 'importing');
      return waiting.length === 0 ? true : undefined;
    });
    if (!imported) {
      const waiting = layers.map((l) => importState(this.#dataVolumes.get(`${target.namespace}/${l.volume.dataVolume}`))).flatMap((s) => (s.state === 'importing' ? [s.message] : []));
      throw new ConvergePendingError('ImportInProgress', waiting.join('; '));
    }
    const importMs = performance.now() - t1;

    // 2. The lists in the VM's spec.
    const t2 = performance.now();
    if (changing) await this.#applyLists(key, split.now, split.afterRestart.map((v) => v.volume));
    const applyMs = performance.now() - t2;
    const inSpecAt = this.#now();

    // 3. The VMI reports them (only a running VM has one; a stopped VM gets them at its next start).
    const t3 = performance.now();
    const vmi = this.#vmis.get(key);
    let readyMs = 0;
    if (vmi && vmi.status?.phase === 'Running') {
      // KubeVirt's RestartRequired condition is not read: KubeVirt sets it for changes that are
      // hot-plugged all the same (vmRolloutStrategy Stage), and a stale one says nothing about
      // this change. Which layers need a restart is known up front (splitByDrive).
      const ready = await this.#waitFor(signal, () => {
        const current = this.#vmis.get(key);
        if (!current) return true; // stopped meanwhile: nothing to wait for
        return volumeReadiness(current, split.now).ready ? true : undefined;
      });
      if (!ready) {
        const readiness = volumeReadiness(this.#vmis.get(key) ?? vmi, split.now);
        throw new ConvergePendingError('VolumeNotReady', `waiting for the VMI to report ${readiness.ready ? 'the volumes' : readiness.waiting.join('; ')}`);
      }
      readyMs = performance.now() - t3;
    }
    const readyAt = this.#now();

    // 4. DataVolumes nothing refers to any more.
    await this.#collect(target, layers.map((l) => l.volume));
    if (split.afterRestart.length > 0) {
      const names = split.afterRestart.map((v) => v.layer).join(', ');
      throw new VMConfigurationError(
        'RestartRequired',
        `the running VM has no CD-ROM drive for ${names} (the layer came after the VM started) and KubeVirt cannot hot-plug a CD-ROM drive: the empty drive is in the VM's spec and the layer arrives when the VM restarts (virtctl restart ${vm.metadata.name}); ${deliverable.length} other layer(s) delivered`,
      );
    }

    const current = this.#vmis.get(key);
    const migration = current?.status?.migrationState;
    const endedAt = migration?.completed && !migration.failed && migration.endTimestamp ? Date.parse(migration.endTimestamp) : Number.NaN;
    const attachedAt = new Date(readyAt).toISOString();
    return {
      layers: deliverable.map((l) => ({ name: l.desired.name, digest: l.desired.digest, device: l.volume.volume, attachedAt })),
      detachMs,
      attachMs: importMs + applyMs + readyMs,
      attachStepsMs: { import: importMs, apply: applyMs, ready: readyMs },
      ...(changing && Number.isFinite(endedAt) && migration?.migrationUid
        ? { sinceMigrationMs: { migrationId: migration.migrationUid, volumeInSpec: Math.max(0, inSpecAt - endedAt), volumeReady: Math.max(0, readyAt - endedAt) } }
        : {}),
    };
  }

  async reserve(target: VMTarget, layers: readonly string[]): Promise<void> {
    const name = this.#vmName(target);
    await this.#start();
    const key = `${target.namespace}/${name}`;
    const vm = this.#vms.get(key);
    if (!vm) return;
    await this.#hotplug.require(); // without the gate KubeVirt refuses empty drives (422)
    // Keep the volumes of layers it already carries; add empty drives for the rest.
    const lists = vmListsOf(vm);
    const carried = lists.volumes.filter((v) => lists.managed.includes(v.name) && v.dataVolume);
    const keep = layers.flatMap((layer) => {
      const volume = carried.find((v) => v.name === volumeNameOf(layer));
      return volume?.dataVolume ? [{ layer, digest: '', volume: volume.name, dataVolume: volume.dataVolume.name }] : [];
    });
    await this.#applyLists(key, keep, layers.map(volumeNameOf));
  }

  /**
   * A VirtualMachineInstanceMigration toward the nodes of `nodeSelector` (addedNodeSelector,
   * KubeVirt ≥ 1.6). Refused up front when KubeVirt says the VMI cannot migrate live or no other
   * node has those labels: asking anyway would only fail, again and again.
   */
  async migrate(target: VMTarget, request: MigrationRequest): Promise<MigrationResult> {
    const name = this.#vmName(target);
    await this.#start();
    const vmi = this.#vmis.get(`${target.namespace}/${name}`);
    if (!vmi || vmi.status?.phase !== 'Running') throw new MigrationImpossibleError('NotRunning', `VMI ${target.namespace}/${name} is not running`);
    const migratable = vmi.status.conditions?.find((c) => c.type === 'LiveMigratable');
    if (migratable?.status === 'False') throw new MigrationImpossibleError('NotMigratable', `KubeVirt cannot live-migrate ${target.namespace}/${name}: ${migratable.reason ?? ''} ${migratable.message ?? ''}`.trim());
    // KubeVirt refuses a second migration of a VMI while one is in flight (its VMIM webhook).
    const inFlight = vmi.status.migrationState;
    if (inFlight && !inFlight.completed && !inFlight.failed) throw new MigrationImpossibleError('MigrationInFlight', `a migration of ${target.namespace}/${name} is in flight${inFlight.targetNode ? ` (to ${inFlight.targetNode})` : ''}; KubeVirt takes one at a time`);
    const selector = Object.entries(request.nodeSelector).map(([k, v]) => `${k}=${v}`).join(',');
    const nodes = await this.#o.client.list<{ metadata: { name: string } }>(collectionPath(NODES), { labelSelector: selector });
    if (!nodes.items.some((n) => n.metadata.name !== vmi.status?.nodeName)) {
      throw new MigrationImpossibleError('NoTargetNode', `no node other than ${vmi.status.nodeName ?? '?'} has the labels ${selector}`);
    }
    let created: { metadata: { name: string } };
    try {
      created = await this.#o.client.create<{ metadata: { name: string } }>(collectionPath(MIGRATIONS, target.namespace), {
        apiVersion: `${KUBEVIRT_GROUP}/${KUBEVIRT_VERSION}`,
        kind: 'VirtualMachineInstanceMigration',
        metadata: { generateName: `${dnsLabel([name]).slice(0, 40)}-recontext-`, labels: { [LABEL_MANAGED_BY]: MANAGED_BY, 'recontext.dev/requested-by': dnsLabel([request.requester]) } },
        spec: { vmiName: name, addedNodeSelector: { ...request.nodeSelector } },
      });
    } catch (error: unknown) {
      // Someone else's migration began after our cache last saw the VMI.
      if (error instanceof ApiError && /in-flight migration detected/i.test(error.message)) throw new MigrationImpossibleError('MigrationInFlight', `KubeVirt refused the migration of ${target.namespace}/${name}: ${error.message}`);
      throw error;
    }
    this.#o.logger.info('requested a migration', { namespace: target.namespace, vmi: name, migration: created.metadata.name, nodeSelector: selector });
    return { id: created.metadata.name, state: 'Requested' };
  }

  async migrationStatus(target: VMTarget, id: string): Promise<MigrationResult | undefined> {
    const vmim = await this.#o.client.getOrUndefined<{ status?: { phase?: string; migrationState?: { targetNode?: string; failureReason?: string } } }>(objectPath(MIGRATIONS, target.namespace, id));
    if (!vmim) return undefined;
    const phase = vmim.status?.phase;
    const node = vmim.status?.migrationState?.targetNode;
    if (phase === 'Succeeded') return { id, state: 'Succeeded', ...(node ? { node } : {}) };
    if (phase === 'Failed') return { id, state: 'Failed', message: vmim.status?.migrationState?.failureReason ?? 'KubeVirt reports the migration Failed' };
    return { id, state: 'Requested', message: `phase ${phase ?? 'Pending'}` };
  }

  async release(target: VMTarget, signal: AbortSignal): Promise<void> {
    const name = this.#vmName(target);
    await this.#start();
    const key = `${target.namespace}/${name}`;
    if (this.#vms.get(key)) await this.#applyLists(key, []);
    // Wait a little for the VMI to let go, so that the DataVolumes are not deleted under it.
    await this.#waitFor(signal, () => ((this.#vmis.get(key)?.status?.volumeStatus ?? []).some((v) => v.name.startsWith('ctx-')) ? undefined : true), 10_000);
    for (const dv of this.#ownedDataVolumes(target)) await this.#o.client.delete(objectPath(DATA_VOLUMES, target.namespace, dv.metadata.name));
  }

  async close(): Promise<void> {
    this.#abort.abort();
    for (const wake of this.#waiters) wake();
    await Promise.all([this.#vmis.stopped(), this.#vms.stopped(), this.#dataVolumes.stopped()]);
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────

  #vmName(target: VMTarget): string {
    if (!target.kubevirt) throw new TypeError(`VMContext ${target.namespace}/${target.vmContext} has no KubeVirt target; this operator runs the kubevirt driver`);
    return target.kubevirt.name;
  }

  #now(): number {
    return (this.#o.clock ?? realClock).now();
  }

  /**
   * Declarative hotplug as the cluster's KubeVirt resource sets it. Unknown (no KubeVirt
   * resource, or no right to read it: the chart grants it) counts as on: the VMI's volume status
   * then shows what happens.
   */
  async #hotplugSupport(): Promise<ReturnType<typeof declarativeHotplug>> {
    try {
      const list = await this.#o.client.list<KubeVirtResource>(collectionPath(KUBEVIRTS));
      const deployed = list.items.find((kv) => kv.status?.phase === 'Deployed') ?? list.items[0];
      return deployed ? declarativeHotplug(deployed) : { on: true };
    } catch (error: unknown) {
      if (error instanceof ApiError && (error.status === 403 || error.notFound)) {
        this.#o.logger.debug('cannot read the KubeVirt resource; assuming declarative hotplug is on', { error: errorMessage(error) });
        return { on: true };
      }
      throw error;
    }
  }

  /** Checks that KubeVirt and CDI are served, then starts the informers and waits for them. */
  async #start(): Promise<void> {
    if (!this.#started) {
      await this.#apis.require();
      this.#started = (async () => {
        const informers = [this.#vmis, this.#vms, this.#dataVolumes, ...(this.#targetPods ? [this.#targetPods] : [])];
        for (const informer of informers) informer.start(this.#abort.signal);
        await Promise.all(informers.map((informer) => informer.waitForSync()));
        this.#o.logger.info('kubevirt driver caches synced', { vms: this.#vms.list().length, vmis: this.#vmis.list().length, dataVolumes: this.#dataVolumes.list().length });
      })();
    }
    return this.#started;
  }



  async #ensureDataVolumes(target: VMTarget, layers: readonly { desired: DesiredLayer; volume: LayerVolume }[], preparedFor?: string): Promise<void> {
    for (const { desired, volume } of layers) {
      if (this.#dataVolumes.get(`${target.namespace}/${volume.dataVolume}`)) continue;
      const manifest = dataVolumeManifest(target, volume, {
        url: this.#o.imageUrl(target.namespace, desired.digest),
        imageBytes: desired.bytes,
        ...(this.#o.storageClassName ? { storageClassName: this.#o.storageClassName } : {}),
        ...(this.#o.accessMode ? { accessMode: this.#o.accessMode } : {}),
        ...(preparedFor ? { preparedFor } : {}),
      });
      try {
        await this.#o.client.create(collectionPath(DATA_VOLUMES, target.namespace), manifest);
        this.#o.logger.info('created DataVolume', { namespace: target.namespace, dataVolume: volume.dataVolume, layer: volume.layer });
      } catch (error: unknown) {
        if (!(error instanceof ApiError && error.conflict)) throw error; // 409: created meanwhile (our cache is behind)
      }
    }
  }

  /** Server-side apply of the merged lists; on a lost race (409) read again and redo once more. */
  async #applyLists(key: string, desired: readonly LayerVolume[], reserved: readonly string[] = []): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    for (let attempt = 1; ; attempt++) {
      const vm = await this.#o.client.getOrUndefined<Vm>(objectPath(VIRTUAL_MACHINES, namespace, name));
      if (!vm) return;
      const merged = mergeWithoutConflict(vmListsOf(vm), desired, reserved);
      if (sameLists(vmListsOf(vm), merged)) return;
      try {
        // force: KubeVirt's disks/volumes are atomic lists; whoever applied them before owns them
        // whole. We keep their entries as they are (mergeLists), and take the lists over.
        await this.#o.client.apply(objectPath(VIRTUAL_MACHINES, namespace, name), applyBody(vm, merged), KUBEVIRT_FIELD_MANAGER, true);
        return;
      } catch (error: unknown) {
        if (!(error instanceof ApiError && error.conflict) || attempt >= 3) throw error;
      }
    }
  }

  #ownedDataVolumes(target: VMTarget): Dv[] {
    const label = dnsLabel([target.vmContext]);
    return this.#dataVolumes.list().filter((dv) => dv.metadata.namespace === target.namespace && dv.metadata.labels?.[LABEL_VM_CONTEXT] === label);
  }

  async #collect(target: VMTarget, desired: readonly LayerVolume[]): Promise<void> {
    const key = `${target.namespace}/${this.#vmName(target)}`;
    const vmi = this.#vmis.get(key);
    const stale = staleDataVolumes(this.#ownedDataVolumes(target), desired, this.#vms.get(key), vmi, vmi ? this.#incoming(vmi) : undefined);
    for (const name of stale) {
      await this.#o.client.delete(objectPath(DATA_VOLUMES, target.namespace, name));
      this.#o.logger.info('deleted unused DataVolume', { namespace: target.namespace, dataVolume: name });
    }
  }

  /**
   * Resolves with the probe's first defined answer, re-probing on every watch event; undefined
   * after `timeoutMs`. A probe that throws ends the wait with that error.
   */
  #waitFor<T>(signal: AbortSignal, probe: () => T | undefined, timeoutMs = this.#o.waitMs ?? DEFAULT_KUBEVIRT_WAIT_MS): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      const finish = (value: T | undefined, error?: unknown) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        signal.removeEventListener('abort', onAbort);
        if (error !== undefined) reject(error);
        else resolve(value);
      };
      const check = () => {
        if (this.#abort.signal.aborted) return finish(undefined);
        try {
          const value = probe();
          if (value !== undefined) finish(value);
        } catch (error: unknown) {
          finish(undefined, error);
        }
      };
      const onAbort = () => finish(undefined, signal.reason ?? new Error('aborted'));
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(check);
      check();
    });
  }

  #wake(): void {
    for (const check of [...this.#waiters]) check();
  }

  #emit(change: VMChange): void {
    for (const listener of this.#listeners) listener(change);
  }

  /** Where the VMI's migration is headed, if one is under way (from its target pod or its status). */
  #incoming(vmi: Vmi): string | undefined {
    const pods = vmi.metadata.uid ? this.#targetPodsByVmi.get(vmi.metadata.uid) : undefined;
    return incomingNode(vmi, [...(pods?.values() ?? [])]);
  }

  /**
   * A migration has begun (its target known): build and import the images for the target while
   * memory is copied. Announced once per target; forgotten when the migration ends.
   */
  #announceIncoming(vmi: Vmi): void {
    const namespace = vmi.metadata.namespace ?? '';
    const name = vmi.metadata.name;
    const key = `${namespace}/${name}`;
    const targetNode = this.#incoming(vmi);
    if (targetNode === this.#announcedIncoming.get(key)) return;
    if (!targetNode) {
      this.#announcedIncoming.delete(key);
      return;
    }
    this.#announcedIncoming.set(key, targetNode);
    void this.#nodes.get(targetNode).then(
      (labels) => this.#emit({ kubevirt: { namespace, name }, reason: 'migration-started', incoming: { node: targetNode, labels: labels ?? {} } }),
      (error: unknown) => this.#o.logger.debug('could not read the migration target node', { node: targetNode, error: errorMessage(error) }),
    );
  }

  #vmiEvent(event: string, vmi: Vmi): void {
    this.#wake();
    if (event === 'resync') return;
    const namespace = vmi.metadata.namespace ?? '';
    const name = vmi.metadata.name;
    const key = `${namespace}/${name}`;
    if (vmi.metadata.uid) {
      if (event === 'delete') this.#vmiKeyByUid.delete(vmi.metadata.uid);
      else this.#vmiKeyByUid.set(vmi.metadata.uid, key);
    }
    if (event === 'delete') {
      this.#seenVmis.delete(key);
      this.#announcedIncoming.delete(key);
      this.#emit({ kubevirt: { namespace, name }, reason: 'vmi-deleted' });
      return;
    }
    const summary = vmiSummary(vmi);
    const before = this.#seenVmis.get(key);
    if (before?.summary === summary) return;
    const migration = vmi.status?.migrationState;
    this.#seenVmis.set(key, { summary, ...(migration?.completed ? { completed: true } : {}) });
    this.#announceIncoming(vmi);
    const reason = migration?.completed && !migration.failed && !before?.completed ? 'migrated' : 'vmi-changed';
    this.#emit({ kubevirt: { namespace, name }, reason });
  }
}
