// The KubeVirt driver against a real kube-apiserver + etcd with KubeVirt's and CDI's CRDs: the
// DataVolumes it creates (their signed URLs serve the exact image over real HTTP), the VM spec it
// writes next to a GitOps field manager that owns the rest of the VM, swaps, removal, garbage
// collection (no DataVolume or image left), and one re-render per migration even across an
// operator restart.
//
// Nothing runs KubeVirt or CDI here, so this file plays their part at the API: `platform` below
// downloads each DataVolume's URL (as CDI's importer would) and reports volumes Ready in the VMI
// status once their DataVolume is imported (as virt-handler would). The chain with real guests,
// real imports and real live migrations is test/integration/kubevirt-e2e.test.ts.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1beta1DataVolume } from '@kubevirt-ui-ext/kubevirt-api/containerized-data-importer';
import type { V1VirtualMachine, V1VirtualMachineInstance } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/runtime/log.js';
import { ClusterOperator } from '../../src/controllers/cluster-operator.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { KubeVirtDriver, KUBEVIRT_FIELD_MANAGER } from '../../src/drivers/kubevirt/driver.js';
import { MANAGED_VOLUMES_ANNOTATION } from '../../src/drivers/kubevirt/volumes.js';
import { ImageUrlSigner } from '../../src/images/server.js';
import { KubeClient } from '../../src/kube/client.js';
import { controlPlaneSkipReason, installCrds, startExclusiveControlPlane, useControlPlane, type ControlPlane, type SharedControlPlane } from '../controlplane/shared.js';
import { REPO, ZONE_A, ZONE_B, digestOf, getVMContext, isReady, nodeYaml, strict, until } from './scenario.js';

const NS = 'kubevirt-it';
const VM = 'gluster-client-1';
const GITOPS = 'argocd-controller';
const vmPath = `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines/${VM}`;
const vmiPath = `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances/${VM}`;
const dvPath = `/apis/cdi.kubevirt.io/v1beta1/namespaces/${NS}/datavolumes`;

/** The VM as a GitOps tool keeps it in Git: everything but the context CD-ROMs. */
function gitopsVm(memory: string, extra: { disks?: object[]; volumes?: object[] } = {}): string {
  return JSON.stringify({
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name: VM, labels: { app: 'gluster-client' } },
    spec: {
      runStrategy: 'Always',
      template: {
        metadata: { labels: { app: 'gluster-client' } },
        spec: {
          domain: { resources: { requests: { memory } }, devices: { disks: extra.disks ?? [{ name: 'rootdisk', disk: { bus: 'virtio' } }] } },
          volumes: extra.volumes ?? [{ name: 'rootdisk', containerDisk: { image: 'quay.io/containerdisks/debian:12' } }],
        },
      },
    },
  });
}

describe.skipIf(controlPlaneSkipReason())('KubeVirt driver on a real API server', () => {
  let plane: SharedControlPlane;
  let client: KubeClient;
  let kubectl: ReturnType<typeof strict>;
  let operator: ClusterOperator;
  let metrics: OperatorMetrics;
  const imageDirectory = mkdtempSync(join(tmpdir(), 'kubevirt-it-images-'));
  const signer = new ImageUrlSigner(ImageUrlSigner.randomKey(), 'http://placeholder');
  const downloads: string[] = [];
  const platformAbort = new AbortController();
  /** What the platform does in its loop (a test pauses one part to hold a state). */
  const plays = { imports: true, reportsVolumes: true };

  const vm = () => client.get<V1VirtualMachine>(vmPath);
  const dataVolumes = async () => (await client.list<V1beta1DataVolume>(dvPath)).items;
  const ctxVolumes = (v: V1VirtualMachine) => (v.spec.template?.spec?.volumes ?? []).filter((x) => x.name.startsWith('ctx-'));
  const vmContext = () => getVMContext(client, NS, VM);

  async function startOperator(): Promise<ClusterOperator> {
    metrics = new OperatorMetrics({ defaultMetrics: false });
    const logger = createLogger({ level: 'warn', write: () => {} });
    const started = new ClusterOperator({
      client,
      driver: new KubeVirtDriver({ client, logger, metrics, namespace: NS, imageUrl: (ns, digest) => signer.url(ns, digest).replace('http://placeholder', imageBase), waitMs: 5_000 }),
      logger,
      metrics,
      imageDirectory,
      imageGcGraceMs: 0,
      namespace: NS,
      leaderElection: false,
      imageServer: { address: '127.0.0.1:0', signer },
    });
    await started.start();
    return started;
  }
  let imageBase = 'http://placeholder';

  /**
   * CDI's importer and virt-handler, at the API only: download every new DataVolume's URL and
   * check it against the store, then report the VM's context volumes Ready in the VMI.
   */
  async function platform(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for (const dv of await dataVolumes()) {
          if (dv.status?.phase === 'Succeeded' || !plays.imports) continue;
          const url = dv.spec.source?.http?.url ?? '';
          const response = await fetch(url);
          const body = Buffer.from(await response.arrayBuffer());
          const hex = /\/v1\/images\/([0-9a-f]{64})\.iso/.exec(url)?.[1] ?? '';
          if (response.status !== 200 || createHash('sha256').update(body).digest('hex') !== createHash('sha256').update(readFileSync(join(imageDirectory, `${hex}.iso`))).digest('hex')) throw new Error(`bad download ${response.status}`);
          downloads.push(dv.metadata?.name ?? '');
          await client.mergePatch(`${dvPath}/${dv.metadata?.name}/status`, { status: { phase: 'Succeeded', progress: '100.0%' } });
        }
        if (!plays.reportsVolumes) throw new Error('paused');
        const imported = new Set((await dataVolumes()).filter((d) => d.status?.phase === 'Succeeded').map((d) => d.metadata?.name));
        const spec = (await vm()).spec.template?.spec;
        const volumeStatus = (spec?.volumes ?? []).flatMap((v, i) => {
          const claim = v.dataVolume?.name;
          return claim && imported.has(claim) ? [{ name: v.name, target: `sd${String.fromCharCode(97 + i)}`, phase: 'Ready', reason: 'VolumeReady', persistentVolumeClaimInfo: { claimName: claim } }] : [];
        });
        const vmi = await client.get<V1VirtualMachineInstance>(vmiPath);
        if (JSON.stringify(vmi.status?.volumeStatus ?? []) !== JSON.stringify(volumeStatus)) await client.mergePatch(`${vmiPath}/status`, { status: { volumeStatus } });
      } catch {
        // the API server may be busy; the next round catches up
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  beforeAll(async () => {
    plane = await useControlPlane();
    kubectl = strict(plane.kubectl);
    await installCrds(plane);
    const fixtures = ['vm-crd.yaml', 'vmi-crd.yaml', 'vmim-crd.yaml', 'datavolume-crd.yaml', 'kubevirt-crd.yaml'].map((f) => join(REPO, 'test', 'fixtures', 'kubevirt', f));
    await kubectl(['apply', '--server-side', '--field-manager=recontext-tests', ...fixtures.flatMap((f) => ['-f', f])]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...fixtures.flatMap((f) => ['-f', f])]);
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['apply', '-f', '-'], nodeYaml('kv-node-a', ZONE_A));
    await kubectl(['apply', '-f', '-'], nodeYaml('kv-node-b', ZONE_B));
    await kubectl(['apply', '--server-side', `--field-manager=${GITOPS}`, '-n', NS, '-f', '-'], gitopsVm('512Mi'));
    await kubectl(['apply', '--server-side', '-n', NS, '-f', join(REPO, 'examples', 'gluster')]);
    client = KubeClient.fromKubeconfig(plane.kubeconfigPath);
    operator = await startOperator();
    imageBase = operator.imageServerUrl ?? '';
    // The VM starts once the operator has given it the empty drives (as kubectl apply before the
    // VM's first start does): its VMI has them from the beginning.
    await until('empty drives reserved', async () => ((await vm()).spec.template?.spec?.domain?.devices?.disks ?? []).filter((d) => d.cdrom).length === 4 ? true : undefined, 30_000);
    await startVmi();
    void platform(platformAbort.signal);
  });

  /** KubeVirt starting the VM: a VMI with the VM template's drives, running on kv-node-a. */
  async function startVmi(): Promise<void> {
    const disks = (await vm()).spec.template?.spec?.domain?.devices?.disks ?? [];
    await kubectl(['apply', '-n', NS, '-f', '-'], JSON.stringify({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name: VM }, spec: { domain: { devices: { disks } } } }));
    await kubectl(['patch', '-n', NS, 'vmi', VM, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', nodeName: 'kv-node-a' } })]);
  }

  afterAll(async () => {
    platformAbort.abort();
    await operator?.stop();
  });

  it('imports every layer image through a signed URL and adds one CD-ROM per layer next to the GitOps-owned disks', async () => {
    const ready = await until('VMContext Ready', async () => {
      const v = await vmContext();
      return isReady(v) ? v : undefined;
    }, 30_000);
    expect(ready.status?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('Converged');
    const dvs = await dataVolumes();
    expect(dvs).toHaveLength(4);
    for (const dv of dvs) {
      expect(dv.spec.source?.http?.url).toMatch(/\/v1\/images\/[0-9a-f]{64}\.iso\?ns=kubevirt-it&exp=\d+&sig=/);
      expect(dv.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'VMContext', name: VM, uid: ready.metadata.uid });
    }
    expect(downloads.sort()).toEqual(dvs.map((d) => d.metadata?.name).sort());

    const current = await vm();
    const disks = current.spec.template?.spec?.domain?.devices?.disks ?? [];
    expect(disks[0]).toEqual({ name: 'rootdisk', disk: { bus: 'virtio' } });
    expect(disks.slice(1).every((d) => d.cdrom?.bus === 'sata')).toBe(true);
    expect(ctxVolumes(current).map((v) => v.dataVolume?.name).sort()).toEqual(dvs.map((d) => d.metadata?.name).sort());
    expect(ready.status?.layers?.every((l) => l.device?.startsWith('ctx-'))).toBe(true);
    expect(ready.status?.lastRecontext?.attachStepsMs).toMatchObject({ import: expect.any(Number), apply: expect.any(Number), ready: expect.any(Number) });

    // Field ownership: the GitOps manager keeps everything it set except the two atomic lists.
    const managers = new Map((current.metadata?.managedFields ?? []).map((m) => [m.manager, JSON.stringify(m.fieldsV1)]));
    expect(managers.get(GITOPS)).toContain('"f:runStrategy"');
    expect(managers.get(GITOPS)).toContain('"f:resources"');
    expect(managers.get(KUBEVIRT_FIELD_MANAGER)).toContain('"f:disks"');
    expect(managers.get(KUBEVIRT_FIELD_MANAGER)).toContain(`"f:${MANAGED_VOLUMES_ANNOTATION}"`);
    expect(managers.get(KUBEVIRT_FIELD_MANAGER)).not.toContain('"f:resources"');
  });

  it('lives next to a GitOps manager: its other changes never conflict, and a forced revert of the lists is healed', async () => {
    // The GitOps tool changes the memory (its manifest without the lists it no longer owns): no conflict.
    await kubectl(['apply', '--server-side', `--field-manager=${GITOPS}`, '-n', NS, '-f', '-'], JSON.stringify({ ...JSON.parse(gitopsVm('1Gi')), spec: { runStrategy: 'Always', template: { metadata: { labels: { app: 'gluster-client' } }, spec: { domain: { resources: { requests: { memory: '1Gi' } } } } } } }));
    let current = await vm();
    expect(current.spec.template?.spec?.domain?.resources?.requests).toEqual({ memory: '1Gi' });
    expect(ctxVolumes(current)).toHaveLength(4);

    // Argo CD with RespectIgnoreDifferences applies the live lists back: same values, no conflict.
    const live = current.spec.template?.spec;
    await kubectl(['apply', '--server-side', `--field-manager=${GITOPS}`, '-n', NS, '-f', '-'], gitopsVm('1Gi', { disks: live?.domain?.devices?.disks ?? [], volumes: live?.volumes ?? [] }));
    expect(ctxVolumes(await vm())).toHaveLength(4);

    // A tool that force-applies its own lists drops the CD-ROMs: recontext puts them back, keeping the tool's entries.
    await kubectl(['apply', '--server-side', '--force-conflicts', `--field-manager=${GITOPS}`, '-n', NS, '-f', '-'], gitopsVm('1Gi', { disks: [{ name: 'rootdisk', disk: { bus: 'virtio' } }, { name: 'data', disk: { bus: 'virtio' } }], volumes: [{ name: 'rootdisk', containerDisk: { image: 'quay.io/containerdisks/debian:12' } }, { name: 'data', emptyDisk: { capacity: '1Gi' } }] }));
    current = await until('context volumes restored', async () => {
      const v = await vm();
      return ctxVolumes(v).length === 4 ? v : undefined;
    }, 20_000);
    expect((current.spec.template?.spec?.volumes ?? []).slice(0, 2).map((v) => v.name)).toEqual(['rootdisk', 'data']);
  });

  it('swaps a layer by changing only its DataVolume, then deletes the old DataVolume', async () => {
    const before = await vmContext();
    const beforeVm = await vm();
    const diskOrder = (beforeVm.spec.template?.spec?.domain?.devices?.disks ?? []).map((d) => d.name);
    await kubectl(['patch', '-n', NS, 'configmap', 'gluster-volume', '--type=merge', '-p', '{"data":{"client.vol":"volume gv0-swapped\\n"}}']);
    const after = await until('gluster-service swapped', async () => {
      const v = await vmContext();
      return isReady(v) && digestOf(v, 'gluster-service') !== digestOf(before, 'gluster-service') ? v : undefined;
    }, 30_000);
    const afterVm = await vm();
    expect((afterVm.spec.template?.spec?.domain?.devices?.disks ?? []).map((d) => d.name)).toEqual(diskOrder);
    const changed = ctxVolumes(afterVm).filter((v) => !ctxVolumes(beforeVm).some((b) => b.dataVolume?.name === v.dataVolume?.name));
    expect(changed.map((v) => v.name)).toEqual(['ctx-gluster-service']);
    expect(after.status?.lastRecontext?.trigger).toBe('LayerChange');
    await until('old DataVolume deleted', async () => ((await dataVolumes()).length === 4 ? true : undefined), 20_000);
    expect((await dataVolumes()).map((d) => d.metadata?.name).sort()).toEqual(ctxVolumes(afterVm).map((v) => v.dataVolume?.name).sort());
  });

  it('re-renders once per migration: DataVolumes for the target while it migrates, the swap after, none again on resync or restart', async () => {
    const before = await vmContext();
    const beforeVolumes = ctxVolumes(await vm()).map((v) => v.dataVolume?.name).sort();
    const uid = 'migration-0001';
    const stamp = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    // KubeVirt's order, as seen on the real cluster: the target virt-launcher pod is created and
    // scheduled at once, and its node is the first word of the target — 10–15 s before the VMI
    // names it (once that pod and its attachment pod are Ready). The images for kv-node-b are
    // built and imported from then on.
    const vmiUid = (await kubectl(['get', 'vmi', VM, '-n', NS, '-o', 'jsonpath={.metadata.uid}'])).trim();
    await kubectl(['apply', '-n', NS, '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } }));
    await kubectl(['create', '-n', NS, '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `virt-launcher-${VM}-target`, labels: { 'kubevirt.io': 'virt-launcher', 'kubevirt.io/created-by': vmiUid, 'kubevirt.io/migrationJobUID': uid } },
      spec: { nodeName: 'kv-node-b', automountServiceAccountToken: false, containers: [{ name: 'compute', image: 'virt-launcher' }] },
    }));
    await until('DataVolumes prepared for the target', async () => ((await dataVolumes()).length > 4 ? true : undefined), 20_000);
    expect((await kubectl(['get', 'vmi', VM, '-n', NS, '-o', 'jsonpath={.status.migrationState}'])).trim()).toBe(''); // before KubeVirt named the target
    // The handoff names the target; the migration starts.
    await kubectl(['patch', '-n', NS, 'vmi', VM, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { migrationState: { migrationUid: uid, sourceNode: 'kv-node-a', targetNode: 'kv-node-b' } } })]);
    await kubectl(['patch', '-n', NS, 'vmi', VM, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { migrationState: { startTimestamp: stamp(), mode: 'PreCopy' } } })]);
    // …while the VM still runs on kv-node-a with its old volumes (a swap waits for the migration's end).
    expect(ctxVolumes(await vm()).map((v) => v.dataVolume?.name).sort()).toEqual(beforeVolumes);
    const end = new Date();
    // The end in KubeVirt's two writes: the node and the end time, then completed.
    await kubectl(['patch', '-n', NS, 'vmi', VM, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { nodeName: 'kv-node-b', migrationState: { endTimestamp: end.toISOString().replace(/\.\d+Z$/, 'Z') } } })]);
    await kubectl(['patch', '-n', NS, 'vmi', VM, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { migrationState: { completed: true, failed: false } } })]);
    const after = await until('re-rendered for kv-node-b', async () => {
      const v = await vmContext();
      return isReady(v) && v.status?.lastMigrationId === uid ? v : undefined;
    }, 30_000);
    expect(after.status?.node).toBe('kv-node-b');
    expect(after.status?.lastRecontext?.trigger).toBe('Migration');
    expect(digestOf(after, 'site-cache')).not.toBe(digestOf(before, 'site-cache'));
    expect(digestOf(after, 'data-residency')).not.toBe(digestOf(before, 'data-residency'));
    expect(digestOf(after, 'gluster-service')).toBe(digestOf(before, 'gluster-service'));
    expect(after.status?.lastRecontext?.sinceMigrationMs?.volumeReady).toBeGreaterThanOrEqual(after.status?.lastRecontext?.sinceMigrationMs?.volumeInSpec ?? Infinity);

    const migrations = async () => (await metrics.recontextDuration.get()).values.filter((v) => v.labels.trigger === 'Migration' && v.metricName?.endsWith('_count')).reduce((sum, v) => sum + v.value, 0);
    expect(await migrations()).toBe(1);
    // A status write the VMI makes again (resync-like) and a restart of the operator: no second re-render.
    await kubectl(['patch', '-n', NS, 'vmi', VM, '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Running"}}']);
    await operator.stop();
    operator = await startOperator();
    imageBase = operator.imageServerUrl ?? '';
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await migrations()).toBe(0);
    const again = await vmContext();
    expect(again.status?.lastRecontext?.startedAt).toBe(after.status?.lastRecontext?.startedAt);
  });

  it('asks KubeVirt for a migration toward an array (MigrationPolicy), and refuses the impossible up front', async () => {
    const driver = new KubeVirtDriver({ client, logger: createLogger({ level: 'warn', write: () => {} }), metrics: new OperatorMetrics({ defaultMetrics: false }), namespace: NS, imageUrl: () => 'http://unused' });
    const target = { namespace: NS, vmContext: VM, kubevirt: { name: VM } };
    try {
      const asked = await driver.migrate(target, { nodeSelector: ZONE_A, requester: `${NS}/cpu-policy` });
      expect(asked.state).toBe('Requested');
      const vmim = await client.get<{ spec: object; metadata: { labels: Record<string, string> } }>(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations/${asked.id}`);
      expect(vmim.spec).toEqual({ vmiName: VM, addedNodeSelector: ZONE_A });
      expect(vmim.metadata.labels['recontext.dev/requested-by']).toMatch(/^kubevirt-it-cpu-policy-[0-9a-f]{8}$/);
      expect((await driver.migrationStatus(target, asked.id))?.state).toBe('Requested');
      await client.mergePatch(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations/${asked.id}/status`, { status: { phase: 'Succeeded', migrationState: { targetNode: 'kv-node-a' } } });
      expect(await driver.migrationStatus(target, asked.id)).toEqual({ id: asked.id, state: 'Succeeded', node: 'kv-node-a' });

      await expect(driver.migrate(target, { nodeSelector: { 'recontext.dev/array': 'nowhere' }, requester: 'p' })).rejects.toMatchObject({ name: 'MigrationImpossibleError', reason: 'NoTargetNode' });
      await client.mergePatch(`${vmiPath}/status`, { status: { conditions: [{ type: 'LiveMigratable', status: 'False', reason: 'DisksNotLiveMigratable', message: 'PVC x is not shared' }] } });
      await until('the driver sees it', async () => (await driver.migrate(target, { nodeSelector: ZONE_A, requester: 'p' }).then(() => undefined, (error: unknown) => error)) as Error | undefined, 10_000).then((error) => {
        expect(error).toMatchObject({ reason: 'NotMigratable' });
        expect(error.message).toMatch(/DisksNotLiveMigratable/);
      });
      await client.mergePatch(`${vmiPath}/status`, { status: { conditions: [] } });
      // KubeVirt takes one migration of a VMI at a time (its webhook refuses a second): not asked.
      const before = (await client.list(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations`)).items.length;
      const saved = (await client.get<V1VirtualMachineInstance>(vmiPath)).status?.migrationState ?? null;
      await client.mergePatch(`${vmiPath}/status`, { status: { migrationState: { targetNode: 'kv-node-b', migrationUid: 'in-flight-1', completed: false } } });
      // A driver started now lists the VMI as it is (the first one's cache may lag: it would ask).
      const fresh = new KubeVirtDriver({ client, logger: createLogger({ level: 'warn', write: () => {} }), metrics: new OperatorMetrics({ defaultMetrics: false }), namespace: NS, imageUrl: () => 'http://unused' });
      const refused = await fresh.migrate(target, { nodeSelector: ZONE_A, requester: 'p' }).then(() => undefined, (error: unknown) => error as Error).finally(() => fresh.close());
      expect(refused).toMatchObject({ name: 'MigrationImpossibleError', reason: 'MigrationInFlight' });
      expect(refused?.message).toMatch(/in flight \(to kv-node-b\)/);
      expect((await client.list(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations`)).items).toHaveLength(before);
      await client.mergePatch(`${vmiPath}/status`, { status: { migrationState: saved } });
    } finally {
      await driver.close();
    }
  });

  it('a layer whose drive the running VM lacks: an empty drive, never a volume, RestartRequired naming it; delivered after the restart', async () => {
    // As if data-residency had joined after the VM started: its VMI has no such drive.
    const drive = 'ctx-data-residency';
    const vmi = await client.get<V1VirtualMachineInstance>(vmiPath);
    const without = (vmi.spec.domain.devices.disks ?? []).filter((d) => d.name !== drive);
    await client.mergePatch(vmiPath, { spec: { domain: { devices: { disks: without } } } });
    await kubectl(['patch', '-n', NS, 'configmap', 'gluster-volume', '--type=merge', '-p', '{"data":{"client.vol":"volume gv0-restart\\n"}}']);
    const blocked = await until('RestartRequired', async () => {
      const v = await vmContext();
      return v.status?.conditions?.find((c) => c.type === 'Ready' && c.reason === 'RestartRequired') ? v : undefined;
    }, 30_000);
    expect(blocked.status?.conditions?.find((c) => c.type === 'Ready')?.message).toMatch(/no CD-ROM drive for data-residency .*arrives when the VM restarts/);
    // KubeVirt's VMI webhook refuses a hot-plugged CD-ROM disk: the drive stays, empty; no volume for it.
    const spec = (await vm()).spec.template?.spec;
    expect(spec?.domain?.devices?.disks?.find((d) => d.name === drive)).toEqual({ name: drive, cdrom: { bus: 'sata' } });
    expect(spec?.volumes?.some((v) => v.name === drive)).toBe(false);
    // The other layers are still swapped live: their volumes follow the new content.
    expect(ctxVolumes((await vm()))).toHaveLength(3);
    // The VM restarts: a new VMI with every drive of the template. Ready again, without waiting for a resync.
    await kubectl(['delete', '-n', NS, 'vmi', VM]);
    await startVmi();
    await until('Ready again', async () => (isReady(await vmContext()) ? true : undefined), 30_000);
    expect(ctxVolumes(await vm()).map((v) => v.name)).toContain(drive);
  });

  it('removes a layer it no longer carries, and everything when the VMContext goes', async () => {
    await kubectl(['patch', '-n', NS, 'vmcontext', VM, '--type=json', '-p', '[{"op":"remove","path":"/spec/layers/2"}]']);
    await until('data-residency removed from the VM', async () => {
      const v = await vm();
      return ctxVolumes(v).length === 3 && !ctxVolumes(v).some((x) => x.name === 'ctx-data-residency') && !(v.spec.template?.spec?.domain?.devices?.disks ?? []).some((d) => d.name === 'ctx-data-residency') ? true : undefined;
    }, 30_000);
    await kubectl(['delete', '-n', NS, 'vmcontext', VM, '--wait=false']);
    const cleaned = await until('VM without context volumes', async () => {
      const v = await vm();
      return ctxVolumes(v).length === 0 ? v : undefined;
    }, 30_000);
    expect((cleaned.spec.template?.spec?.volumes ?? []).map((v) => v.name)).toEqual(['rootdisk', 'data']);
    expect(cleaned.metadata?.annotations?.[MANAGED_VOLUMES_ANNOTATION]).toBe('');
    await until('no DataVolume left', async () => ((await dataVolumes()).length === 0 ? true : undefined), 30_000);
    await until('VMContext gone', async () => ((await client.getOrUndefined(`/apis/recontext.dev/v1alpha1/namespaces/${NS}/vmcontexts/${VM}`)) ? undefined : true), 20_000);
  });

  it('a VM that vanishes mid-swap: VMNotFound, and nothing left once its VMContext goes too', async () => {
    await kubectl(['apply', '--server-side', '-n', NS, '-f', join(REPO, 'examples', 'gluster', 'vmcontext-gluster-client.yaml')]);
    await until('Ready', async () => (isReady(await vmContext()) ? true : undefined), 30_000);
    plays.imports = false; // the next images stay importing
    await kubectl(['patch', '-n', NS, 'configmap', 'gluster-volume', '--type=merge', '-p', '{"data":{"client.vol":"volume gv0-vanish\\n"}}']);
    await until('a DataVolume importing', async () => ((await dataVolumes()).some((d) => d.status?.phase !== 'Succeeded') ? true : undefined), 20_000);
    await kubectl(['delete', '-n', NS, 'vm', VM, '--wait=false']);
    await kubectl(['delete', '-n', NS, 'vmi', VM, '--wait=false']);
    const gone = await until('VMNotFound', async () => {
      const v = await vmContext();
      return v.status?.conditions?.find((c) => c.type === 'Ready' && c.reason === 'VMNotFound') ? v : undefined;
    }, 30_000);
    expect(gone.status?.layers).toBeUndefined();
    await kubectl(['delete', '-n', NS, 'vmcontext', VM, '--wait=false']);
    await until('no DataVolume left', async () => ((await dataVolumes()).length === 0 ? true : undefined), 30_000);
    await until('VMContext gone', async () => ((await client.getOrUndefined(`/apis/recontext.dev/v1alpha1/namespaces/${NS}/vmcontexts/${VM}`)) ? undefined : true), 20_000);
    await operator.collectImages();
    expect(readdirSync(imageDirectory).filter((f) => f.endsWith('.iso'))).toEqual([]);
    plays.imports = true;
  });
});

// Each on an API server of its own (ownPlane): one without CDI; one with a KubeVirt resource,
// which the driver reads cluster-wide, so on the shared server it would turn hotplug off for
// every other test's driver.
describe.skipIf(controlPlaneSkipReason())('KubeVirt driver and the platform it finds', () => {
  let cp: ControlPlane | undefined;
  let operator: ClusterOperator | undefined;
  afterEach(async () => {
    await operator?.stop();
    await cp?.stop();
    [operator, cp] = [undefined, undefined];
  });

  it('reports CDIMissing as a condition and does not spin', async () => {
    let admin: KubeClient;
    let metrics: OperatorMetrics;
    ({ cp, operator, admin, metrics } = await ownPlane(['vm-crd.yaml', 'vmi-crd.yaml'], async (kubectl) => {
      await kubectl(['apply', '--server-side', '-n', NS, '-f', join(REPO, 'examples', 'gluster')]);
    }));
    const blocked = await until('CDIMissing', async () => {
      const v = await getVMContext(admin, NS, VM);
      return v.status?.conditions?.find((c) => c.type === 'Ready' && c.reason === 'CDIMissing') ? v : undefined;
    }, 30_000);
    expect(blocked.status?.conditions?.find((c) => c.type === 'Ready')?.message).toMatch(/install CDI/);
    const reconciles = async () => (await metrics.reconcileTotal.get()).values.filter((v) => v.labels.controller === 'vmcontext').reduce((sum, v) => sum + v.value, 0);
    await new Promise((r) => setTimeout(r, 2_000)); // startup churn (layer statuses re-enqueue their VMs) settles
    const before = await reconciles();
    await new Promise((r) => setTimeout(r, 4_000));
    expect((await reconciles()) - before).toBeLessThanOrEqual(1); // next look: in 60 s
  });

  it('says HotplugDisabled, with what to change, while the KubeVirt resource turns declarative hotplug off, and heals when it is on', async () => {
    const kv = (featureGates: string[]) => JSON.stringify({ apiVersion: 'kubevirt.io/v1', kind: 'KubeVirt', metadata: { name: 'kubevirt', namespace: NS }, spec: { configuration: { developerConfiguration: { featureGates } } } });
    let admin: KubeClient;
    let kubectl: ReturnType<typeof strict>;
    ({ cp, operator, admin, kubectl } = await ownPlane(['vm-crd.yaml', 'vmi-crd.yaml', 'datavolume-crd.yaml', 'kubevirt-crd.yaml'], async (kubectl) => {
      await kubectl(['apply', '-f', '-'], kv([]));
      await kubectl(['patch', '-n', NS, 'kubevirt', 'kubevirt', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Deployed', observedKubeVirtVersion: 'v1.7.2' } })]);
      // A stopped VM: the driver would give it empty drives, which KubeVirt refuses without the gate.
      await kubectl(['apply', '--server-side', `--field-manager=${GITOPS}`, '-n', NS, '-f', '-'], gitopsVm('512Mi'));
      await kubectl(['apply', '--server-side', '-n', NS, '-f', join(REPO, 'examples', 'gluster')]);
    }));
    const off = await until('HotplugDisabled', async () => {
      const v = await getVMContext(admin, NS, VM);
      return v.status?.conditions?.find((c) => c.type === 'Ready' && c.reason === 'HotplugDisabled') ? v : undefined;
    }, 30_000);
    expect(off.status?.conditions?.find((c) => c.type === 'Ready')?.message).toMatch(/v1\.7\.2.*DeclarativeHotplugVolumes feature gate is off.*add it to spec\.configuration\.developerConfiguration\.featureGates/);
    const drives = async () => ((await admin.get<V1VirtualMachine>(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines/${VM}`)).spec.template?.spec?.domain?.devices?.disks ?? []).filter((d) => d.cdrom);
    expect(await drives()).toEqual([]); // nothing KubeVirt would refuse was written
    // Turned on: healed at the next look (KubeVirt's configuration is read again at most every 30 s).
    await kubectl(['apply', '-f', '-'], kv(['DeclarativeHotplugVolumes']));
    await until('the empty drives reserved', async () => ((await drives()).length === 4 ? true : undefined), 90_000);
  }, 150_000);
});

/**
 * An API server of the test's own: recontext's CRDs, the named KubeVirt/CDI fixture CRDs, the
 * test namespace, what `setup` applies, then an operator with the KubeVirt driver on it.
 */
async function ownPlane(fixtures: readonly string[], setup: (kubectl: ReturnType<typeof strict>) => Promise<void>): Promise<{ cp: ControlPlane; operator: ClusterOperator; admin: KubeClient; metrics: OperatorMetrics; kubectl: ReturnType<typeof strict> }> {
  const cp = await startExclusiveControlPlane();
  const kubectl = strict(cp.kubectl.bind(cp));
  await kubectl(['apply', '--server-side', '-f', join(REPO, 'config', 'crd')]);
  const files = fixtures.map((f) => join(REPO, 'test', 'fixtures', 'kubevirt', f));
  await kubectl(['apply', '--server-side', ...files.flatMap((f) => ['-f', f])]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/vmcontexts.recontext.dev']);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...files.flatMap((f) => ['-f', f])]);
  await kubectl(['create', 'namespace', NS]);
  await setup(kubectl);
  const admin = KubeClient.fromKubeconfig(cp.kubeconfigPath);
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const logger = createLogger({ level: 'warn', write: () => {} });
  const driver = new KubeVirtDriver({ client: admin, logger, metrics, imageUrl: () => 'http://unused' });
  const operator = new ClusterOperator({ client: admin, driver, logger, metrics, imageDirectory: mkdtempSync(join(tmpdir(), 'kv-own-plane-')), leaderElection: false });
  await operator.start();
  return { cp, operator, admin, metrics, kubectl };
}
