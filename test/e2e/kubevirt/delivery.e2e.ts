// recontext on real KubeVirt and CDI (npm run e2e:kubevirt; README.md here): the operator installed
// by helm with the KubeVirt driver, examples/gluster applied with kubectl, and a VirtualMachine
// that boots the fat test guest (the Go agent, test/testbed/guest/fat) from a containerDisk under
// QEMU's emulation with an empty CD-ROM drive per layer. What the guest's GlusterFS client stand-in reads is on the
// guest's serial console (KubeVirt's guest-console-log container).
//
//   kubectl apply → images → DataVolumes (CDI imports from the operator's image Service)
//   → KubeVirt hot-plugs each into its drive → the agent merges them → the client reads zone X
//   → a layer edit is swapped live and the layer's hook runs
//   → a VirtualMachineInstanceMigration moves the VM to the other zone → the infrastructure
//     layers re-render for the new node and the client reads the new cache address
//   → a MigrationPolicy moves it back → a layer joins the running VM (RestartRequired) and is in
//     the guest after a restart → a layer leaves → KubeVirt's refusal of a hot-plugged CD-ROM
//   → deletion leaves nothing behind.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { until } from '../../integration/scenario.js';
import { cacheHostPattern, digestOf, glusterSession, isReady, LAYERS, otherZone, SYSTEM, VM, type Condition } from './gluster-vm.js';

const NS = 'kubevirt-e2e';
const e2e = inject('kubevirtE2e');
const { kubectl, json, vmi, vmContext, zoneOf, consoleText, consoleLine, installOperator, applyStory } = glusterSession(e2e, NS);

describe('recontext on real KubeVirt + CDI', () => {
  beforeAll(async () => {
    console.log(`KubeVirt ${e2e.kubevirtRevision.slice(0, 12)}, CDI ${e2e.cdiRevision.slice(0, 12)}, operator ${e2e.operatorImage.tag}, guest ${e2e.guestImage}`);
    await installOperator();
  }, 900_000);

  afterAll(async () => {
    const logs = await kubectl(['logs', '-n', SYSTEM, '-l', 'app.kubernetes.io/name=recontext', '--tail=60', '--prefix']).catch(() => '');
    console.log(`operator logs (tail):\n${logs}`);
  });

  it('delivers every layer into the empty drives of the booted VM: CDI imports, KubeVirt hot-plugs, the guest agent merges, the client reads its zone', async () => {
    await applyStory();
    const ready = await until('VMContext Ready', async () => {
      const v = await vmContext();
      return isReady(v) && v.status?.node ? v : undefined;
    }, 900_000);
    const zone = await zoneOf(ready.status!.node!);
    console.log(`[e2e] first delivery on ${ready.status?.node} (${zone}): ${JSON.stringify(ready.status?.lastRecontext)}`);
    expect(ready.status?.layers?.map((l) => l.device).sort()).toEqual(LAYERS.map((l) => `ctx-${l}`).sort());
    await consoleLine(`the client reading ${zone}'s cache`, new RegExp(`^APP \\d+ (start|reload) /etc/glusterfs/cache\\.conf .*${cacheHostPattern(zone)}`), 300_000);
  }, 1_200_000);

  it('swaps an edited layer live (KubeVirt ejects the old medium, then inserts the new one) and the layer\'s hook tells the client', async () => {
    const before = await vmContext();
    const instance = (await vmi()).metadata.uid;
    const reloadsBefore = reloads(await consoleText());
    await kubectl(['patch', '-n', NS, 'configmap', 'gluster-volume', '--type=merge', '-p', JSON.stringify({ data: { 'client.vol': 'volume gv0-edited\n' } })]);
    const after = await until('the edited layer delivered', async () => {
      const v = await vmContext();
      return isReady(v) && digestOf(v, 'gluster-service') !== digestOf(before, 'gluster-service') ? v : undefined;
    }, 600_000);
    console.log(`[e2e] layer edit: ${JSON.stringify(after.status?.lastRecontext)}`);
    expect(after.status?.lastRecontext?.trigger).toBe('LayerChange');
    await until('the hook reloading the client', async () => (reloads(await consoleText()) > reloadsBefore ? true : undefined), 300_000);
    expect((await vmi()).metadata.uid).toBe(instance); // the same running instance: no restart
  }, 1_200_000);

  it('live migration by a VirtualMachineInstanceMigration: the infrastructure layers re-render for the new node and the client reads the new cache address', async () => {
    const before = await vmContext();
    const instance = (await vmi()).metadata.uid;
    const fromZone = await zoneOf(before.status!.node!);
    const toZone = otherZone(fromZone);
    const migratable = (await vmi()).status?.conditions?.find((c) => c.type === 'LiveMigratable');
    expect(migratable, JSON.stringify(migratable)).toMatchObject({ status: 'True' }); // every volume ReadWriteMany
    await kubectl(['create', '-n', NS, '-f', '-'], JSON.stringify({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'to-the-other-zone' }, spec: { vmiName: VM, addedNodeSelector: { 'topology.kubernetes.io/zone': toZone } } }));
    const migrationUid = (await kubectl(['get', 'vmim', 'to-the-other-zone', '-n', NS, '-o', 'jsonpath={.metadata.uid}'])).trim();
    const after = await until('re-rendered for the new node', async () => {
      const v = await vmContext();
      return isReady(v) && v.status?.lastMigrationId === migrationUid ? v : undefined;
    }, 900_000);
    console.log(`[e2e] migration ${fromZone} -> ${toZone}: ${JSON.stringify(after.status?.lastRecontext)}`);
    expect(await zoneOf(after.status!.node!)).toBe(toZone);
    expect(after.status?.lastRecontext?.trigger).toBe('Migration');
    const changed = LAYERS.filter((layer) => digestOf(after, layer) !== digestOf(before, layer)).sort();
    expect(changed).toEqual(['data-residency', 'site-cache']);
    await consoleLine(`the client reading ${toZone}'s cache`, new RegExp(`^APP \\d+ reload /etc/glusterfs/cache\\.conf .*${cacheHostPattern(toZone)}`), 300_000);
    expect((await vmi()).metadata.uid).toBe(instance); // migrated live, not restarted
  }, 1_800_000);

  it('live migration asked for by a MigrationPolicy (Schedule, outside its working hours: to base): the operator creates the VirtualMachineInstanceMigration and re-renders', async () => {
    const before = await vmContext();
    const instance = (await vmi()).metadata.uid;
    const fromZone = await zoneOf(before.status!.node!);
    const toZone = otherZone(fromZone);
    // One working window a minute long, three days from now: the VM is outside working hours, so
    // the policy sends it to base (the other zone) at once, without waiting for a sample.
    const day = new Date(Date.now() + 3 * 86_400_000).toLocaleDateString('en-US', { weekday: 'short', timeZone: 'UTC' });
    const zoneArray = (zone: string, cost: number): object => ({ name: zone, nodeSelector: { 'topology.kubernetes.io/zone': zone }, cost });
    await kubectl(['apply', '-n', NS, '-f', '-'], JSON.stringify({
      apiVersion: 'recontext.dev/v1alpha1',
      kind: 'MigrationPolicy',
      metadata: { name: 'base-off-hours' },
      spec: {
        type: 'Schedule',
        vmSelector: { matchLabels: { app: 'gluster-client' } },
        metric: { reported: { key: 'queue_wait_seconds' } },
        sampleInterval: '30s', high: 30, highFor: 3, low: 2, lowFor: 3,
        base: toZone,
        arrays: [zoneArray(toZone, 0.2), zoneArray(fromZone, 1)],
        schedule: { timeZone: 'UTC', windows: [{ days: [day], start: '12:00', end: '12:01' }] },
      },
    }));
    const after = await until('moved to base by the policy and re-rendered', async () => {
      const v = await vmContext();
      if (!isReady(v) || !v.status?.lastMigrationId || v.status.lastMigrationId === before.status?.lastMigrationId || !v.status.node) return undefined;
      return (await zoneOf(v.status.node)) === toZone ? v : undefined;
    }, 900_000);
    // By its full name: with KubeVirt installed, `kubectl get migrationpolicy` is KubeVirt's own kind.
    const policy = await json<{ status?: { decisions?: { vm: string; to?: string; result: string; reason: string }[] } }>(['get', 'migrationpolicies.recontext.dev', 'base-off-hours', '-n', NS]);
    console.log(`[e2e] policy migration ${fromZone} -> ${toZone}: ${JSON.stringify(after.status?.lastRecontext)}; decisions ${JSON.stringify(policy.status?.decisions?.slice(0, 3))}`);
    expect(policy.status?.decisions?.find((d) => d.vm === VM && d.to === toZone)).toMatchObject({ result: expect.stringMatching(/Requested|Succeeded/) });
    // The migration is the operator's: a VMIM it labelled, naming the policy.
    const migrations = await json<{ items: { metadata: { uid: string; labels?: Record<string, string> } }[] }>(['get', 'vmim', '-n', NS, '-l', 'recontext.dev/requested-by']);
    expect(migrations.items.find((m) => m.metadata.uid === after.status?.lastMigrationId)?.metadata.labels?.['recontext.dev/requested-by']).toMatch(/base-off-hours/);
    expect(after.status?.lastRecontext?.trigger).toBe('Migration');
    await consoleLine(`the client reading ${toZone}'s cache`, new RegExp(`^APP \\d+ reload /etc/glusterfs/cache\\.conf .*${cacheHostPattern(toZone)}`), 300_000);
    expect((await vmi()).metadata.uid).toBe(instance);
    await kubectl(['delete', 'migrationpolicies.recontext.dev', 'base-off-hours', '-n', NS]);
  }, 1_800_000);

  it('a layer that joins the running VM: an empty drive and RestartRequired (KubeVirt cannot hot-plug a CD-ROM drive), the others still live; after a restart it is in the guest', async () => {
    const drive = 'ctx-late-notes';
    const instance = (await vmi()).metadata.uid;
    await kubectl(['apply', '-n', NS, '-f', '-'], JSON.stringify({
      apiVersion: 'recontext.dev/v1alpha1',
      kind: 'ContextLayer',
      metadata: { name: 'late-notes' },
      // Above site-cache (infrastructure, 300): the guest's client shows that this layer won.
      spec: { class: 'service', priority: 350, vmSelector: { matchLabels: { app: 'gluster-client' } }, files: [{ path: 'etc/glusterfs/cache.conf', content: 'cache-server = late.example.net\n' }] },
    }));
    const waiting = await until('RestartRequired for late-notes', async () => {
      const v = await vmContext();
      return v.status?.conditions?.find((c) => c.type === 'Ready' && c.reason === 'RestartRequired') ? v : undefined;
    }, 300_000);
    expect(waiting.status?.conditions?.find((c) => c.type === 'Ready')?.message).toMatch(/no CD-ROM drive for late-notes/);
    const spec = await json<{ spec: { template: { spec: { domain: { devices: { disks: { name: string }[] } }; volumes: { name: string }[] } } } }>(['get', 'vm', VM, '-n', NS]);
    expect(spec.spec.template.spec.domain.devices.disks.map((d) => d.name)).toContain(drive);
    expect(spec.spec.template.spec.volumes.map((v) => v.name)).not.toContain(drive);
    // KubeVirt was never asked for what it refuses: its hotplug of this VM is not blocked.
    const vmConditions = (await json<{ status?: { conditions?: Condition[] } }>(['get', 'vm', VM, '-n', NS])).status?.conditions ?? [];
    console.log(`[e2e] VM conditions with the empty drive: ${JSON.stringify(vmConditions.map((c) => [c.type, c.status, c.reason]))}`);
    expect(vmConditions.find((c) => c.reason === 'HotPlugVolumeError')).toBeUndefined();

    // A restart delivers it: KubeVirt starts the new instance with every volume in its drive.
    await kubectl(['delete', 'vmi', VM, '-n', NS, '--wait=false']);
    const restarted = await until('the restarted VM with late-notes in its drive', async () => {
      const current = await vmi().catch(() => undefined);
      if (!current || current.metadata.uid === instance || current.status?.phase !== 'Running') return undefined;
      const v = await vmContext();
      return isReady(v) && v.status?.layers?.some((l) => l.name === 'late-notes' && l.device === drive) ? v : undefined;
    }, 900_000);
    console.log(`[e2e] after the restart: ${JSON.stringify(restarted.status?.lastRecontext)}`);
    await consoleLine('the client reading the late layer\'s cache address', /^APP \d+ (start|reload) \/etc\/glusterfs\/cache\.conf .*late\.example\.net/, 300_000);
  }, 1_800_000);

  it('a layer that leaves: its volume goes from the VM; the VMContext stays Ready', async () => {
    await kubectl(['delete', 'contextlayer', 'late-notes', '-n', NS]);
    const after = await until('late-notes gone', async () => {
      const v = await vmContext();
      return isReady(v) && !v.status?.layers?.some((l) => l.name === 'late-notes') ? v : undefined;
    }, 300_000);
    expect(after.status?.layers?.map((l) => l.name).sort()).toEqual([...LAYERS].sort());
    const vm = await json<{ spec: { template: { spec: { domain: { devices: { disks: { name: string }[] } }; volumes: { name: string }[] } } }; status?: { conditions?: Condition[] } }>(['get', 'vm', VM, '-n', NS]);
    expect(vm.spec.template.spec.volumes.map((v) => v.name)).not.toContain('ctx-late-notes');
    console.log(`[e2e] after the removal: disks ${JSON.stringify(vm.spec.template.spec.domain.devices.disks.map((d) => d.name))}, VM conditions ${JSON.stringify((vm.status?.conditions ?? []).map((c) => [c.type, c.status, c.reason]))}`);
  }, 900_000);

  it('what recontext never asks of KubeVirt: a CD-ROM drive hot-plugged with its volume is refused (Failure, HotPlugVolumeError)', async () => {
    // The change the driver used to make for a layer that joins a running VM, made here by hand
    // (one of the VM's own DataVolumes as the volume), to show what KubeVirt answers.
    const vm = await json<{ spec: { template: { spec: { domain: { devices: { disks: object[] } }; volumes: { name: string; dataVolume?: { name: string } }[] } } } }>(['get', 'vm', VM, '-n', NS]);
    const dataVolume = vm.spec.template.spec.volumes.find((v) => v.dataVolume)!.dataVolume!.name;
    const patch = [
      { op: 'add', path: '/spec/template/spec/domain/devices/disks/-', value: { name: 'probe', cdrom: { bus: 'sata' } } },
      { op: 'add', path: '/spec/template/spec/volumes/-', value: { name: 'probe', dataVolume: { name: dataVolume, hotpluggable: true } } },
    ];
    await kubectl(['patch', 'vm', VM, '-n', NS, '--type=json', '-p', JSON.stringify(patch)]);
    const failure = await until('KubeVirt refusing the hot-plugged drive', async () => {
      const conditions = (await json<{ status?: { conditions?: Condition[] } }>(['get', 'vm', VM, '-n', NS])).status?.conditions ?? [];
      return conditions.find((c) => c.type === 'Failure' && c.status === 'True');
    }, 120_000);
    console.log(`[e2e] KubeVirt's answer to a hot-plugged CD-ROM drive: ${JSON.stringify(failure)}`);
    expect(failure.reason).toBe('HotPlugVolumeError');
    // The stand-in (test/kubevirt-standin) answers with the same words.
    expect(failure.message).toMatch(/Hotplug configuration for \[probe\] requires diskDevice of type 'disk' or 'lun'/);
  }, 300_000);

  it('deleting the VMContext and the VM leaves no DataVolume and no claim', async () => {
    await kubectl(['delete', 'vmcontext', VM, '-n', NS, '--wait=true', '--timeout=300s']);
    await kubectl(['delete', 'vm', VM, '-n', NS, '--wait=true', '--timeout=300s']);
    await until('no DataVolume and no claim left', async () => {
      const left = (await kubectl(['get', 'datavolumes,persistentvolumeclaims', '-n', NS, '-o', 'name'])).trim();
      return left === '' ? true : undefined;
    }, 300_000);
  }, 900_000);
});

/** How many times the client has re-read its configuration (its `APP <n> reload done` lines). */
const reloads = (console: string): number => console.split('\n').filter((line) => /^APP \d+ reload done/.test(line)).length;
