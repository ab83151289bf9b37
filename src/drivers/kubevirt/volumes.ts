// The KubeVirt driver's decisions, as pure functions: which DataVolume carries each layer image,
// how the VirtualMachine's disk and volume lists change, and what the VMI reports back.
//
// One CD-ROM per layer: disk `ctx-<layer>` with `cdrom: {bus: sata}`, volume of the same name backed
// by the DataVolume of the layer's current image. A swap changes only `dataVolume.name` (KubeVirt's
// declarative hotplug). KubeVirt's CRD leaves `disks` and `volumes` as atomic lists for server-side
// apply, so no field manager can own single entries: the driver keeps every entry it does not
// manage exactly as it is, adds or updates its own, and records which names are its own in an
// annotation (a map key, which server-side apply does track per key).
import { createHash } from 'node:crypto';
import type { V1beta1DataVolume } from '@kubevirt-ui-ext/kubevirt-api/containerized-data-importer';
import type { V1Disk, V1VirtualMachine, V1VirtualMachineInstance, V1Volume } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { hexOf } from '../../images/layer-image.js';
import type { DesiredLayer, VMTarget } from '../driver.js';

export const MANAGED_VOLUMES_ANNOTATION = 'recontext.dev/volumes';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'recontext';
export const LABEL_VM_CONTEXT = 'recontext.dev/vmcontext';
export const LABEL_VM = 'recontext.dev/vm';
export const LABEL_LAYER = 'recontext.dev/layer';
export const LABEL_DIGEST = 'recontext.dev/digest';
/** On a DataVolume made ahead of a migration: the node it was rendered for (the migration's target). */
export const PREPARED_FOR_ANNOTATION = 'recontext.dev/prepared-for-node';

/** A layer as the VM should carry it. */
export interface LayerVolume {
  readonly layer: string;
  readonly digest: string;
  /** Disk and volume name in the VM. */
  readonly volume: string;
  /** DataVolume (and PVC) holding this version of the image. */
  readonly dataVolume: string;
}

/** A DNS label (≤ 63: a-z 0-9 -) from parts; too long or changed by cleaning → shortened + hash. */
export function dnsLabel(parts: readonly string[], suffix = ''): string {
  const raw = parts.join('-');
  const clean = raw.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  const room = 63 - (suffix ? suffix.length + 1 : 0);
  const fits = clean === raw && clean.length <= room;
  const hash = createHash('sha256').update(raw).digest('hex').slice(0, 8);
  const body = fits ? clean : `${clean.slice(0, room - 9).replace(/-+$/, '')}-${hash}`;
  return suffix ? `${body}-${suffix}` : body;
}

export function layerVolume(target: VMTarget, layer: Pick<DesiredLayer, 'name' | 'digest'>): LayerVolume {
  const hex = hexOf(layer.digest);
  return {
    layer: layer.name,
    digest: layer.digest,
    volume: volumeNameOf(layer.name),
    dataVolume: dnsLabel([target.vmContext, layer.name], hex.slice(0, 12)),
  };
}

export interface DataVolumeOptions {
  readonly url: string;
  readonly imageBytes: number;
  readonly storageClassName?: string;
  /**
   * Unset: CDI takes it from the storage class's profile. KubeVirt live-migrates only VMs whose
   * volumes are shared (ReadWriteMany), context CD-ROMs included.
   */
  readonly accessMode?: 'ReadWriteMany' | 'ReadWriteOnce' | 'ReadOnlyMany';
  /** Smallest volume to ask for (provisioners round up anyway). Default 64 MiB. */
  readonly minBytes?: number;
  /** Imported ahead of a migration to this node (kept while that migration is under way). */
  readonly preparedFor?: string;
}

const MIB = 1024 * 1024;

/** The DataVolume that imports one layer image for one VMContext. */
export function dataVolumeManifest(target: VMTarget, layer: LayerVolume, options: DataVolumeOptions): V1beta1DataVolume {
  // CDI converts the ISO into disk.img on a file system with ~5.5 % overhead: leave room.
  const bytes = Math.max(options.minBytes ?? 64 * MIB, Math.ceil((options.imageBytes * 1.1) / MIB) * MIB + MIB);
  return {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: {
      name: layer.dataVolume,
      namespace: target.namespace,
      labels: {
        [LABEL_MANAGED_BY]: MANAGED_BY,
        [LABEL_VM_CONTEXT]: dnsLabel([target.vmContext]),
        ...(target.kubevirt ? { [LABEL_VM]: dnsLabel([target.kubevirt.name]) } : {}),
        [LABEL_LAYER]: dnsLabel([layer.layer]),
        [LABEL_DIGEST]: hexOf(layer.digest).slice(0, 63),
      },
      annotations: {
        // Import now, not when a pod first uses the claim (WaitForFirstConsumer storage classes),
        // and keep the DataVolume after the import: the VM's volume refers to it by name.
        'cdi.kubevirt.io/storage.bind.immediate.requested': 'true',
        'cdi.kubevirt.io/storage.deleteAfterCompletion': 'false',
        ...(options.preparedFor ? { [PREPARED_FOR_ANNOTATION]: options.preparedFor } : {}),
      },
      ...(target.uid ? { ownerReferences: [{ apiVersion: 'recontext.dev/v1alpha1', kind: 'VMContext', name: target.vmContext, uid: target.uid, blockOwnerDeletion: false }] } : {}),
    },
    spec: {
      source: { http: { url: options.url } },
      storage: {
        ...(options.accessMode ? { accessModes: [options.accessMode] } : {}),
        resources: { requests: { storage: `${bytes / MIB}Mi` } },
        ...(options.storageClassName ? { storageClassName: options.storageClassName } : {}),
      },
    },
  } as V1beta1DataVolume;
}

export type ImportState = { readonly state: 'done' } | { readonly state: 'failed' | 'importing'; readonly message: string };

/** Where CDI is with a DataVolume. CDI retries failing imports forever: say why it is not done. */
export function importState(dv: V1beta1DataVolume | undefined): ImportState {
  if (!dv) return { state: 'importing', message: 'DataVolume not created yet' };
  const phase = dv.status?.phase;
  if (phase === 'Succeeded') return { state: 'done' };
  const running = dv.status?.conditions?.find((c) => c.type === 'Running');
  const detail = running?.status === 'False' && running.message ? `: ${running.message}` : '';
  if (phase === 'Failed') return { state: 'failed', message: `DataVolume ${dv.metadata?.name} failed${detail}` };
  const restarts = dv.status?.restartCount ? ` (${dv.status.restartCount} restarts)` : '';
  return { state: 'importing', message: `DataVolume ${dv.metadata?.name} is ${phase ?? 'pending'}${dv.status?.progress ? ` ${dv.status.progress}` : ''}${restarts}${detail}` };
}

export interface VMLists {
  readonly disks: readonly V1Disk[];
  readonly volumes: readonly V1Volume[];
  /** Names of the entries this driver manages (from the annotation). */
  readonly managed: readonly string[];
}

export function vmListsOf(vm: V1VirtualMachine): VMLists {
  const spec = vm.spec?.template?.spec;
  const annotation = vm.metadata?.annotations?.[MANAGED_VOLUMES_ANNOTATION] ?? '';
  return {
    disks: spec?.domain?.devices?.disks ?? [],
    volumes: spec?.volumes ?? [],
    managed: annotation.split(',').filter(Boolean),
  };
}

/** A name the driver wants is taken by an entry it does not manage. */
export class VolumeNameConflict extends Error {
  override readonly name = 'VolumeNameConflict';
}

/**
 * The lists with exactly `desired` as this driver's entries, plus empty drives for `reserved`
 * (disk names of layers that cannot be rendered yet): entries of others untouched and in place; a
 * managed disk stays where it is (its position is its SATA slot at boot); new ones last. A CD-ROM
 * disk someone declared under a name this driver wants (an empty drive in the VM's manifest, made
 * for it) is adopted; any other entry of that name is a conflict.
 */
export function mergeLists(current: VMLists, desired: readonly LayerVolume[], reserved: readonly string[] = []): VMLists {
  const managed = new Set(current.managed);
  const wanted = new Map<string, LayerVolume | undefined>(reserved.map((name) => [name, undefined]));
  for (const d of desired) wanted.set(d.volume, d);
  for (const name of wanted.keys()) {
    if (managed.has(name)) continue;
    const disk = current.disks.find((d) => d.name === name);
    if (current.volumes.some((v) => v.name === name) || (disk && !disk.cdrom)) {
      throw new VolumeNameConflict(`the VM already has a disk or volume named ${name} that recontext does not manage; rename it`);
    }
    if (disk) managed.add(name); // adopted
  }
  const disks: V1Disk[] = [];
  for (const disk of current.disks) {
    if (!managed.has(disk.name)) disks.push(disk);
    else if (wanted.has(disk.name)) disks.push(contextDisk(disk.name));
  }
  for (const name of wanted.keys()) if (!disks.some((d) => d.name === name)) disks.push(contextDisk(name));
  const volumes: V1Volume[] = current.volumes.filter((v) => !managed.has(v.name));
  for (const d of desired) volumes.push({ name: d.volume, dataVolume: { name: d.dataVolume, hotpluggable: true } });
  return { disks, volumes, managed: [...wanted.keys()].sort() };
}

/** The disk and volume name of a layer in the VM. */
export function volumeNameOf(layer: string): string {
  return dnsLabel(['ctx', layer]);
}

function contextDisk(name: string): V1Disk {
  return { name, cdrom: { bus: 'sata' } };
}

export function sameLists(a: VMLists, b: VMLists): boolean {
  return JSON.stringify([a.disks, a.volumes, a.managed]) === JSON.stringify([b.disks, b.volumes, b.managed]);
}

/**
 * The server-side apply body: only the two lists and the annotation. resourceVersion makes it
 * conditional: a list someone changed since we read it is not overwritten (409, read again).
 */
export function applyBody(vm: V1VirtualMachine, lists: VMLists): object {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: {
      name: vm.metadata?.name,
      namespace: vm.metadata?.namespace,
      resourceVersion: vm.metadata?.resourceVersion,
      annotations: { [MANAGED_VOLUMES_ANNOTATION]: lists.managed.join(',') },
    },
    spec: { template: { spec: { domain: { devices: { disks: lists.disks } }, volumes: lists.volumes } } },
  };
}

/** The desired volumes split by whether the VM can take them now. */
export interface DriveSplit {
  /** Into the VM spec now: the VM is stopped, or its running VMI has the drive. */
  readonly now: readonly LayerVolume[];
  /** Layers whose drive the running VMI lacks: an empty drive in the spec, the volume after a restart. */
  readonly afterRestart: readonly LayerVolume[];
}

/**
 * KubeVirt hot-plugs a volume only into a CD-ROM drive the running VMI already has: its VMI
 * update webhook refuses a hot-plugged CD-ROM disk ("requires diskDevice of type 'disk' or
 * 'lun'"), and because the VM controller patches the VMI's volumes and disks all at once, one
 * refused patch blocks every later hotplug of that VM (swaps after a migration too) until it
 * restarts. A drive without a volume is no hotplug at all (the VM controller skips it), so a layer
 * added to a running VM gets an empty drive in the spec and its volume once a restart has
 * created the drive. `vmi`: the running instance, undefined when the VM is stopped.
 */
export function splitByDrive(desired: readonly LayerVolume[], vmi: V1VirtualMachineInstance | undefined): DriveSplit {
  if (!vmi) return { now: desired, afterRestart: [] };
  const drives = new Set((vmi.spec?.domain?.devices?.disks ?? []).filter((d) => d.cdrom).map((d) => d.name));
  return { now: desired.filter((d) => drives.has(d.volume)), afterRestart: desired.filter((d) => !drives.has(d.volume)) };
}

export type VolumeReadiness = { readonly ready: true } | { readonly ready: false; readonly waiting: readonly string[] };

/** Whether the running VMI reports every desired volume Ready with the desired DataVolume. */
export function volumeReadiness(vmi: V1VirtualMachineInstance, desired: readonly LayerVolume[]): VolumeReadiness {
  const statuses = new Map((vmi.status?.volumeStatus ?? []).map((s) => [s.name, s]));
  const waiting = desired.flatMap((d) => {
    const s = statuses.get(d.volume);
    if (s?.phase === 'Ready' && s.persistentVolumeClaimInfo?.claimName === d.dataVolume) return [];
    return [`${d.volume}: ${s ? `${s.phase ?? 'no phase'}${s.reason ? ` (${s.reason})` : ''}${s.persistentVolumeClaimInfo?.claimName !== d.dataVolume ? `, still ${s.persistentVolumeClaimInfo?.claimName ?? 'empty'}` : ''}` : 'not reported yet'}`];
  });
  return waiting.length === 0 ? { ready: true } : { ready: false, waiting };
}

/**
 * DataVolumes of this VMContext that neither the desired state, the VM spec nor the VMI still use,
 * and that were not made for `incoming`, the target of a migration still under way (incomingNode:
 * those are imported while KubeVirt copies memory, to be swapped in when it completes).
 */
export function staleDataVolumes(owned: readonly V1beta1DataVolume[], desired: readonly LayerVolume[], vm: V1VirtualMachine | undefined, vmi: V1VirtualMachineInstance | undefined, incoming: string | undefined): string[] {
  const inUse = new Set<string>(desired.map((d) => d.dataVolume));
  for (const v of vm?.spec?.template?.spec?.volumes ?? []) if (v.dataVolume?.name) inUse.add(v.dataVolume.name);
  for (const v of vmi?.spec?.volumes ?? []) if (v.dataVolume?.name) inUse.add(v.dataVolume.name);
  for (const s of vmi?.status?.volumeStatus ?? []) if (s.persistentVolumeClaimInfo?.claimName) inUse.add(s.persistentVolumeClaimInfo.claimName);
  const prepared = (dv: V1beta1DataVolume) => incoming !== undefined && dv.metadata?.annotations?.[PREPARED_FOR_ANNOTATION] === incoming;
  return owned.filter((dv) => !prepared(dv)).map((dv) => dv.metadata?.name ?? '').filter((name) => name && !inUse.has(name));
}
