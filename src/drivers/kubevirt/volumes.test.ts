import type { V1beta1DataVolume } from '@kubevirt-ui-ext/kubevirt-api/containerized-data-importer';
import type { V1VirtualMachine, V1VirtualMachineInstance } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { describe, expect, it } from 'vitest';
import { applyBody, dataVolumeManifest, dnsLabel, importState, layerVolume, mergeLists, MANAGED_VOLUMES_ANNOTATION, PREPARED_FOR_ANNOTATION, sameLists, splitByDrive, staleDataVolumes, VolumeNameConflict, volumeReadiness, vmListsOf, type LayerVolume } from './volumes.js';

const target = { namespace: 'tenant', vmContext: 'gluster-client-1', uid: 'uid-1', kubevirt: { name: 'gluster-client-1' } };
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const site = layerVolume(target, { name: 'site-cache', digest: digest('a') });
const law = layerVolume(target, { name: 'data-residency', digest: digest('b') });

function vm(disks: object[], volumes: object[], managed?: string): V1VirtualMachine {
  return {
    metadata: { name: 'gluster-client-1', namespace: 'tenant', resourceVersion: '42', ...(managed !== undefined ? { annotations: { [MANAGED_VOLUMES_ANNOTATION]: managed } } : {}) },
    spec: { template: { spec: { domain: { devices: { disks } }, volumes } } },
  } as V1VirtualMachine;
}
const rootDisk = { name: 'rootdisk', disk: { bus: 'virtio' } };
const rootVolume = { name: 'rootdisk', containerDisk: { image: 'quay.io/x/y:1' } };

describe('names', () => {
  it('keeps short clean names and shortens the rest with a hash, always a DNS label', () => {
    expect(dnsLabel(['ctx', 'site-cache'])).toBe('ctx-site-cache');
    const long = dnsLabel(['ctx', 'x'.repeat(80)]);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    expect(dnsLabel(['ctx', 'a.b'])).not.toBe(dnsLabel(['ctx', 'a-b'])); // cleaning never merges two names
    expect(dnsLabel(['vm', 'y'.repeat(70)], 'abcdef012345')).toMatch(/^[a-z0-9-]{1,50}-abcdef012345$/);
  });

  it('gives every image version its own DataVolume and each layer one volume', () => {
    const v2 = layerVolume(target, { name: 'site-cache', digest: digest('c') });
    expect(site.volume).toBe(v2.volume);
    expect(site.dataVolume).not.toBe(v2.dataVolume);
    expect(site.dataVolume).toBe('gluster-client-1-site-cache-aaaaaaaaaaaa');
  });
});

describe('dataVolumeManifest', () => {
  it('imports the signed URL into a small volume owned by the VMContext', () => {
    const dv = dataVolumeManifest(target, site, { url: 'http://img/x.iso?sig=s', imageBytes: 300_000 }) as V1beta1DataVolume & { spec: { storage: { resources: { requests: { storage: string } } } } };
    expect(dv.spec.source?.http?.url).toBe('http://img/x.iso?sig=s');
    expect(dv.spec.storage.resources.requests.storage).toBe('64Mi');
    expect(dv.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'VMContext', uid: 'uid-1' });
    expect(dv.metadata?.labels).toMatchObject({ 'recontext.dev/vmcontext': 'gluster-client-1', 'recontext.dev/vm': 'gluster-client-1', 'app.kubernetes.io/managed-by': 'recontext' });
    const big = dataVolumeManifest(target, site, { url: 'u', imageBytes: 200 * 1024 * 1024, storageClassName: 'fast' }) as typeof dv & { spec: { storage: { storageClassName: string } } };
    expect(big.spec.storage.resources.requests.storage).toBe('222Mi');
    expect(big.spec.storage.storageClassName).toBe('fast');
  });
});

describe('mergeLists', () => {
  it('adds its CD-ROMs after the entries of others, which stay as they are', () => {
    const merged = mergeLists(vmListsOf(vm([rootDisk], [rootVolume])), [site, law]);
    expect(merged.disks).toEqual([rootDisk, { name: site.volume, cdrom: { bus: 'sata' } }, { name: law.volume, cdrom: { bus: 'sata' } }]);
    expect(merged.volumes).toEqual([rootVolume, { name: site.volume, dataVolume: { name: site.dataVolume, hotpluggable: true } }, { name: law.volume, dataVolume: { name: law.dataVolume, hotpluggable: true } }]);
    expect(merged.managed).toEqual([law.volume, site.volume].sort());
  });

  it('swaps by changing only the DataVolume name; a disk keeps its slot', () => {
    const before = mergeLists(vmListsOf(vm([rootDisk], [rootVolume])), [site, law]);
    const current = vmListsOf(vm([...before.disks, { name: 'late', disk: {} }], [...before.volumes, { name: 'late', emptyDisk: { capacity: '1Gi' } }], before.managed.join(',')));
    const next = layerVolume(target, { name: 'site-cache', digest: digest('d') });
    const merged = mergeLists(current, [next, law]);
    expect(merged.disks.map((d) => d.name)).toEqual(['rootdisk', site.volume, law.volume, 'late']);
    expect(merged.volumes.find((v) => v.name === site.volume)?.dataVolume?.name).toBe(next.dataVolume);
    expect(merged.volumes.map((v) => v.name)).toEqual(['rootdisk', 'late', site.volume, law.volume]);
  });

  it('removes its entries for layers no longer wanted, and only those', () => {
    const before = mergeLists(vmListsOf(vm([rootDisk], [rootVolume])), [site, law]);
    const merged = mergeLists(vmListsOf(vm(before.disks as object[], before.volumes as object[], before.managed.join(','))), [law]);
    expect(merged.disks.map((d) => d.name)).toEqual(['rootdisk', law.volume]);
    expect(merged.volumes.map((v) => v.name)).toEqual(['rootdisk', law.volume]);
    expect(merged.managed).toEqual([law.volume]);
    expect(mergeLists(vmListsOf(vm(before.disks as object[], before.volumes as object[], before.managed.join(','))), []).disks).toEqual([rootDisk]);
  });

  it('is idempotent', () => {
    const once = mergeLists(vmListsOf(vm([rootDisk], [rootVolume])), [site]);
    const twice = mergeLists(vmListsOf(vm(once.disks as object[], once.volumes as object[], once.managed.join(','))), [site]);
    expect(sameLists(once, twice)).toBe(true);
  });

  it('makes empty drives for layers it cannot render yet, and fills them later in place', () => {
    const reserved = mergeLists(vmListsOf(vm([rootDisk], [rootVolume])), [], [site.volume, law.volume]);
    expect(reserved.disks.map((d) => d.name)).toEqual(['rootdisk', site.volume, law.volume]);
    expect(reserved.volumes).toEqual([rootVolume]);
    const filled = mergeLists(vmListsOf(vm(reserved.disks as object[], reserved.volumes as object[], reserved.managed.join(','))), [law, site]);
    expect(filled.disks.map((d) => d.name)).toEqual(['rootdisk', site.volume, law.volume]);
    expect(filled.volumes.map((v) => v.name)).toEqual(['rootdisk', law.volume, site.volume]);
  });

  it('adopts an empty CD-ROM drive declared for it in the VM manifest', () => {
    const declared = { name: site.volume, cdrom: { bus: 'sata' } };
    const merged = mergeLists(vmListsOf(vm([rootDisk, declared], [rootVolume])), [site]);
    expect(merged.disks).toEqual([rootDisk, declared]);
    expect(merged.managed).toEqual([site.volume]);
  });

  it('refuses to take over an entry of someone else with the same name', () => {
    expect(() => mergeLists(vmListsOf(vm([{ name: site.volume, disk: {} }], [])), [site])).toThrow(VolumeNameConflict);
    expect(() => mergeLists(vmListsOf(vm([], [{ name: site.volume, emptyDisk: {} }])), [site])).toThrow(VolumeNameConflict);
  });

  it('applies only the two lists and its annotation, conditional on the version read', () => {
    const body = applyBody(vm([], []), mergeLists(vmListsOf(vm([], [])), [site])) as { metadata: Record<string, unknown>; spec: object };
    expect(body.metadata).toEqual({ name: 'gluster-client-1', namespace: 'tenant', resourceVersion: '42', annotations: { [MANAGED_VOLUMES_ANNOTATION]: site.volume } });
    expect(Object.keys(body.spec)).toEqual(['template']);
  });
});

describe('what the platform reports', () => {
  it('reads CDI phases, including an import that keeps failing', () => {
    expect(importState(undefined).state).toBe('importing');
    expect(importState({ metadata: { name: 'dv' }, status: { phase: 'Succeeded' } } as V1beta1DataVolume)).toEqual({ state: 'done' });
    const failing = importState({ metadata: { name: 'dv' }, status: { phase: 'ImportInProgress', restartCount: 3, conditions: [{ type: 'Running', status: 'False', reason: 'Error', message: 'expected status code 200, got 403' }] } } as V1beta1DataVolume);
    expect(failing).toEqual({ state: 'importing', message: 'DataVolume dv is ImportInProgress (3 restarts): expected status code 200, got 403' });
    expect(importState({ metadata: { name: 'dv' }, status: { phase: 'Failed' } } as V1beta1DataVolume).state).toBe('failed');
  });

  it('waits until each volume is Ready with the new DataVolume', () => {
    const vmi = (entries: object[]) => ({ status: { volumeStatus: entries } }) as V1VirtualMachineInstance;
    expect(volumeReadiness(vmi([]), [site])).toEqual({ ready: false, waiting: [`${site.volume}: not reported yet`] });
    const old = { name: site.volume, target: 'sdb', phase: 'Ready', persistentVolumeClaimInfo: { claimName: 'old-dv' } };
    expect(volumeReadiness(vmi([old]), [site])).toEqual({ ready: false, waiting: [`${site.volume}: Ready, still old-dv`] });
    expect(volumeReadiness(vmi([{ ...old, persistentVolumeClaimInfo: { claimName: site.dataVolume } }]), [site])).toEqual({ ready: true });
  });

  it('puts a volume into the spec of a running VM only where its VMI has the drive (KubeVirt cannot hot-plug a CD-ROM drive)', () => {
    const running = (disks: object[]) => ({ spec: { domain: { devices: { disks } } }, status: { phase: 'Running' } }) as unknown as V1VirtualMachineInstance;
    // Stopped: everything goes into the spec, the drives are created at the next start.
    expect(splitByDrive([site, law], undefined)).toEqual({ now: [site, law], afterRestart: [] });
    // Running with a drive for site-cache only (law's layer came later): law waits for a restart.
    const vmi = running([rootDisk, { name: site.volume, cdrom: { bus: 'sata' } }]);
    expect(splitByDrive([site, law], vmi)).toEqual({ now: [site], afterRestart: [law] });
    // Waiting layers get an empty drive, never a volume: a volume without the VMI's drive is what the webhook refuses.
    const split = splitByDrive([site, law], vmi);
    const lists = mergeLists(vmListsOf(vm([rootDisk], [rootVolume])), split.now, split.afterRestart.map((l) => l.volume));
    expect(lists.disks.map((d) => d.name).sort()).toEqual([law.volume, 'rootdisk', site.volume].sort());
    expect(lists.volumes.map((v) => v.name)).toEqual(['rootdisk', site.volume]);
  });

  it('collects DataVolumes only when nothing refers to them any more', () => {
    const owned = ['a', 'b', 'c', 'd'].map((name) => ({ metadata: { name } }) as V1beta1DataVolume);
    const desired = [{ ...site, dataVolume: 'a' }] as LayerVolume[];
    const theVm = vm([], [{ name: 'x', dataVolume: { name: 'b' } }]);
    const vmi = { spec: { volumes: [] }, status: { volumeStatus: [{ name: 'x', target: 'sda', persistentVolumeClaimInfo: { claimName: 'c' } }] } } as unknown as V1VirtualMachineInstance;
    expect(staleDataVolumes(owned, desired, theVm, vmi, undefined)).toEqual(['d']);
  });

  it('keeps what was imported for the target of a migration under way, and only while it is', () => {
    const prepared = { metadata: { name: 'for-b', annotations: { [PREPARED_FOR_ANNOTATION]: 'node-b' } } } as unknown as V1beta1DataVolume;
    const vmi = { spec: { volumes: [] }, status: {} } as unknown as V1VirtualMachineInstance;
    expect(staleDataVolumes([prepared], [], undefined, vmi, 'node-b')).toEqual([]);
    expect(staleDataVolumes([prepared], [], undefined, vmi, 'node-c')).toEqual(['for-b']);
    // No migration under way (failed, or completed without the new node's images being wanted): nothing keeps it.
    expect(staleDataVolumes([prepared], [], undefined, vmi, undefined)).toEqual(['for-b']);
  });
});
