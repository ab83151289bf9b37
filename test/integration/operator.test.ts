// The operator against a real kube-apiserver + etcd (test/controlplane): the examples become
// Ready with the digests `recontext render` computes offline, a ConfigMap edit re-renders within
// seconds, a removed layer leaves every VM that had it, a VMI migration re-renders the
// infrastructure layer for the new node, and no Secret content leaks anywhere.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderVM } from '../../src/cli/render.js';
import { createLogger } from '../../src/runtime/log.js';
import { ClusterOperator } from '../../src/controllers/cluster-operator.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { ImagesOnlyDriver } from '../../src/drivers/none.js';
import { KubeClient } from '../../src/kube/client.js';
import { controlPlaneSkipReason, installCrds, useControlPlane, type SharedControlPlane } from '../controlplane/shared.js';
import { REPO, SECRET_VALUE, ZONE_A, digestOf, getVMContext, installScenario, isReady, strict, until } from './scenario.js';

const NS = 'operator-it';

describe.skipIf(controlPlaneSkipReason())('operator on a real API server', () => {
  let plane: SharedControlPlane;
  let operator: ClusterOperator;
  let client: KubeClient;
  const logs: string[] = [];
  const metrics = new OperatorMetrics();
  const imageDirectory = mkdtempSync(join(tmpdir(), 'operator-it-images-'));

  const vmContext = () => getVMContext(client, NS);
  let kubectl: ReturnType<typeof strict>;

  beforeAll(async () => {
    plane = await useControlPlane();
    kubectl = strict(plane.kubectl);
    await installCrds(plane);
    await installScenario(plane.kubectl, NS, { installCrds: false, nodePrefix: 'it-node' });
    client = KubeClient.fromKubeconfig(plane.kubeconfigPath);
    const logger = createLogger({ level: 'debug', write: (line) => void logs.push(line) });
    operator = new ClusterOperator({
      client,
      driver: new ImagesOnlyDriver({ client, logger, metrics, namespace: NS }),
      logger,
      metrics,
      imageDirectory,
      imageGcGraceMs: 0,
      namespace: NS,
      metricsAddress: '127.0.0.1:0',
      leaseDurationMs: 4000,
      renewDeadlineMs: 3000,
      retryPeriodMs: 500,
    });
    await operator.start();
  });

  afterAll(async () => {
    await operator?.stop();
  });

  it('makes the examples Ready with the digests recontext render computes offline', async () => {
    const ready = await until('VMContext Ready', async () => {
      const vm = await vmContext();
      return vm.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True') ? vm : undefined;
    });
    const offline = await renderVM({
      from: [join(REPO, 'examples', 'gluster')],
      vm: 'gluster-client-1',
      namespace: NS,
      node: 'it-node-a',
      nodeLabels: Object.entries(ZONE_A).map(([k, v]) => `${k}=${v}`).join(','),
      out: mkdtempSync(join(tmpdir(), 'offline-')),
    });
    expect(ready.status?.node).toBe('it-node-a');
    expect(ready.status?.layers?.map((l) => [l.name, l.priority, l.digest])).toEqual(offline.rows.map((r) => [r.layer.name, r.layer.priority, r.layer.digest]));
    expect(ready.status?.lastRecontext?.trigger).toBe('Initial');
    expect(ready.status?.observedGeneration).toBe(ready.metadata.generation);
    expect(ready.metadata.finalizers ?? []).toEqual([]); // the images-only driver attaches nothing, so it has nothing to release
    const layers = await kubectl(['get', '-n', NS, 'ctxl', '-o', 'custom-columns=NAME:.metadata.name,PRIO:.status.effectivePriority,VMS:.status.renderedFor,READY:.status.conditions[?(@.type=="Ready")].status', '--no-headers']);
    expect(layers.trim().split('\n').map((l) => l.split(/\s+/))).toEqual([
      ['broker-endpoints', '200', '1', 'True'],
      ['data-residency', '400', '1', 'True'],
      ['gluster-service', '100', '1', 'True'],
      ['site-cache', '300', '1', 'True'],
    ]);
  });

  it('builds a shared layer once for all VMs: a second VM on the same zone builds only its VM-specific layer', async () => {
    const builds = async () => (await metrics.imageBuilds.get()).values[0]?.value ?? 0;
    const before = await builds();
    await kubectl(['apply', '-n', NS, '-f', '-'], 'apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata:\n  name: gluster-client-2\nspec: {}\n');
    await kubectl(['patch', '-n', NS, 'vmi', 'gluster-client-2', '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Running","nodeName":"it-node-a"}}']);
    await kubectl(['apply', '-n', NS, '-f', '-'], 'apiVersion: recontext.dev/v1alpha1\nkind: VMContext\nmetadata:\n  name: gluster-client-2\n  labels: {app: gluster-client}\nspec:\n  target: {kubevirt: {name: gluster-client-2}}\n  layers: [{name: gluster-service}, {name: site-cache}, {name: data-residency}]\n');
    const second = await until('second VM Ready', async () => {
      const vm = await getVMContext(client, NS, 'gluster-client-2');
      return isReady(vm) ? vm : undefined;
    });
    const first = await vmContext();
    // site-cache's template names the VM ({{ vm.name }}): its own image. The rest are shared.
    for (const shared of ['gluster-service', 'broker-endpoints', 'data-residency']) expect(digestOf(second, shared)).toBe(digestOf(first, shared));
    expect(digestOf(second, 'site-cache')).not.toBe(digestOf(first, 'site-cache'));
    expect((await builds()) - before).toBe(1);
  });

  it('re-renders within seconds when a ConfigMap used through contentFrom or sources changes', async () => {
    const before = await vmContext();
    const edited = Date.now();
    // gluster-volume reaches gluster-service through files[].contentFrom; broker-endpoints
    // reaches the broker layer through sources (every key a file).
    await kubectl(['patch', '-n', NS, 'configmap', 'gluster-volume', '--type=merge', '-p', '{"data":{"client.vol":"volume gv0-edited\\n"}}']);
    await kubectl(['patch', '-n', NS, 'configmap', 'broker-endpoints', '--type=merge', '-p', '{"data":{"sla.conf":"tier = platinum\\n"}}']);
    const after = await until('new digests for both layers', async () => {
      const vm = await vmContext();
      const changed = ['gluster-service', 'broker-endpoints'].every((layer) => digestOf(vm, layer) && digestOf(vm, layer) !== digestOf(before, layer));
      return changed ? vm : undefined;
    }, 10_000);
    expect(Date.now() - edited).toBeLessThan(10_000);
    expect(after.status?.lastRecontext?.trigger).toBe('LayerChange');
    expect(digestOf(after, 'site-cache')).toBe(digestOf(before, 'site-cache'));
  });

  it('re-renders the node-dependent layers for the new node after a migration', async () => {
    const before = await vmContext();
    await kubectl(['patch', '-n', NS, 'vmi', 'gluster-client-1', '--subresource=status', '--type=merge', '-p',
      JSON.stringify({ status: { phase: 'Running', nodeName: 'it-node-b', migrationState: { completed: true, failed: false, migrationUid: 'mig-1', sourceNode: 'it-node-a', targetNode: 'it-node-b' } } })]);
    // No poke: the images-only driver watches the VMIs, so the migration alone re-renders.
    const after = await until('migration handled', async () => {
      const vm = await vmContext();
      return vm.status?.lastMigrationId === 'mig-1' ? vm : undefined;
    });
    expect(after.status?.node).toBe('it-node-b');
    expect(after.status?.lastRecontext?.trigger).toBe('Migration');
    expect(digestOf(after, 'site-cache')).not.toBe(digestOf(before, 'site-cache'));
    expect(digestOf(after, 'data-residency')).not.toBe(digestOf(before, 'data-residency'));
    expect(digestOf(after, 'gluster-service')).toBe(digestOf(before, 'gluster-service'));
  });

  it('removes a deleted layer from every VM that had it', async () => {
    await kubectl(['delete', '-n', NS, 'ctxl', 'broker-endpoints']);
    for (const name of ['gluster-client-1', 'gluster-client-2']) {
      const after = await until(`layer gone from ${name}`, async () => {
        const vm = await getVMContext(client, NS, name);
        return vm.status?.layers && !vm.status.layers.some((l) => l.name === 'broker-endpoints') ? vm : undefined;
      });
      expect(after.status?.layers?.map((l) => l.name)).toEqual(['data-residency', 'site-cache', 'gluster-service']);
    }
    await kubectl(['delete', '-n', NS, 'vmctx', 'gluster-client-2', '--wait=true', '--timeout=30s']);
  });

  it('deletes images no VMContext uses any more, and keeps the ones in use', async () => {
    const inUse = (await vmContext()).status!.layers!.map((l) => `${l.digest.slice('sha256:'.length)}.iso`).sort();
    const before = readdirSync(imageDirectory).filter((f) => f.endsWith('.iso'));
    expect(before.length).toBeGreaterThan(inUse.length); // older versions from the edits and the migration
    const removed = await operator.collectImages();
    expect(removed.length).toBe(before.length - inUse.length);
    expect(readdirSync(imageDirectory).filter((f) => f.endsWith('.iso')).sort()).toEqual(inUse);
  });

  it('reports a layer that cannot render in a condition with a reason, and recovers', async () => {
    await kubectl(['patch', '-n', NS, 'ctxl', 'site-cache', '--type=json', '-p', JSON.stringify([{ op: 'add', path: '/spec/files/-', value: { path: 'etc/extra.conf', template: true, content: '{{ values.nope }}' } }])]);
    const broken = await until('Ready=False TemplateError', async () => {
      const vm = await vmContext();
      const ready = vm.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'False' && ready.reason === 'TemplateError' ? ready : undefined;
    });
    expect(broken.message).toContain('values.nope is not set');
    await kubectl(['patch', '-n', NS, 'ctxl', 'site-cache', '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/spec/files/2' }])]);
    await until('Ready again', async () => {
      const vm = await vmContext();
      return vm.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True') ? vm : undefined;
    });
    const events = await kubectl(['get', 'events.events.k8s.io', '-n', NS, '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}']);
    expect(events).toContain('TemplateError');
    expect(events).toContain('Recontextualized');
  });

  it('never shows Secret content in logs, events, status or metrics', async () => {
    const everything = [
      logs.join(''),
      await kubectl(['get', 'events.events.k8s.io,events', '-n', NS, '-o', 'yaml']),
      await kubectl(['get', '-n', NS, 'vmctx,ctxl', '-o', 'yaml']),
      await metrics.registry.metrics(),
      await (await fetch(`${operator.metricsUrl}/metrics`)).text(),
    ].join('\n');
    expect(everything.length).toBeGreaterThan(1000);
    expect(everything).not.toContain(SECRET_VALUE);
    expect(everything).not.toContain(Buffer.from(SECRET_VALUE).toString('base64'));
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await fetch(`${operator.metricsUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${operator.metricsUrl}/readyz`)).status).toBe(200);
    const text = await (await fetch(`${operator.metricsUrl}/metrics`)).text();
    expect(text).toMatch(/recontext_controller_reconcile_total\{controller="vmcontext",result="success"\} [1-9]/);
    expect(text).toMatch(/recontext_recontext_duration_seconds_count\{trigger="Migration",driver="none"\} 1/);
    expect(text).toMatch(/recontext_workqueue_adds_total\{name="vmcontext"\} [1-9]/);
    expect(text).toMatch(/^recontext_leader 1$/m);
  });
});
