// The test-only KubeVirt/CDI stand-in (test/kubevirt-standin) with real parts: the real
// kube-apiserver with the KubeVirt/CDI CRDs, real libvirtds + a QEMU guest on the two test bed
// hosts, and an HTTP server here serving ISOs built with src/iso. It proves the stand-in behaves
// as the KubeVirt driver will expect: DataVolumes import (bytes equal; basic auth from a Secret;
// a 403 keeps retrying with Running=False/Error), a VM with a CD-ROM disk boots with the imported
// image, changing the volume's dataVolume.name swaps the medium in the running guest (volumeStatus
// Ready), a VirtualMachineInstanceMigration is a real live migration (migrationState completed with
// the migration's uid, nodeName node-b, phases as KubeVirt's), a change after it is applied on the
// target, a new CD-ROM disk only sets RestartRequired, and a deleted VM leaves no domain behind.
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LibvirtClient } from '../../src/drivers/libvirt/client.js';
import { cdromsOf } from '../../src/drivers/libvirt/devices.js';
import { buildIso } from '../../src/iso/index.js';
import { KubeClient } from '../../src/kube/client.js';
import { objectPath } from '../../src/kube/resources.js';
import { controlPlaneSkipReason, startExclusiveControlPlane, useControlPlane, type ControlPlane } from '../controlplane/shared.js';
import { DATA_VOLUMES, KubeVirtStandIn, VMIMS, VMIS, VMS, domainName, installKubeVirtCrds } from '../kubevirt-standin/index.js';
import { guestReads } from '../testbed/agent.js';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';
import { until } from './scenario.js';

const NS = `kv-standin-${process.pid}`;
const VM = 'vm1';
const DOMAIN = domainName(NS, VM);
const ZONE_A = { 'topology.kubernetes.io/zone': 'zone-a' };
const ZONE_B = { 'topology.kubernetes.io/zone': 'zone-b' };
const ZONE_C = { 'topology.kubernetes.io/zone': 'zone-c' };
const USER = 'importer';
const PASSWORD = 's3cret';

type Obj = { metadata: { name: string; uid?: string }; spec?: any; status?: any };

const skip = controlPlaneSkipReason() ?? testbedSkipReason();

describe.skipIf(skip)('KubeVirt/CDI stand-in on a real API server and real libvirt + QEMU', () => {
  let tb: Testbed;
  let client: KubeClient;
  let standIn: KubeVirtStandIn;
  let server: Server;
  let base: string;
  const lines: string[] = [];
  const images = new Map<string, Buffer>();
  const hits = new Map<string, number>();

  const get = (resource: typeof VMS, name: string) => client.get<Obj>(objectPath(resource, NS, name));
  const dataVolume = (name: string, path: string, extra: Record<string, string> = {}, accessModes?: string[]) =>
    client.create(`/apis/cdi.kubevirt.io/v1beta1/namespaces/${NS}/datavolumes`, {
      apiVersion: 'cdi.kubevirt.io/v1beta1',
      kind: 'DataVolume',
      metadata: { name },
      spec: { source: { http: { url: `${base}${path}`, ...extra } }, storage: { ...(accessModes ? { accessModes } : {}), resources: { requests: { storage: '16Mi' } } } },
    });
  const succeeded = (name: string) =>
    until(`DataVolume ${name} Succeeded`, async () => {
      const dv = await get(DATA_VOLUMES, name);
      return dv.status?.phase === 'Succeeded' ? dv : undefined;
    }, 30_000);
  const onHost = async (host: 'host-a' | 'host-b'): Promise<boolean> => {
    const lv = await LibvirtClient.connect({ socketPath: tb.host(host).socket });
    try {
      const domain = await lv.lookupDomain(DOMAIN);
      return domain !== undefined && domain.id > 0;
    } finally {
      await lv.close();
    }
  };
  const setVolume = (dv: string) =>
    client.mergePatch(objectPath(VMS, NS, VM), {
      spec: { template: { spec: { volumes: [{ name: 'rootdisk', containerDisk: { image: 'quay.io/containerdisks/fedora:latest' } }, { name: 'ctx', dataVolume: { name: dv, hotpluggable: true } }] } } },
    });

  beforeAll(async () => {
    const plane = await useControlPlane();
    await installKubeVirtCrds(plane);
    tb = await useTestbed();
    client = KubeClient.fromKubeconfig(plane.kubeconfigPath);
    await client.apply(`/api/v1/namespaces/${NS}`, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, 'kubevirt-standin-test');
    await client.create(`/api/v1/namespaces/${NS}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'creds' },
      stringData: { accessKeyId: USER, secretKey: PASSWORD },
    });
    for (const name of ['one', 'two', 'private']) {
      images.set(`/${name}.iso`, await buildIso([{ path: 'ctx/which.txt', kind: 'file', content: Buffer.from(`content-${name}\n`) }], { volumeId: name.toUpperCase(), timestamp: new Date(0) }).toBuffer());
    }
    server = createServer((req, res) => {
      const path = req.url ?? '';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      if (path === '/forbidden.iso') return void res.writeHead(403).end('no');
      if (path === '/private.iso' && req.headers.authorization !== `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`) return void res.writeHead(401).end();
      const body = images.get(path);
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    standIn = new KubeVirtStandIn({
      client,
      domainXml: (options) => tb.domainXml(options),
      nodes: [
        { name: 'node-a', host: tb.host('host-a'), labels: ZONE_A },
        { name: 'node-b', host: tb.host('host-b'), labels: ZONE_B },
        // A node on host A again: a migration node-a -> node-c is one libvirt refuses (same host).
        { name: 'node-c', host: tb.host('host-a'), labels: ZONE_C },
      ],
      storageDir: mkdtempSync(join(tmpdir(), 'kv-standin-storage-')),
      namespace: NS,
      importRetryBaseMs: 300,
      importRetryMaxMs: 2000,
      log: (line) => {
        lines.push(line);
        console.log(line);
      },
    });
    await standIn.start();
  }, 300_000);

  afterAll(async () => {
    await standIn?.stop();
    await new Promise((resolve) => server?.close(resolve));
    await client?.delete(`/api/v1/namespaces/${NS}`).catch(() => undefined);
    for (const host of ['host-a', 'host-b'] as const) for (const dom of [DOMAIN, domainName(NS, 'vm2')]) await tb?.virsh(host, ['destroy', dom]).catch(() => undefined);
  });

  it('writes the Nodes and the KubeVirt CR with the DeclarativeHotplugVolumes gate, Deployed', async () => {
    const node = await client.get<{ metadata: { labels: Record<string, string> } }>('/api/v1/nodes/node-b');
    expect(node.metadata.labels).toMatchObject(ZONE_B);
    const kv = await client.get<Obj>('/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt');
    expect(kv.spec.configuration.developerConfiguration.featureGates).toEqual(['DeclarativeHotplugVolumes']);
    expect(kv.status.phase).toBe('Deployed');
  });

  it('imports DataVolumes from HTTP (bytes equal, status as CDI writes it; basic auth from the secretRef)', async () => {
    await dataVolume('one', '/one.iso');
    await dataVolume('two', '/two.iso');
    await dataVolume('private', '/private.iso', { secretRef: 'creds' });
    for (const name of ['one', 'two', 'private']) {
      const dv = await succeeded(name);
      expect(readFileSync(standIn.dataVolumeFile(NS, name)).equals(images.get(`/${name}.iso`)!)).toBe(true);
      expect(dv.status.progress).toBe('100.0%');
      const conditions = Object.fromEntries((dv.status.conditions as { type: string; status: string; reason?: string }[]).map((c) => [c.type, [c.status, c.reason]]));
      expect(conditions).toEqual({ Bound: ['True', 'Bound'], Ready: ['True', undefined], Running: ['False', 'Completed'] });
    }
  });

  it('keeps retrying a 403 with phase ImportInProgress and Running=False reason Error', async () => {
    await dataVolume('forbidden', '/forbidden.iso');
    const dv = await until('the 403 retried twice', async () => {
      const got = await get(DATA_VOLUMES, 'forbidden');
      return (got.status?.restartCount ?? 0) >= 2 ? got : undefined;
    }, 30_000);
    expect(dv.status.phase).toBe('ImportInProgress');
    expect(hits.get('/forbidden.iso')).toBeGreaterThanOrEqual(2);
    const running = await until('Running=False/Error', async () => {
      const got = await get(DATA_VOLUMES, 'forbidden');
      return got.status.conditions.find((c: { type: string; reason?: string }) => c.type === 'Running' && c.reason === 'Error');
    });
    expect(running.status).toBe('False');
    expect(running.message).toMatch(/expected status code 200, got 403/);
    await client.delete(objectPath(DATA_VOLUMES, NS, 'forbidden'));
  });

  it('boots a running VM with its CD-ROM disk holding the imported DataVolume', async () => {
    const from = tb.consoleOffset(DOMAIN);
    await client.create(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines`, {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: { name: VM },
      spec: {
        runStrategy: 'Always',
        template: {
          metadata: { labels: { app: 'standin' } },
          spec: {
            domain: { devices: { disks: [{ name: 'rootdisk', disk: { bus: 'virtio' } }, { name: 'ctx', cdrom: { bus: 'sata' } }] }, resources: { requests: { memory: '256Mi' } } },
            volumes: [{ name: 'rootdisk', containerDisk: { image: 'quay.io/containerdisks/fedora:latest' } }, { name: 'ctx', dataVolume: { name: 'one', hotpluggable: true } }],
          },
        },
      },
    });
    const vmi = await until('VMI Running', async () => {
      const got = await client.getOrUndefined<Obj>(objectPath(VMIS, NS, VM));
      return got?.status?.phase === 'Running' ? got : undefined;
    }, 60_000);
    expect(vmi.status.nodeName).toBe('node-a');
    expect(vmi.spec.volumes).toContainEqual({ name: 'ctx', dataVolume: { name: 'one', hotpluggable: true } });
    expect(await onHost('host-a')).toBe(true);
    await guestReads(tb, DOMAIN, 'ctx/which.txt', /content-one/, from, 90_000);
    const vm = await until('VM ready', async () => {
      const got = await get(VMS, VM);
      return got.status?.ready === true ? got : undefined;
    });
    expect(vm.status).toMatchObject({ created: true, ready: true, printableStatus: 'Running' });
    expect(vmi.status.volumeStatus).toEqual([
      expect.objectContaining({ name: 'ctx', target: 'sda', phase: 'Ready', reason: 'VolumeReady', hotplugVolume: {}, persistentVolumeClaimInfo: { claimName: 'one', accessModes: ['ReadWriteMany'] } }),
    ]);
    // Every claim shared (the stand-in's storage profile: ReadWriteMany): live-migratable.
    expect(vmi.status.conditions).toContainEqual(expect.objectContaining({ type: 'LiveMigratable', status: 'True' }));
  }, 150_000);

  it('swaps the medium in the running guest when the volume names another DataVolume, in KubeVirt\'s two steps (the old volume leaves, then the new one comes)', async () => {
    const from = tb.consoleOffset(DOMAIN);
    const started = Date.now();
    // What the VMI says its ctx volume is, every 100 ms while the swap runs.
    const states: string[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const volume = ((await get(VMIS, VM)).spec.volumes ?? []).find((v: { name: string }) => v.name === 'ctx') as { dataVolume?: { name: string } } | undefined;
        const state = volume?.dataVolume?.name ?? 'none';
        if (states.at(-1) !== state) states.push(state);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await setVolume('two');
    await guestReads(tb, DOMAIN, 'ctx/which.txt', /content-two/, from, 30_000);
    watching = false;
    await watcher;
    console.log(`volume change -> guest read the new content in ${Date.now() - started} ms; the VMI's ctx volume went ${states.join(' -> ')}`);
    expect(states).toEqual(['one', 'none', 'two']);
    const vmi = await until('volumeStatus names two', async () => {
      const got = await get(VMIS, VM);
      return got.status?.volumeStatus?.[0]?.persistentVolumeClaimInfo?.claimName === 'two' ? got : undefined;
    });
    expect(vmi.spec.volumes).toContainEqual({ name: 'ctx', dataVolume: { name: 'two', hotpluggable: true } });
    expect(vmi.status.volumeStatus).toEqual([expect.objectContaining({ name: 'ctx', target: 'sda', phase: 'Ready', reason: 'VolumeReady' })]);
  }, 60_000);

  it('records a migration libvirt refuses as failed: completed + failed + failureReason, VMIM Failed, nodeName unchanged', async () => {
    const vmim = await client.create<Obj>(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations`, {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstanceMigration',
      metadata: { name: 'same-host' },
      spec: { vmiName: VM, addedNodeSelector: ZONE_C },
    });
    const failed = await until('VMIM Failed', async () => {
      const got = await get(VMIMS, 'same-host');
      return got.status?.phase === 'Failed' ? got : undefined;
    }, 60_000);
    expect(failed.status.conditions[0]).toMatchObject({ type: 'Failed', status: 'True', reason: 'MigrationFailed' });
    const vmi = await get(VMIS, VM);
    expect(vmi.status.nodeName).toBe('node-a');
    expect(vmi.status.migrationState).toMatchObject({ migrationUid: vmim.metadata.uid, sourceNode: 'node-a', targetNode: 'node-c', completed: true, failed: true });
    expect(vmi.status.migrationState.failureReason).toMatch(/.+/);
    expect(await onHost('host-a')).toBe(true);
  }, 60_000);

  it('performs a VirtualMachineInstanceMigration as a real live migration, writing migrationState as KubeVirt does', async () => {
    const vmim = await client.create<Obj>(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations`, {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstanceMigration',
      metadata: { name: 'move-1' },
      spec: { vmiName: VM, addedNodeSelector: ZONE_B },
    });
    const done = await until('VMIM final', async () => {
      const got = await get(VMIMS, 'move-1');
      return ['Succeeded', 'Failed'].includes(got.status?.phase) ? got : undefined;
    }, 120_000);
    expect(done.status.phase).toBe('Succeeded');
    expect(done.status.phaseTransitionTimestamps.map((p: { phase: string }) => p.phase)).toEqual(['Pending', 'Scheduling', 'Scheduled', 'PreparingTarget', 'TargetReady', 'Running', 'Succeeded']);
    const vmi = await get(VMIS, VM);
    expect(vmi.status.nodeName).toBe('node-b');
    expect(vmi.status.migrationState).toMatchObject({ migrationUid: vmim.metadata.uid, sourceNode: 'node-a', targetNode: 'node-b', completed: true, failed: false, mode: 'PreCopy' });
    expect(vmi.status.migrationState.startTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(vmi.status.migrationState.endTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(await onHost('host-b')).toBe(true);
    expect(await onHost('host-a')).toBe(false);
    // A change after the migration is applied on the target host.
    const from = tb.consoleOffset(DOMAIN);
    await setVolume('private');
    await guestReads(tb, DOMAIN, 'ctx/which.txt', /content-private/, from, 30_000);
  }, 150_000);

  it('fails a migration no node can take, without migrating', async () => {
    await client.create(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations`, {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstanceMigration',
      metadata: { name: 'nowhere' },
      spec: { vmiName: VM, addedNodeSelector: { 'topology.kubernetes.io/zone': 'zone-x' } },
    });
    const failed = await until('VMIM Failed', async () => {
      const got = await get(VMIMS, 'nowhere');
      return got.status?.phase === 'Failed' ? got : undefined;
    });
    expect(failed.status.conditions[0]).toMatchObject({ type: 'Failed', status: 'True' });
    expect((await get(VMIS, VM)).status.nodeName).toBe('node-b');
  });

  it('sets RestartRequired for a new CD-ROM disk or a change of a volume not marked hotpluggable, and refuses a CD-ROM drive hot-plugged with its volume (Failure, HotPlugVolumeError) as real KubeVirt does', async () => {
    const vm = await get(VMS, VM);
    const spec = vm.spec.template.spec;
    spec.domain.devices.disks.push({ name: 'ctx2', cdrom: { bus: 'sata' } });
    spec.volumes = [spec.volumes[0], { name: 'ctx', dataVolume: { name: 'one' } }, { name: 'ctx2', dataVolume: { name: 'one', hotpluggable: true } }];
    await client.mergePatch(objectPath(VMS, NS, VM), { spec: { template: { spec } } });
    const restart = await until('RestartRequired', async () => (await get(VMS, VM)).status?.conditions?.find((c: { type: string }) => c.type === 'RestartRequired'));
    expect(restart).toMatchObject({ status: 'True', message: 'a non-live-updatable field was changed in the template spec' });
    const failure = (await get(VMS, VM)).status?.conditions?.find((c: { type: string }) => c.type === 'Failure');
    expect(failure).toMatchObject({ status: 'True', reason: 'HotPlugVolumeError', message: expect.stringMatching(/Hotplug configuration for \[ctx2\] requires diskDevice of type 'disk' or 'lun'/) });
    const vmi = await get(VMIS, VM);
    expect(vmi.spec.domain.devices.disks.map((d: { name: string }) => d.name)).toEqual(['rootdisk', 'ctx']);
    expect(vmi.spec.volumes).toContainEqual({ name: 'ctx', dataVolume: { name: 'private', hotpluggable: true } });
    const lv = await LibvirtClient.connect({ socketPath: tb.host('host-b').socket });
    try {
      const drives = cdromsOf(await lv.domainXml((await lv.lookupDomain(DOMAIN))!));
      expect(drives).toEqual([{ target: 'sda', bus: 'sata', source: standIn.dataVolumeFile(NS, 'private') }]);
    } finally {
      await lv.close();
    }
  });

  it('destroys the domain and deletes the VMI when the VM is deleted; a deleted DataVolume loses its file', async () => {
    await client.delete(objectPath(VMS, NS, VM));
    await until('domain gone', async () => (!(await onHost('host-a')) && !(await onHost('host-b')) ? true : undefined), 30_000);
    await until('VMI gone', async () => ((await client.getOrUndefined(objectPath(VMIS, NS, VM))) ? undefined : true));
    const file = standIn.dataVolumeFile(NS, 'two');
    expect(existsSync(file)).toBe(true);
    await client.delete(objectPath(DATA_VOLUMES, NS, 'two'));
    await until('imported file removed', async () => (existsSync(file) ? undefined : true));
    expect(lines.every((line) => line.startsWith('[kubevirt-standin] '))).toBe(true);
  }, 60_000);

  it('holds the start while a hotplug volume imports (VMI Scheduled, no domain), starts with the medium once imported; a ReadWriteOnce claim is not live-migratable and its migration is refused; stop() destroys the domain', async () => {
    const dom = domainName(NS, 'vm2');
    await dataVolume('later', '/later.iso', {}, ['ReadWriteOnce']); // 404 until the server has it
    await client.create(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines`, {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: { name: 'vm2' },
      spec: {
        running: true,
        template: { spec: { domain: { devices: { disks: [{ name: 'ctx', cdrom: { bus: 'sata' } }] } }, volumes: [{ name: 'ctx', dataVolume: { name: 'later', hotpluggable: true } }] } },
      },
    });
    await until('VMI Scheduled', async () => ((await client.getOrUndefined<Obj>(objectPath(VMIS, NS, 'vm2')))?.status?.phase === 'Scheduled' ? true : undefined), 30_000);
    const lv = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
    try {
      await new Promise((r) => setTimeout(r, 2_000));
      expect((await get(VMIS, 'vm2')).status.phase).toBe('Scheduled'); // as virt-handler: no domain before its hotplug volumes
      expect(await lv.lookupDomain(dom)).toBeUndefined();
      images.set('/later.iso', images.get('/one.iso')!);
      const running = await until('VMI Running with the volume Ready', async () => {
        const vmi = await get(VMIS, 'vm2');
        return vmi.status?.phase === 'Running' && vmi.status.volumeStatus?.[0]?.phase === 'Ready' ? vmi : undefined;
      }, 60_000);
      const sda = cdromsOf(await lv.domainXml((await lv.lookupDomain(dom))!)).find((d) => d.target === 'sda');
      expect(sda?.source).toBe(standIn.dataVolumeFile(NS, 'later'));
      expect(running.status.volumeStatus[0]).toMatchObject({ name: 'ctx', target: 'sda', hotplugVolume: {}, persistentVolumeClaimInfo: { claimName: 'later', accessModes: ['ReadWriteOnce'] } });
      // KubeVirt's words (virt-handler's checkVolumesForMigration, the VMIM webhook).
      const condition = running.status.conditions.find((c: { type: string }) => c.type === 'LiveMigratable');
      expect(condition).toMatchObject({ status: 'False', reason: 'DisksNotLiveMigratable', message: 'cannot migrate VMI: PVC later is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)' });
      await client.create(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations`, { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'rwo' }, spec: { vmiName: 'vm2', addedNodeSelector: ZONE_B } });
      const refused = await until('VMIM Failed', async () => {
        const got = await get(VMIMS, 'rwo');
        return got.status?.phase === 'Failed' ? got : undefined;
      }, 30_000);
      expect(refused.status.conditions[0].message).toMatch(/^Cannot migrate VMI, Reason: DisksNotLiveMigratable, Message: cannot migrate VMI: PVC later is not shared/);
      await standIn.stop();
      expect(await lv.lookupDomain(dom)).toBeUndefined();
    } finally {
      await lv.close();
    }
  }, 90_000);
});

describe.skipIf(skip)('KubeVirt/CDI stand-in without the DeclarativeHotplugVolumes gate, across an API server restart (own control plane)', () => {
  let cp: ControlPlane;
  let client: KubeClient;
  let standIn: KubeVirtStandIn;
  let server: Server;
  let base: string;
  const iso = Buffer.from('not really an ISO, bytes are bytes\n');

  beforeAll(async () => {
    cp = await startExclusiveControlPlane();
    await installKubeVirtCrds({ kubectl: (args) => cp.kubectl(args) });
    client = KubeClient.fromKubeconfig(cp.kubeconfigPath);
    await client.apply(`/api/v1/namespaces/${NS}`, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, 'kubevirt-standin-test');
    server = createServer((_req, res) => void res.writeHead(200, { 'Content-Length': iso.length }).end(iso));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const tb = await useTestbed();
    standIn = new KubeVirtStandIn({
      client,
      domainXml: (options) => tb.domainXml(options),
      nodes: [{ name: 'node-a', host: tb.host('host-a') }],
      storageDir: mkdtempSync(join(tmpdir(), 'kv-standin-restart-')),
      featureGates: [],
      log: (line) => console.log(line),
    });
    await standIn.start();
  }, 300_000);

  afterAll(async () => {
    await standIn?.stop();
    await new Promise((resolve) => server?.close(resolve));
    await cp?.stop();
    const tb = await useTestbed();
    for (const host of ['host-a', 'host-b'] as const) await tb.virsh(host, ['destroy', domainName(NS, 'vm3')]).catch(() => undefined);
  });

  const importAfter = async (name: string) => {
    await until(`DataVolume ${name} created`, () => client.create(`/apis/cdi.kubevirt.io/v1beta1/namespaces/${NS}/datavolumes`, { apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', metadata: { name }, spec: { source: { http: { url: `${base}/${name}` } } } }), 30_000);
    await until(`DataVolume ${name} Succeeded`, async () => ((await client.get<Obj>(objectPath(DATA_VOLUMES, NS, name))).status?.phase === 'Succeeded' ? true : undefined), 60_000);
    expect(readFileSync(standIn.dataVolumeFile(NS, name)).equals(iso)).toBe(true);
  };

  it('without the gate a volume change is not applied: RestartRequired, VMI and drive unchanged', async () => {
    expect((await client.get<Obj>('/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt')).spec.configuration.developerConfiguration.featureGates).toEqual([]);
    await importAfter('gate-one');
    await importAfter('gate-two');
    const vm = (dv: string) => ({ domain: { devices: { disks: [{ name: 'ctx', cdrom: { bus: 'sata' } }] } }, volumes: [{ name: 'ctx', dataVolume: { name: dv, hotpluggable: true } }] });
    await client.create(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines`, { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'vm3' }, spec: { runStrategy: 'Always', template: { spec: vm('gate-one') } } });
    await until('VMI Running', async () => ((await client.getOrUndefined<Obj>(objectPath(VMIS, NS, 'vm3')))?.status?.phase === 'Running' ? true : undefined), 30_000);
    await client.mergePatch(objectPath(VMS, NS, 'vm3'), { spec: { template: { spec: vm('gate-two') } } });
    await until('RestartRequired', async () => (await client.get<Obj>(objectPath(VMS, NS, 'vm3'))).status?.conditions?.find((c: { type: string }) => c.type === 'RestartRequired'));
    expect((await client.get<Obj>(objectPath(VMIS, NS, 'vm3'))).spec.volumes).toEqual([{ name: 'ctx', dataVolume: { name: 'gate-one', hotpluggable: true } }]);
    const lv = await LibvirtClient.connect({ socketPath: (await useTestbed()).host('host-a').socket });
    try {
      expect(cdromsOf(await lv.domainXml((await lv.lookupDomain(domainName(NS, 'vm3')))!))[0]?.source).toBe(standIn.dataVolumeFile(NS, 'gate-one'));
    } finally {
      await lv.close();
    }
    await client.delete(objectPath(VMS, NS, 'vm3'));
    await until('domain gone', async () => ((await standIn.domainRunning(NS, 'vm3')) ? undefined : true), 30_000);
  }, 60_000);

  // (410 Gone / relist is the informer's own business: src/runtime/informer.test.ts, faults.test.ts.)
  it('keeps watching after the API server restarts', async () => {
    await importAfter('before');
    const restarting = Date.now();
    await cp.restartApiServer();
    const restarted = Date.now();
    await importAfter('after-restart');
    console.log(`API server restart took ${restarted - restarting} ms; then the next import Succeeded in ${Date.now() - restarted} ms`);
  }, 120_000);
});
