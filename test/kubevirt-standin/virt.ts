// Test-only stand-in for virt-controller's VM/VMI controllers and virt-handler (the node agent):
// a running VirtualMachine gets a VirtualMachineInstance and a real libvirt domain on its node's
// test bed host; CD-ROM volumes are swapped in the running domain (declarative hotplug) in two
// steps, as KubeVirt does (the old volume leaves, then the new one comes). Not
// KubeVirt: no virt-launcher pod, no PVCs, no networking, non-cdrom disks are ignored (the test
// guest boots from kernel + initrd), every CD-ROM is a SATA drive.
import { cdromsOf, cdromXml } from '../../src/drivers/libvirt/devices.js';
import type { DomainRef, LibvirtClient } from '../../src/drivers/libvirt/client.js';
import type { KubeClient } from '../../src/kube/client.js';
import { NODES, objectPath } from '../../src/kube/resources.js';
import { sataTarget, type DomainOptions } from '../testbed/domain.js';
import type { DataVolume } from './cdi.js';
import {
  VMIS,
  VMS,
  canonical,
  createDomain,
  destroyDomain,
  domainName,
  matches,
  mergeConditions,
  now,
  patchStatus,
  type Condition,
  type KeyedLock,
  type Log,
  type Meta,
  type StandInNode,
} from './common.js';

export interface Volume {
  name: string;
  dataVolume?: { name: string; hotpluggable?: boolean };
  persistentVolumeClaim?: { claimName: string; hotpluggable?: boolean; readOnly?: boolean };
  [other: string]: unknown;
}

export interface Disk {
  name: string;
  cdrom?: { bus?: string; readonly?: boolean; tray?: string };
  [other: string]: unknown;
}

export interface VMISpec {
  domain?: { devices?: { disks?: Disk[]; [other: string]: unknown }; [other: string]: unknown };
  volumes?: Volume[];
  nodeSelector?: Record<string, string>;
  [other: string]: unknown;
}

export interface VirtualMachine {
  metadata: Meta;
  spec?: { running?: boolean; runStrategy?: string; template?: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: VMISpec } };
  status?: Record<string, unknown> & { conditions?: Condition[] };
}

export interface VolumeStatus {
  name: string;
  target: string;
  phase?: string;
  reason?: string;
  message?: string;
  hotplugVolume?: Record<string, never>;
  persistentVolumeClaimInfo?: { claimName: string; accessModes?: string[] };
}

export interface VirtualMachineInstance {
  metadata: Meta & { ownerReferences?: { uid: string }[] };
  spec: VMISpec;
  status?: Record<string, unknown> & {
    phase?: string;
    nodeName?: string;
    conditions?: Condition[];
    volumeStatus?: VolumeStatus[];
    migrationState?: Record<string, unknown>;
    phaseTransitionTimestamps?: { phase: string; phaseTransitionTimestamp: string }[];
  };
}

export interface VirtOptions {
  readonly client: KubeClient;
  readonly nodes: readonly StandInNode[];
  readonly libvirt: (node: string) => Promise<LibvirtClient>;
  /** The test bed's domain XML builder (Testbed.domainXml): console log, kernel, accelerator. */
  readonly domainXml: (options: DomainOptions) => string;
  readonly domainOptions: Pick<DomainOptions, 'guest' | 'cmdlineExtra' | 'memoryMiB'>;
  readonly featureGates: () => readonly string[];
  readonly dataVolume: (namespace: string, name: string) => DataVolume | undefined;
  readonly importedFile: (dv: DataVolume | undefined) => string | undefined;
  readonly locks: KeyedLock;
  readonly log: Log;
  /**
   * A swap is two steps in KubeVirt: the old volume leaves the VMI (the medium is ejected), and the
   * new one comes only after the old one's attachment pod is gone. The stand-in waits this long
   * between the two (default 1500 ms; a whole swap took ~4 s on the local cluster, docs/benchmarks/kubevirt.md).
   */
  readonly swapStepMs?: number;
}

/** Access modes of a DataVolume's claim where it names none: the stand-in's storage profile. */
export const DEFAULT_ACCESS_MODES = ['ReadWriteMany'];

export const DECLARATIVE_HOTPLUG = 'DeclarativeHotplugVolumes';
const NON_LIVE_UPDATABLE = 'a non-live-updatable field was changed in the template spec';

/** The CD-ROM disks of a VMI spec, in disk order, with the SATA target each gets. */
export function cdromDisks(spec: VMISpec | undefined): { name: string; target: string }[] {
  return (spec?.domain?.devices?.disks ?? []).filter((disk) => disk.cdrom !== undefined).map((disk, index) => ({ name: disk.name, target: sataTarget(index) }));
}

export function claimOf(volume: Volume | undefined): string | undefined {
  return volume?.dataVolume?.name ?? volume?.persistentVolumeClaim?.claimName;
}

/** A declarative hotplug volume in KubeVirt's sense (pkg/storage/types IsDeclarativeHotplugVolume). */
export function isHotpluggable(volume: Volume): boolean {
  return volume.dataVolume?.hotpluggable === true || volume.persistentVolumeClaim?.hotpluggable === true;
}

/** The access modes of a DataVolume's claim: its spec's, else the stand-in's storage profile's. */
function accessModesOf(dv: DataVolume | undefined): string[] {
  const spec = dv?.spec as { storage?: { accessModes?: string[] }; pvc?: { accessModes?: string[] } } | undefined;
  return spec?.storage?.accessModes ?? spec?.pvc?.accessModes ?? DEFAULT_ACCESS_MODES;
}

/**
 * The LiveMigratable condition as virt-handler computes it for volumes: every claim must be shared
 * (ReadWriteMany), CD-ROMs included — else DisksNotLiveMigratable, in KubeVirt's words.
 */
export function liveMigratable(volumes: readonly Volume[], statuses: readonly VolumeStatus[]): Condition {
  for (const volume of volumes) {
    const claim = claimOf(volume);
    if (!claim) continue;
    const status = statuses.find((s) => s.name === volume.name);
    const message = !status?.persistentVolumeClaimInfo
      ? `cannot migrate VMI: Unable to determine if PVC ${claim} is shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)`
      : !status.persistentVolumeClaimInfo.accessModes?.includes('ReadWriteMany')
        ? `cannot migrate VMI: PVC ${claim} is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)`
        : undefined;
    if (message) return { type: 'LiveMigratable', status: 'False', reason: 'DisksNotLiveMigratable', message };
  }
  return { type: 'LiveMigratable', status: 'True' };
}

function wantsRunning(vm: VirtualMachine): boolean {
  const strategy = vm.spec?.runStrategy;
  if (strategy !== undefined) return strategy === 'Always' || strategy === 'RerunOnFailure' || strategy === 'Once';
  return vm.spec?.running === true;
}

const byName = <T extends { name: string }>(list: readonly T[]): T[] => [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

export class VirtController {
  readonly #o: VirtOptions;
  /** Every domain this controller started or found running for a VM (stop() destroys them). */
  readonly domains = new Set<string>();
  /** When the old volume of a swap left the VMI, per namespace/vm/volume (the swap's first step). */
  readonly #ejected = new Map<string, number>();

  constructor(options: VirtOptions) {
    this.#o = options;
  }

  /** Where a domain of that name runs now (asks every host), or undefined. */
  async findDomain(name: string): Promise<{ node: StandInNode; domain: DomainRef } | undefined> {
    for (const node of this.#o.nodes) {
      const domain = await (await this.#o.libvirt(node.name)).lookupDomain(name);
      if (domain && domain.id > 0) {
        this.domains.add(name);
        return { node, domain };
      }
    }
    return undefined;
  }

  /** Level-based: make the VM's VMI and domain match the VM; returns a requeue delay mid-swap. */
  reconcile(namespace: string, name: string): Promise<number | undefined> {
    return this.#o.locks.run(`${namespace}/${name}`, () => this.#reconcile(namespace, name));
  }

  async #reconcile(namespace: string, name: string): Promise<number | undefined> {
    const { client, log } = this.#o;
    const vmPath = objectPath(VMS, namespace, name);
    const vmiPath = objectPath(VMIS, namespace, name);
    const vm = await client.getOrUndefined<VirtualMachine>(vmPath);
    let vmi = await client.getOrUndefined<VirtualMachineInstance>(vmiPath);
    const dom = domainName(namespace, name);

    if (!vm || vm.metadata.deletionTimestamp || !wantsRunning(vm)) {
      for (const node of this.#o.nodes) if (await destroyDomain(await this.#o.libvirt(node.name), dom)) log(`destroyed domain ${dom} on ${node.name} (VM ${namespace}/${name} ${vm ? 'stopped' : 'deleted'})`);
      if (vmi) {
        await client.delete(vmiPath);
        log(`deleted VMI ${namespace}/${name}`);
      }
      if (vm && !vm.metadata.deletionTimestamp) {
        await patchStatus(client, vmPath, vm.status, {
          created: false,
          ready: false,
          printableStatus: 'Stopped',
          conditions: mergeConditions(vm.status?.conditions, [{ type: 'Ready', status: 'False', reason: 'VMINotExists', message: 'VMI does not exist' }]),
        });
      }
      return;
    }

    // A VMI left from an earlier VM of the same name is not ours: delete it, the next round creates ours.
    if (vmi && !vmi.metadata.ownerReferences?.some((owner) => owner.uid === vm.metadata.uid)) {
      await client.delete(vmiPath);
      log(`deleted VMI ${namespace}/${name}, owned by an earlier VM of that name`);
      vmi = undefined;
    }
    if (!vmi) {
      vmi = await client.create<VirtualMachineInstance>(`/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachineinstances`, {
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachineInstance',
        metadata: {
          name,
          namespace,
          labels: { ...(vm.spec?.template?.metadata?.labels ?? {}), 'kubevirt.io/created-by': vm.metadata.uid },
          ...(vm.spec?.template?.metadata?.annotations ? { annotations: vm.spec.template.metadata.annotations } : {}),
          ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name, uid: vm.metadata.uid, controller: true, blockOwnerDeletion: true }],
        },
        spec: structuredClone(vm.spec?.template?.spec ?? {}),
      });
      log(`created VMI ${namespace}/${name}`);
    }

    let running = await this.findDomain(dom);
    if (!running) {
      // A volume that is not hotpluggable is part of the launcher pod in KubeVirt: the VMI waits
      // (Pending, VM Provisioning) until its DataVolume is imported. A hotpluggable one holds the
      // start too: virt-handler starts the domain only once every hotplug volume is mounted into
      // the pod (the VMI stays Scheduled; seen on the local cluster).
      const unimported = (hotpluggable: boolean) =>
        cdromDisks(vmi!.spec)
          .map((disk) => vmi!.spec.volumes?.find((v) => v.name === disk.name))
          .filter((v): v is Volume => v !== undefined && claimOf(v) !== undefined && isHotpluggable(v) === hotpluggable && !this.#o.importedFile(this.#dataVolumeOf(namespace, v)));
      const waiting = unimported(false);
      if (waiting.length > 0) {
        if (vmi.status?.phase !== 'Pending') log(`VMI ${namespace}/${name} Pending: waiting for DataVolume(s) ${waiting.map(claimOf).join(', ')}`);
        await this.#setPhase(vmi, { phase: 'Pending' });
        await patchStatus(client, vmPath, vm.status, { created: true, ready: false, printableStatus: 'Provisioning' });
        return;
      }
      const node = this.#o.nodes.find((n) => n.name === vmi!.status?.nodeName) ?? this.#schedule(vmi.spec.nodeSelector);
      if (vmi.status?.nodeName !== node.name) {
        await this.#setPhase(vmi, { phase: 'Scheduled', nodeName: node.name });
        vmi = await client.get<VirtualMachineInstance>(vmiPath);
      }
      const hotplugWaiting = unimported(true);
      if (hotplugWaiting.length > 0) {
        log(`VMI ${namespace}/${name} Scheduled on ${node.name}: the domain waits for hotplug volume(s) ${hotplugWaiting.map(claimOf).join(', ')}`);
        await patchStatus(client, vmPath, vm.status, { created: true, ready: false, printableStatus: 'Starting' });
        return;
      }
      const cdroms = cdromDisks(vmi.spec).map((disk) => {
        const source = this.#o.importedFile(this.#dataVolumeOf(namespace, vmi!.spec.volumes?.find((v) => v.name === disk.name)));
        return { target: disk.target, ...(source ? { source } : {}) };
      });
      const xml = this.#o.domainXml({ ...this.#o.domainOptions, name: dom, cdroms });
      this.domains.add(dom);
      const domain = await createDomain(await this.#o.libvirt(node.name), xml);
      log(`started domain ${dom} on ${node.name} (${node.host.name}) with ${cdroms.length} CD-ROM(s): ${cdroms.map((c) => `${c.target}=${c.source ?? 'empty'}`).join(', ') || 'none'}`);
      running = { node, domain };
    } else if (vmi.status?.nodeName && vmi.status.nodeName !== running.node.name) {
      // The domain runs elsewhere than the VMI says (e.g. a status write lost after a migration): follow the domain.
      log(`VMI ${namespace}/${name} says node ${vmi.status.nodeName}, its domain runs on ${running.node.name}: correcting`);
    }
    if (vmi.metadata.labels?.['kubevirt.io/nodeName'] !== running.node.name) {
      await client.mergePatch(vmiPath, { metadata: { labels: { 'kubevirt.io/nodeName': running.node.name } } });
    }

    const restart: string[] = [];
    const refused: string[] = [];
    const { statuses: volumeStatus, requeueMs } = await this.#syncVolumes(vm, vmi, running, restart, refused);
    vmi = await client.get<VirtualMachineInstance>(vmiPath);
    await this.#setPhase(vmi, {
      phase: 'Running',
      nodeName: running.node.name,
      migrationMethod: 'LiveMigration',
      conditions: mergeConditions(vmi.status?.conditions, [{ type: 'Ready', status: 'True' }, liveMigratable(vmi.spec.volumes ?? [], volumeStatus)]),
      volumeStatus,
    });
    const conditions: Condition[] = [{ type: 'Ready', status: 'True' }];
    if (refused.length > 0) {
      // As KubeVirt's VM controller: its VMI patch was refused, the error lands in Failure.
      conditions.push({ type: 'Failure', status: 'True', reason: 'HotPlugVolumeError', message: refused[0]! });
      if (!vm.status?.conditions?.some((c) => c.type === 'Failure')) log(`VM ${namespace}/${name}: Failure HotPlugVolumeError (${refused[0]})`);
    }
    if (restart.length > 0) {
      conditions.push({ type: 'RestartRequired', status: 'True', message: restart[0]! });
      if (!vm.status?.conditions?.some((c) => c.type === 'RestartRequired')) log(`VM ${namespace}/${name}: RestartRequired (${restart[0]})`);
    }
    await patchStatus(client, vmPath, vm.status, {
      created: true,
      ready: true,
      printableStatus: 'Running',
      observedGeneration: vm.metadata.generation,
      desiredGeneration: vm.metadata.generation,
      conditions: mergeConditions(vm.status?.conditions, conditions),
    });
    return requeueMs;
  }

  #schedule(selector: Record<string, string> | undefined): StandInNode {
    return this.#o.nodes.find((node) => matches(node.labels, selector)) ?? this.#o.nodes[0]!;
  }

  #dataVolumeOf(namespace: string, volume: Volume | undefined): DataVolume | undefined {
    const claim = claimOf(volume);
    return claim ? this.#o.dataVolume(namespace, claim) : undefined;
  }

  /** VMI status write with the phase's transition timestamp, as virt-controller keeps them. */
  async #setPhase(vmi: VirtualMachineInstance, wanted: Record<string, unknown>): Promise<void> {
    const status = vmi.status ?? {};
    const phases = status.phaseTransitionTimestamps ?? [];
    const phase = wanted['phase'] as string | undefined;
    const withPhase = phase && status.phase !== phase ? { ...wanted, phaseTransitionTimestamps: [...phases, { phase, phaseTransitionTimestamp: now() }] } : wanted;
    if (await patchStatus(this.#o.client, objectPath(VMIS, vmi.metadata.namespace!, vmi.metadata.name), status, withPhase)) {
      if (phase && status.phase !== phase) this.#o.log(`VMI ${vmi.metadata.namespace}/${vmi.metadata.name} phase ${phase} on ${String(wanted['nodeName'] ?? status.nodeName)}`);
    }
  }

  /**
   * Declarative hotplug of CD-ROM volumes: the VMI's volumes of its (boot-time) CD-ROM disks
   * follow the VM template, and each drive's medium follows its volume. Returns volumeStatus.
   */
  async #syncVolumes(vm: VirtualMachine, vmi: VirtualMachineInstance, running: { node: StandInNode; domain: DomainRef }, restart: string[], refused: string[]): Promise<{ statuses: VolumeStatus[]; requeueMs?: number }> {
    const { client, log } = this.#o;
    const namespace = vmi.metadata.namespace!;
    const name = vmi.metadata.name;
    const disks = cdromDisks(vmi.spec);
    const template = vm.spec?.template?.spec;
    const templateDisks = cdromDisks(template);
    const diskNames = new Set(disks.map((d) => d.name));
    if (templateDisks.length !== disks.length || templateDisks.some((d, i) => d.name !== disks[i]!.name)) restart.push(NON_LIVE_UPDATABLE); // a CD-ROM disk added, removed or reordered
    // As KubeVirt's VM controller (pkg/storage/hotplug HandleDeclarativeVolumes and
    // validLiveUpdateVolumes): only volumes marked hotpluggable (dataVolume.hotpluggable /
    // persistentVolumeClaim.hotpluggable) are added, changed or removed on a running VMI; any other
    // volume change waits for a restart (RestartRequired). The gate is ignored when the older
    // HotplugVolumes gate is on too, as in KubeVirt.
    const gates = this.#o.featureGates();
    const declarative = gates.includes(DECLARATIVE_HOTPLUG) && !gates.includes('HotplugVolumes');
    const vmiVolumes = vmi.spec.volumes ?? [];
    // KubeVirt's VM controller patches the VMI's volumes and disks at once, and adds the disk of a
    // new hotpluggable volume too; its VMI webhook refuses a hot-plugged CD-ROM disk, so the whole
    // patch fails (every other volume change with it) until the VM restarts. Seen on real KubeVirt:
    // test/e2e/kubevirt/delivery.e2e.ts.
    const newCdrom = declarative ? (template?.volumes ?? []).find((v) => isHotpluggable(v) && !diskNames.has(v.name) && templateDisks.some((d) => d.name === v.name)) : undefined;
    if (newCdrom) {
      refused.push(`Error encountered while handling declarative hotplug volumes: admission webhook "virtualmachineinstances-update-validator.kubevirt.io" denied the request: Hotplug configuration for [${newCdrom.name}] requires diskDevice of type 'disk' or 'lun' to be used.`);
    }
    const wantedVolumes = vmiVolumes.filter((v) => !diskNames.has(v.name));
    const swapStepMs = this.#o.swapStepMs ?? 1500;
    let requeueMs: number | undefined;
    for (const disk of disks) {
      const current = vmiVolumes.find((v) => v.name === disk.name);
      const wanted = template?.volumes?.find((v) => v.name === disk.name);
      const same = canonical(current ?? null) === canonical(wanted ?? null);
      let keep = current;
      const swap = `${namespace}/${name}/${disk.name}`;
      const ejectedAt = this.#ejected.get(swap);
      if (!same && newCdrom) {
        // refused with the rest of the patch: nothing changes
      } else if (!same) {
        const live = declarative && (current === undefined || isHotpluggable(current)) && (wanted === undefined || isHotpluggable(wanted));
        if (!live) restart.push(NON_LIVE_UPDATABLE);
        else if (current && wanted && claimOf(current) !== claimOf(wanted)) {
          // First step of a swap: the old volume leaves (its medium is ejected).
          keep = undefined;
          this.#ejected.set(swap, Date.now());
          requeueMs = Math.min(requeueMs ?? Infinity, swapStepMs);
        } else if (!current && wanted && ejectedAt !== undefined && Date.now() - ejectedAt < swapStepMs) {
          // Its attachment pod is not replaced yet: the new volume waits.
          requeueMs = Math.min(requeueMs ?? Infinity, swapStepMs - (Date.now() - ejectedAt));
        } else {
          keep = wanted;
          this.#ejected.delete(swap);
        }
      }
      if (keep) wantedVolumes.push(keep);
    }
    let volumes = vmiVolumes;
    if (canonical(byName(wantedVolumes)) !== canonical(byName(volumes))) {
      await client.mergePatch(objectPath(VMIS, namespace, name), { spec: { volumes: wantedVolumes } });
      log(`VMI ${namespace}/${name}: volumes now ${wantedVolumes.map((v) => `${v.name}=${claimOf(v) ?? Object.keys(v).find((k) => k !== 'name') ?? '?'}`).join(', ') || 'none'}`);
      volumes = wantedVolumes;
    }

    const libvirt = await this.#o.libvirt(running.node.name);
    const drives = cdromsOf(await libvirt.domainXml(running.domain));
    const statuses: VolumeStatus[] = [];
    for (const disk of disks) {
      const volume = volumes.find((v) => v.name === disk.name);
      const claim = claimOf(volume);
      const dv = claim ? this.#o.dataVolume(namespace, claim) : undefined;
      const wanted = this.#o.importedFile(dv);
      const current = drives.find((d) => d.target === disk.target)?.source;
      if ((wanted ?? '') !== (current ?? '')) {
        const started = Date.now();
        await libvirt.updateDevice(running.domain, cdromXml(disk.target, 'sata', wanted));
        log(`domain ${domainName(namespace, name)} on ${running.node.name}: ${disk.target} ${current ?? 'empty'} -> ${wanted ?? 'empty'} (${Date.now() - started} ms)`);
      }
      if (!volume || !claim) continue;
      const hotpluggable = isHotpluggable(volume);
      const ready = wanted !== undefined;
      statuses.push({
        name: volume.name,
        target: disk.target,
        phase: ready ? 'Ready' : 'Pending',
        reason: ready ? 'VolumeReady' : dv ? 'PVCNotReady' : 'FailedPvcNotFound',
        message: ready ? `Successfully attach hotplugged volume ${volume.name} to VM` : dv ? `DataVolume ${claim} is in phase ${dv.status?.phase ?? 'Pending'}` : `PVC ${claim} not found`,
        ...(hotpluggable ? { hotplugVolume: {} } : {}),
        persistentVolumeClaimInfo: { claimName: claim, accessModes: accessModesOf(dv) },
      });
    }
    return { statuses: byName(statuses), ...(requeueMs !== undefined ? { requeueMs } : {}) };
  }

  /** Destroys every domain this controller started or adopted, on every host (stop()). */
  async destroyAll(): Promise<void> {
    const names = [...this.domains];
    for (const node of this.#o.nodes) {
      for (const name of names) {
        try {
          if (await destroyDomain(await this.#o.libvirt(node.name), name)) this.#o.log(`destroyed domain ${name} on ${node.name} (stand-in stopping)`);
        } catch (error: unknown) {
          this.#o.log(`could not destroy domain ${name} on ${node.name}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
  }

  /** Creates or updates the Node objects with their labels. */
  async ensureNodes(): Promise<void> {
    for (const node of this.#o.nodes) {
      const body = { apiVersion: 'v1', kind: 'Node', metadata: { name: node.name, labels: { 'kubernetes.io/hostname': node.name, ...(node.labels ?? {}) } } };
      await this.#o.client.apply(objectPath(NODES, undefined, node.name), body, 'kubevirt-standin');
      await this.#o.client.mergePatch(`${objectPath(NODES, undefined, node.name)}/status`, {
        status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'test-only stand-in node', lastHeartbeatTime: now(), lastTransitionTime: now() }] },
      });
    }
  }
}
