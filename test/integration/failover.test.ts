// Leader failover in the middle of a mass recontextualization, with real operator processes:
// 200 VMContexts, one ConfigMap edit re-renders all of them at once, the leading process is
// SIGKILLed part-way, and the standby (warm caches, its own image store) takes over. Afterwards
// every VMContext is Ready with exactly the digests the renderer computes from the objects on
// the server (what `recontext render` computes offline), no VMContext lacks a layer, the new
// leader's store holds every image a status names (it rebuilt what the old leader had built),
// and after image GC (the store's gc over the digests the statuses name, which is what the
// operator's collectImages does) no image is left that no status names.
//
// Driver "none" for the 200: with the KubeVirt driver every VM also needs a VM, a VMI, one
// DataVolume per layer and a platform stand-in importing 600 DataVolumes and reporting volume
// status, which on 2 shared cores takes minutes per round (beyond this file's 90 s budget). The
// KubeVirt path of failover is the second test, with 8 VMs: DataVolumes the old leader created
// (URLs signed with the key both replicas share) import from the new leader, which rebuilds the
// same content-addressed images in its own store; stale DataVolumes are deleted, none is orphaned.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { V1beta1DataVolume } from '@kubevirt-ui-ext/kubevirt-api/containerized-data-importer';
import type { V1VirtualMachine } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { ContextLayer, VMContext } from '../../src/crds/index.js';
import { LayerImageStore } from '../../src/images/layer-image.js';
import { KubeClient } from '../../src/kube/client.js';
import { selectLayers } from '../../src/reconcile/layers.js';
import { renderLayer, type SourceLookup } from '../../src/reconcile/render.js';
import { controlPlaneSkipReason, installCrds, useControlPlane } from '../controlplane/shared.js';
import { playKubeVirt } from '../support/kubevirt-platform.js';
import { freePort, startOperatorProcess, type OperatorProcess } from '../support/operator-process.js';
import { REPO, nodeYaml, strict, until, ZONE_A } from './scenario.js';

const API = '/apis/recontext.dev/v1alpha1';
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
});

type ConfigMap = { metadata: { name: string; namespace?: string }; data?: Record<string, string> };

const yamlDocs = (objects: readonly object[]) => objects.map((o) => JSON.stringify(o)).join('\n---\n');

/** A temporary directory, removed after the file's tests. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.unshift(() => rmSync(dir, { recursive: true, force: true })); // after the processes are gone
  return dir;
}

/** Layers for the fleet: two read the ConfigMap every recontextualization edits, one is static. */
function fleetManifests(ns: string, vms: number, target: (name: string) => object): object[] {
  const objects: object[] = [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fleet-config', namespace: ns }, data: { 'app.conf': 'generation = 1\n' } },
    {
      apiVersion: 'recontext.dev/v1alpha1',
      kind: 'ContextLayer',
      metadata: { name: 'app', namespace: ns, labels: { tier: 'fleet' } },
      spec: {
        class: 'service',
        files: [
          { path: 'etc/app.conf', contentFrom: { configMapKeyRef: { name: 'fleet-config', key: 'app.conf' } } },
          { path: 'etc/vm-id', template: true, content: 'vm = {{ vm.name }}\n' }, // one image per VM
        ],
      },
    },
    {
      apiVersion: 'recontext.dev/v1alpha1',
      kind: 'ContextLayer',
      metadata: { name: 'site', namespace: ns, labels: { tier: 'fleet' } },
      spec: { class: 'infrastructure', sources: [{ configMap: 'fleet-config', directory: 'site' }] },
    },
    { apiVersion: 'recontext.dev/v1alpha1', kind: 'ContextLayer', metadata: { name: 'base', namespace: ns }, spec: { class: 'legislative', files: [{ path: 'etc/base', content: 'static\n' }] } },
  ];
  for (let i = 0; i < vms; i++) {
    const name = `vm-${String(i).padStart(3, '0')}`;
    objects.push({
      apiVersion: 'recontext.dev/v1alpha1',
      kind: 'VMContext',
      metadata: { name, namespace: ns, labels: { fleet: 'yes' } },
      spec: { target: target(name), layers: [{ name: 'base' }], layerSelector: { matchLabels: { tier: 'fleet' } } },
    });
  }
  return objects;
}

/** The digests each VMContext should carry, rendered from the objects as the server has them now. */
async function expectedDigests(client: KubeClient, ns: string): Promise<Map<string, Map<string, string>>> {
  const layers = (await client.list<ContextLayer>(`${API}/namespaces/${ns}/contextlayers`)).items;
  const configMaps = new Map((await client.list<ConfigMap>(`/api/v1/namespaces/${ns}/configmaps`)).items.map((c) => [c.metadata.name, c]));
  const sources: SourceLookup = {
    configMap: (name) => {
      const cm = configMaps.get(name);
      return cm ? Object.fromEntries(Object.entries(cm.data ?? {}).map(([k, v]) => [k, Buffer.from(v)])) : undefined;
    },
    secret: () => undefined,
  };
  const expected = new Map<string, Map<string, string>>();
  for (const vmContext of (await client.list<VMContext>(`${API}/namespaces/${ns}/vmcontexts`)).items) {
    const vm = { name: vmContext.spec.target.kubevirt?.name ?? vmContext.spec.target.libvirt?.domain ?? vmContext.metadata.name, namespace: ns, labels: vmContext.metadata.labels ?? {} };
    const selection = selectLayers(vmContext, layers);
    expected.set(vmContext.metadata.name, new Map(selection.layers.map((l) => [l.metadata.name, renderLayer(l, { vm, node: { name: 'node-a', labels: ZONE_A }, sources }).digest])));
  }
  return expected;
}

/** How many VMContexts are Ready (for their generation) with exactly the expected layers and digests. */
function converged(vmContexts: readonly VMContext[], expected: Map<string, Map<string, string>>, reason: string): VMContext[] {
  return vmContexts.filter((v) => {
    const want = expected.get(v.metadata.name);
    const ready = v.status?.conditions?.find((c) => c.type === 'Ready');
    const have = new Map((v.status?.layers ?? []).map((l) => [l.name, l.digest]));
    return want !== undefined && ready?.status === 'True' && ready.reason === reason && v.status?.observedGeneration === v.metadata.generation && have.size === want.size && [...want].every(([name, digest]) => have.get(name) === digest);
  });
}

const isos = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.iso')).sort();
const hexes = (vmContexts: readonly VMContext[]) => [...new Set(vmContexts.flatMap((v) => (v.status?.layers ?? []).map((l) => `${l.digest.replace(/^sha256:/, '')}.iso`)))].sort();

/** Waits until one of the processes leads; returns [leader, standby]. */
async function leaderOf(operators: readonly OperatorProcess[]): Promise<[OperatorProcess, OperatorProcess]> {
  const index = await until('a leader', async () => {
    for (const [i, o] of operators.entries()) if (await o.leading()) return i;
    return undefined;
  }, 60_000);
  return [operators[index]!, operators[1 - index]!];
}

const LEASE = ['--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '500ms'];
const echoErrors = (line: string) => /"level":"error"/.test(line) || (!line.startsWith('{') && line.trim() !== '');

describe.skipIf(controlPlaneSkipReason())('leader failover during a mass recontextualization', () => {
  it('200 VMContexts: the standby takes over mid-way, every VM converges to its desired digests, and GC leaves only what statuses name', async () => {
    const ns = 'failover';
    const vms = 200;
    const plane = await useControlPlane();
    const kubectl = strict(plane.kubectl);
    await installCrds(plane);
    await kubectl(['create', 'namespace', ns]);
    await kubectl(['apply', '-n', ns, '-f', '-'], yamlDocs(fleetManifests(ns, vms, (name) => ({ libvirt: { domain: name } }))));
    const client = KubeClient.fromKubeconfig(plane.kubeconfigPath);
    const list = async () => (await client.list<VMContext>(`${API}/namespaces/${ns}/vmcontexts`)).items;

    const dirs = [tempDir('failover-a-'), tempDir('failover-b-')];
    const t0 = Date.now();
    const operators = await Promise.all(
      dirs.map((dir) => startOperatorProcess(['--kubeconfig', plane.kubeconfigPath, '-n', ns, '--driver', 'none', '--concurrency', '8', '--image-dir', dir, ...LEASE, '--log-level', 'info'], { echo: echoErrors })),
    );
    for (const o of operators) cleanups.push(() => o.kill());
    const [leader, standby] = await leaderOf(operators);
    const leaderDir = dirs[operators.indexOf(leader)]!;
    const standbyDir = dirs[operators.indexOf(standby)]!;

    let expected = await expectedDigests(client, ns);
    await until('initial convergence', async () => (converged(await list(), expected, 'ImagesReady').length === vms ? true : undefined), 60_000);
    const initialMs = Date.now() - t0;

    // One edit re-renders two layers of every VM: 200 recontextualizations at once.
    const editedAt = Date.now();
    await client.mergePatch(`/api/v1/namespaces/${ns}/configmaps/fleet-config`, { data: { 'app.conf': 'generation = 2\n' } });
    expected = await expectedDigests(client, ns);
    // Kill as soon as the first VMs have the edit (polling tightly: the leader needs only seconds for all).
    let doneAtKill = 0;
    for (const deadline = Date.now() + 30_000; doneAtKill === 0 && Date.now() < deadline; ) {
      doneAtKill = converged(await list(), expected, 'ImagesReady').length;
      if (doneAtKill === 0) await new Promise((r) => setTimeout(r, 20));
    }
    leader.kill('SIGKILL');
    expect(doneAtKill).toBeGreaterThan(0);
    const killedAt = Date.now();
    expect(doneAtKill).toBeLessThan(vms); // it was killed mid-way, not after finishing

    await until('the standby leads', async () => (await standby.leading() ? true : undefined), 20_000);
    const failoverMs = Date.now() - killedAt;
    // Throughout, every VMContext keeps all three layers in its status (old digests or new, never fewer).
    const short: string[] = [];
    const final = await until('every VMContext converged after failover', async () => {
      const all = await list();
      for (const v of all) if ((v.status?.layers ?? []).length !== 3) short.push(`${v.metadata.name}: ${(v.status?.layers ?? []).map((l) => l.name).join(',')}`);
      return converged(all, expected, 'ImagesReady').length === vms ? all : undefined;
    }, 60_000);
    const convergedMs = Date.now() - killedAt;
    expect(short).toEqual([]);
    expect(standby.gone()).toBe(false);

    // None lacks a layer: three per VM, each the digest the renderer computes; the app layer has the edit.
    for (const v of final) expect(v.status?.layers?.map((l) => l.name)).toEqual(['base', 'site', 'app']);
    const appImage = readFileSync(join(standbyDir, `${final[0]!.status!.layers!.find((l) => l.name === 'app')!.digest.slice(7)}.iso`));
    expect(appImage.includes('generation = 2')).toBe(true);

    // The new leader serves from its own store: it rebuilt every image the statuses name, also
    // those of VMs the old leader had finished (the same content gives the same digest and bytes).
    const named = hexes(final);
    expect(named).toHaveLength(vms + 2);
    expect(isos(standbyDir).filter((f) => named.includes(f))).toEqual(named);
    const sameBytes = named.filter((f) => isos(leaderDir).includes(f)).slice(0, 20);
    for (const f of sameBytes) expect(createHash('sha256').update(readFileSync(join(standbyDir, f))).digest('hex')).toBe(createHash('sha256').update(readFileSync(join(leaderDir, f))).digest('hex'));

    // GC over what the statuses name (the operator's collectImages): nothing else is left.
    const removed = await new LayerImageStore(standbyDir, { graceMs: 0 }).gc(final.flatMap((v) => (v.status?.layers ?? []).map((l) => l.digest)));
    expect(isos(standbyDir)).toEqual(named);
    console.log(
      `failover: ${vms} VMContexts; initial convergence ${initialMs} ms; ${doneAtKill}/${vms} had converged ${killedAt - editedAt} ms after the edit when the leader was SIGKILLed; ` +
        `standby leading after ${failoverMs} ms (lease 3000 ms); all ${vms} converged ${convergedMs} ms after the kill; GC removed ${removed.length} stale images from the new leader's store`,
    );
    // The lease expires 3 s after the last renewal the standby saw; it tries every 0.5 s.
    expect(failoverMs).toBeLessThan(3000 + 2 * 500 + 2000);
    expect(standby.lines.filter((l) => /"level":"error"/.test(l))).toEqual([]);
  }, 150_000);

  it('KubeVirt: DataVolumes the killed leader created import from the new leader (shared signing key, rebuilt images); no DataVolume or image is orphaned', async () => {
    const ns = 'failover-kv';
    const vms = 8;
    const plane = await useControlPlane();
    const kubectl = strict(plane.kubectl);
    await installCrds(plane);
    const fixtures = ['vm-crd.yaml', 'vmi-crd.yaml', 'vmim-crd.yaml', 'datavolume-crd.yaml', 'kubevirt-crd.yaml'].map((f) => join(REPO, 'test', 'fixtures', 'kubevirt', f));
    await kubectl(['apply', '--server-side', '--field-manager=recontext-tests', ...fixtures.flatMap((f) => ['-f', f])]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...fixtures.flatMap((f) => ['-f', f])]);
    await kubectl(['create', 'namespace', ns]);
    await kubectl(['apply', '-f', '-'], nodeYaml('failover-node-a', ZONE_A));
    const names = Array.from({ length: vms }, (_, i) => `vm-${String(i).padStart(3, '0')}`);
    // The VMs declare an empty drive per layer (ctx-<layer>), so they run with them from the start.
    const disks = [{ name: 'rootdisk', disk: { bus: 'virtio' } }, ...['app', 'site', 'base'].map((layer) => ({ name: `ctx-${layer}`, cdrom: { bus: 'sata' } }))];
    const platformObjects = names.flatMap((name) => [
      { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: ns }, spec: { runStrategy: 'Always', template: { spec: { domain: { devices: { disks } }, volumes: [{ name: 'rootdisk', containerDisk: { image: 'quay.io/containerdisks/debian:12' } }] } } } },
      { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name, namespace: ns }, spec: { domain: { devices: { disks } } } },
    ]);
    await kubectl(['apply', '-n', ns, '-f', '-'], yamlDocs(platformObjects));
    const client = KubeClient.fromKubeconfig(plane.kubeconfigPath);
    for (const name of names) await client.mergePatch(`/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/${name}/status`, { status: { phase: 'Running', nodeName: 'failover-node-a' } });
    await kubectl(['apply', '-n', ns, '-f', '-'], yamlDocs(fleetManifests(ns, vms, (name) => ({ kubevirt: { name } }))));
    const list = async () => (await client.list<VMContext>(`${API}/namespaces/${ns}/vmcontexts`)).items;
    const dataVolumes = async () => (await client.list<V1beta1DataVolume>(`/apis/cdi.kubevirt.io/v1beta1/namespaces/${ns}/datavolumes`)).items;
    const referenced = async () => (await client.list<V1VirtualMachine>(`/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines`)).items.flatMap((v) => (v.spec.template?.spec?.volumes ?? []).flatMap((x) => (x.dataVolume ? [x.dataVolume.name] : []))).sort();

    // Both replicas share the signing key; each has its own image server and store.
    const keyFile = join(tempDir('failover-key-'), 'key');
    writeFileSync(keyFile, 'a-shared-signing-key-0123456789abcdef\n');
    const dirs = [tempDir('failover-kv-a-'), tempDir('failover-kv-b-')];
    const imagePorts = [await freePort(), await freePort()];
    const operators = await Promise.all(
      dirs.map((dir, i) =>
        startOperatorProcess(
          ['--kubeconfig', plane.kubeconfigPath, '-n', ns, '--driver', 'kubevirt', '--image-dir', dir, '--image-base-url', 'http://recontext-images.invalid:8090',
            '--image-server-address', `127.0.0.1:${imagePorts[i]}`, '--image-signing-key-file', keyFile, '--kubevirt-wait', '3s', ...LEASE, '--log-level', 'info'],
          { echo: echoErrors },
        ),
      ),
    );
    for (const o of operators) cleanups.push(() => o.kill());
    const [leader, standby] = await leaderOf(operators);
    const origin = (o: OperatorProcess) => `http://127.0.0.1:${imagePorts[operators.indexOf(o)]}`;
    // The Service in front of the image servers selects the leading replica.
    let serving = origin(leader);
    const platform = playKubeVirt(client, ns, (url) => new URL(`${url.pathname}${url.search}`, serving));
    cleanups.push(() => platform.stop());

    let expected = await expectedDigests(client, ns);
    await until('initial convergence', async () => (converged(await list(), expected, 'Converged').length === vms ? true : undefined), 60_000);

    // The edit while imports stall: the leader creates the new DataVolumes, and dies before they import.
    platform.importing = false;
    const before = new Set((await dataVolumes()).map((d) => d.metadata?.name));
    await client.mergePatch(`/api/v1/namespaces/${ns}/configmaps/fleet-config`, { data: { 'app.conf': 'generation = 2\n' } });
    expected = await expectedDigests(client, ns);
    const createdByOldLeader = await until('the leader creating new DataVolumes', async () => {
      const fresh = (await dataVolumes()).map((d) => d.metadata?.name ?? '').filter((n) => !before.has(n));
      return fresh.length >= vms ? fresh : undefined;
    }, 30_000);
    leader.kill('SIGKILL');
    const killedAt = Date.now();
    await until('the standby leads', async () => ((await standby.leading()) ? true : undefined), 20_000);
    const failoverMs = Date.now() - killedAt;
    serving = origin(standby);
    platform.importing = true;

    const final = await until('every VMContext converged after failover', async () => {
      const all = await list();
      return converged(all, expected, 'Converged').length === vms ? all : undefined;
    }, 60_000);
    const convergedMs = Date.now() - killedAt;
    // Every DataVolume the old leader created imported, from the new leader's server.
    const imported = new Map(platform.imports.map((i) => [i.dataVolume, i]));
    for (const name of createdByOldLeader) expect(imported.get(name)?.servedBy, name).toBe(origin(standby));
    // No orphan: the DataVolumes are exactly those the VMs use, one per layer, named by the digest.
    const inUse = await until('stale DataVolumes deleted', async () => {
      const [dvs, refs] = [(await dataVolumes()).map((d) => d.metadata?.name ?? '').sort(), await referenced()];
      return JSON.stringify(dvs) === JSON.stringify(refs) ? refs : undefined;
    }, 30_000);
    expect(inUse).toHaveLength(vms * 3);
    for (const v of final) for (const l of v.status!.layers!) expect(inUse, `${v.metadata.name}/${l.name}`).toContain(`${v.metadata.name}-${l.name}-${l.digest.slice(7, 19)}`);
    // Images: after GC the new leader's store holds exactly what the statuses name.
    const named = hexes(final);
    const removed = await new LayerImageStore(dirs[operators.indexOf(standby)]!, { graceMs: 0 }).gc(final.flatMap((v) => (v.status?.layers ?? []).map((l) => l.digest)));
    expect(isos(dirs[operators.indexOf(standby)]!)).toEqual(named);
    console.log(
      `failover (kubevirt): ${vms} VMs; ${createdByOldLeader.length} DataVolumes created by the killed leader imported from the new one (${[...platform.refusals].map(([s, n]) => `${n}× HTTP ${s}`).join(', ') || 'no refusal'} before it had rebuilt them); ` +
        `standby leading after ${failoverMs} ms; all converged ${convergedMs} ms after the kill; GC removed ${removed.length} images`,
    );
    expect(standby.lines.filter((l) => /"level":"error"/.test(l))).toEqual([]);
  }, 120_000);
});
