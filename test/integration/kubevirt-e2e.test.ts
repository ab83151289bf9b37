// The whole KubeVirt chain with real parts, KubeVirt itself played by the test-only stand-in
// (test/kubevirt-standin: VMs as real libvirt domains, DataVolumes imported over real HTTP from
// the operator's image server, declarative CD-ROM hotplug into the running QEMU guest,
// VirtualMachineInstanceMigrations as real live migrations):
//
//   kubectl apply → layer images → DataVolumes → CD-ROMs in the running guest → FFS in the guest
//   → VirtualMachineInstanceMigration (live, host-a → host-b) → re-render for node-b → swap →
//   FFS shows node-b's cache address and the layer's hook runs.
//
// The guest runs the Go agent (guest/agent) on its drives and the GlusterFS client's stand-in
// (test/testbed/guest/fat/gluster-client), which reads /etc/glusterfs (a link into the union) at
// start and again on SIGHUP: the example's own gluster-reload hook, a signal through
// /run/glusterfs/client.pid, allowed by the guest's policy (test/testbed/guest/fat/ffs.yaml).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1VirtualMachine } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/runtime/log.js';
import { ClusterOperator } from '../../src/controllers/cluster-operator.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { KubeVirtDriver } from '../../src/drivers/kubevirt/driver.js';
import { ImageUrlSigner } from '../../src/images/server.js';
import { KubeClient } from '../../src/kube/client.js';
import { controlPlaneSkipReason, installCrds, useControlPlane, type SharedControlPlane } from '../controlplane/shared.js';
import { domainName, installKubeVirtCrds, KubeVirtStandIn } from '../kubevirt-standin/index.js';
import { ffsRun, GLUSTER_CLIENT } from '../testbed/fat.js';
import { ensureGuest } from '../testbed/guest.js';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';
import { REPO, ZONE_A, ZONE_B, getVMContext, isReady, strict, until } from './scenario.js';

const NS = 'kubevirt-e2e';
const VM = 'gluster-client-1';

function vmManifest(runStrategy: 'Halted' | 'Always'): string {
  return JSON.stringify({
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name: VM },
    spec: {
      runStrategy,
      template: {
        metadata: { labels: { app: 'gluster-client' } },
        spec: {
          domain: { resources: { requests: { memory: '512Mi' } }, devices: { disks: [{ name: 'rootdisk', disk: { bus: 'virtio' } }] } },
          volumes: [{ name: 'rootdisk', containerDisk: { image: 'quay.io/containerdisks/debian:12' } }],
        },
      },
    },
  });
}

describe.skipIf(controlPlaneSkipReason() ?? testbedSkipReason())('KubeVirt chain end to end (API server + stand-in with real QEMU guests)', () => {
  let plane: SharedControlPlane;
  let tb: Testbed;
  let client: KubeClient;
  let kubectl: ReturnType<typeof strict>;
  let standIn: KubeVirtStandIn | undefined;
  let operator: ClusterOperator | undefined;
  let imageBase = 'http://placeholder';
  const storageDir = mkdtempSync(join(tmpdir(), 'kv-e2e-dv-'));
  const imageDirectory = mkdtempSync(join(tmpdir(), 'kv-e2e-images-'));
  const signer = new ImageUrlSigner(ImageUrlSigner.randomKey(), 'http://placeholder');
  const domain = domainName(NS, VM);
  const vmContext = () => getVMContext(client, NS, VM);
  /**
   * The client's report on the guest console: the cache address it read through FFS, at start
   * (`start`: the first stack, read as it is) or told by the hook (`reload`).
   */
  const clientSees = (pattern: RegExp, from: number, when = '(?:start|reload)') =>
    tb.waitForConsole(domain, new RegExp(`^APP \\d+ ${when} /etc/glusterfs/cache\\.conf .*${pattern.source}`, 'm'), 90_000, from);

  beforeAll(async () => {
    const fat = await ensureGuest({ variant: 'fat', log: (line) => console.log(line) });
    [plane, tb] = await Promise.all([useControlPlane(), useTestbed()]);
    kubectl = strict(plane.kubectl);
    await installCrds(plane);
    await installKubeVirtCrds(plane);
    client = KubeClient.fromKubeconfig(plane.kubeconfigPath);
    await kubectl(['create', 'namespace', NS]);
    standIn = new KubeVirtStandIn({
      client,
      domainXml: (o) => tb.domainXml(o),
      nodes: [
        { name: 'kv-e2e-node-a', host: tb.host('host-a'), labels: ZONE_A },
        { name: 'kv-e2e-node-b', host: tb.host('host-b'), labels: ZONE_B },
      ],
      storageDir,
      namespace: NS,
      guest: fat,
      memoryMiB: 512,
      // FFS handles the drives in the guest (the test agent only sends its heartbeat); the client reads its context.
      cmdlineExtra: `${ffsRun()} ctx.run=${GLUSTER_CLIENT}`,
    });
    await standIn.start();
    const metrics = new OperatorMetrics({ defaultMetrics: false });
    const logger = createLogger({ level: 'info', write: (line) => void process.stdout.write(`[operator] ${line}`) });
    operator = new ClusterOperator({
      client,
      driver: new KubeVirtDriver({ client, logger, metrics, namespace: NS, imageUrl: (ns, digest) => signer.url(ns, digest).replace('http://placeholder', imageBase) }),
      logger,
      metrics,
      imageDirectory,
      namespace: NS,
      leaderElection: false,
      imageServer: { address: '127.0.0.1:0', signer },
    });
    await operator.start();
    imageBase = operator.imageServerUrl ?? '';
  }, 400_000);

  afterAll(async () => {
    await operator?.stop();
    await standIn?.stop();
    rmSync(storageDir, { recursive: true, force: true });
    rmSync(imageDirectory, { recursive: true, force: true });
  });

  it('kubectl apply: empty drives while the VM is stopped, then the layers hot-plugged into the running guest, merged by FFS', async () => {
    await kubectl(['apply', '--server-side', '--field-manager=argocd-controller', '-n', NS, '-f', '-'], vmManifest('Halted'));
    await kubectl(['apply', '--server-side', '-n', NS, '-f', join(REPO, 'examples', 'gluster')]);
    await until('empty CD-ROM drives reserved', async () => {
      const vm = await client.get<V1VirtualMachine>(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines/${VM}`);
      const disks = vm.spec.template?.spec?.domain?.devices?.disks ?? [];
      return disks.filter((d) => d.name.startsWith('ctx-') && d.cdrom).length === 4 ? true : undefined;
    }, 30_000);
    // The drives are in the VM spec before the operator writes the VMContext's status: wait for it.
    await until('VMContext waiting for its VM to run', async () => {
      const reason = (await vmContext()).status?.conditions?.find((c) => c.type === 'Ready')?.reason;
      return reason === 'VMNotRunning' ? reason : undefined;
    }, 30_000);

    await kubectl(['patch', '-n', NS, 'vm', VM, '--type=merge', '-p', '{"spec":{"runStrategy":"Always"}}']);
    await tb.waitForConsole(domain, /"msg":"watching context devices"/, 180_000);
    const from = 0;
    const ready = await until('VMContext Ready on node-a', async () => {
      const v = await vmContext();
      return isReady(v) && v.status?.node === 'kv-e2e-node-a' ? v : undefined;
    }, 180_000);
    expect(ready.status?.layers?.every((l) => l.device?.startsWith('ctx-'))).toBe(true);
    // The images are in the drives when the agent starts (imported while the VM was stopped), or
    // arrive just after: either the client reads them at start or the hook tells it.
    await clientSees(/cache-server = cache-a\.zone-a/, from);
    console.log(`[e2e] first delivery: attach steps ${JSON.stringify(ready.status?.lastRecontext?.attachStepsMs)} ms`);
  }, 400_000);

  it('live migration by a VirtualMachineInstanceMigration: re-rendered for node-b, swapped, and the guest application reads the new address', async () => {
    const before = await vmContext();
    const from = tb.consoleOffset(domain);
    await kubectl(['create', '-n', NS, '-f', '-'], JSON.stringify({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name: 'move-to-b' }, spec: { vmiName: VM, addedNodeSelector: { 'topology.kubernetes.io/zone': 'zone-b' } } }));
    const uid = (await client.get<{ metadata: { uid: string } }>(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations/move-to-b`)).metadata.uid;
    const after = await until('re-rendered for node-b', async () => {
      const v = await vmContext();
      return isReady(v) && v.status?.lastMigrationId === uid ? v : undefined;
    }, 180_000);
    expect(after.status?.node).toBe('kv-e2e-node-b');
    expect(after.status?.lastRecontext?.trigger).toBe('Migration');
    const changed = (after.status?.layers ?? []).filter((l) => before.status?.layers?.find((b) => b.name === l.name)?.digest !== l.digest).map((l) => l.name).sort();
    expect(changed).toEqual(['data-residency', 'site-cache']);
    await clientSees(/cache-server = cache-b\.zone-b/, from, 'reload');
    // The guest ran on throughout: its heartbeat never stopped across the migration and the swap.
    expect(tb.consoleLog(domain).slice(from).match(/CTX ALIVE \d+/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    const last = after.status?.lastRecontext;
    console.log(`[e2e] migration ${uid}: phases ${JSON.stringify(last?.phasesMs)} attach steps ${JSON.stringify(last?.attachStepsMs)} since migration end ${JSON.stringify(last?.sinceMigrationMs)} ms`);
    expect(last?.sinceMigrationMs?.volumeReady).toBeGreaterThanOrEqual(0);
  }, 400_000);
});
