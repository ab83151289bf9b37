// MigrationPolicy in a cluster: a real Prometheus scrapes an exporter the test controls, the
// operator (on the real API server, KubeVirt driver) samples it through the policy's PromQL, and
// asks KubeVirt to move the VM with a VirtualMachineInstanceMigration whose addedNodeSelector is
// the chosen array's — exactly one, none during the cooldown — then follows it to its end.
// (KubeVirt itself is not running: the test writes the migration's phase as KubeVirt would.)
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationPolicy } from '../../src/crds/index.js';
import { createLogger } from '../../src/runtime/log.js';
import { ClusterOperator } from '../../src/controllers/cluster-operator.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { KubeVirtDriver } from '../../src/drivers/kubevirt/driver.js';
import { KubeClient } from '../../src/kube/client.js';
import { PrometheusSource } from '../../src/metric-sources/index.js';
import { controlPlaneSkipReason, installCrds, useControlPlane, type SharedControlPlane } from '../controlplane/shared.js';
import { installKubeVirtCrds } from '../kubevirt-standin/index.js';
import { prometheusSkipReason, startExporter, startPrometheus, type Exporter, type PrometheusServer } from '../support/prometheus.js';
import { nodeYaml, strict, until } from './scenario.js';

const NS = 'policy-it';
const VM = 'web-1';
const ARRAY = 'recontext.dev/array';

describe.skipIf(controlPlaneSkipReason() ?? prometheusSkipReason())('MigrationPolicy with a real Prometheus and API server', () => {
  let plane: SharedControlPlane;
  let client: KubeClient;
  let kubectl: ReturnType<typeof strict>;
  let exporter: Exporter;
  let prometheus: PrometheusServer;
  let operator: ClusterOperator;
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const migrations = async () => (await client.list<{ metadata: { name: string }; spec: { vmiName: string; addedNodeSelector: Record<string, string> } }>(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations`)).items;
  const policy = () => client.get<MigrationPolicy>(`/apis/recontext.dev/v1alpha1/namespaces/${NS}/migrationpolicies/web-latency`);

  beforeAll(async () => {
    exporter = await startExporter();
    exporter.set('vm_latency_seconds', { vm: VM, namespace: NS }, 0.2);
    prometheus = await startPrometheus({ targets: [exporter.target] });
    plane = await useControlPlane();
    kubectl = strict(plane.kubectl);
    await installCrds(plane);
    await installKubeVirtCrds(plane);
    client = KubeClient.fromKubeconfig(plane.kubeconfigPath);
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['apply', '-f', '-'], nodeYaml('policy-node-a', { [ARRAY]: 'policy-a' }));
    await kubectl(['apply', '-f', '-'], nodeYaml('policy-node-b', { [ARRAY]: 'policy-b' }));
    await kubectl(['apply', '-n', NS, '-f', '-'], `apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata:\n  name: ${VM}\nspec: {}\n`);
    await kubectl(['patch', '-n', NS, 'vmi', VM, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', nodeName: 'policy-node-a' } })]);
    await kubectl(['apply', '-n', NS, '-f', '-'], `apiVersion: recontext.dev/v1alpha1\nkind: VMContext\nmetadata:\n  name: ${VM}\n  labels: {app: web}\nspec:\n  target: {kubevirt: {name: ${VM}}}\n  layers: []\n`);
    await prometheus.waitForSample(`vm_latency_seconds{vm="${VM}"}`);
    const logger = createLogger({ level: process.env.POLICY_DEBUG ? 'debug' : 'warn', write: (line) => void (process.env.POLICY_DEBUG && line.includes('polic') && process.stdout.write(line)) });
    operator = new ClusterOperator({
      client,
      driver: new KubeVirtDriver({ client, logger, metrics, namespace: NS, imageUrl: () => 'http://unused' }),
      logger,
      metrics,
      imageDirectory: mkdtempSync(join(tmpdir(), 'policy-it-')),
      namespace: NS,
      leaderElection: false,
      policyMetrics: { source: new PrometheusSource({ defaultAddress: prometheus.url }) },
    });
    await operator.start();
  }, 120_000);

  afterAll(async () => {
    await operator?.stop();
    await prometheus?.stop();
    await exporter?.stop();
  });

  it('asks for one migration toward the next array after highFor samples at or above high, none during the cooldown', async () => {
    await kubectl(['apply', '-n', NS, '-f', '-'], JSON.stringify({
      apiVersion: 'recontext.dev/v1alpha1',
      kind: 'MigrationPolicy',
      metadata: { name: 'web-latency' },
      spec: {
        type: 'Threshold',
        vmSelector: { matchLabels: { app: 'web' } },
        metric: { prometheus: { query: 'max(vm_latency_seconds{vm="{{ vm.name }}",namespace="{{ vm.namespace }}"})' } },
        sampleInterval: '1s',
        high: 0.8,
        highFor: 3,
        arrays: [
          { name: 'policy-a', nodeSelector: { [ARRAY]: 'policy-a' }, cost: 1 },
          { name: 'policy-b', nodeSelector: { [ARRAY]: 'policy-b' }, cost: 2 },
        ],
        cooldown: '10m',
      },
    }));
    await until('the policy samples', async () => ((await policy()).status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'Active') ? true : undefined), 20_000);
    expect(await migrations()).toEqual([]); // 0.2 is fine: stays
    exporter.set('vm_latency_seconds', { vm: VM, namespace: NS }, 0.95);
    const [asked] = await until('a migration asked for', async () => ((await migrations()).length > 0 ? migrations() : undefined), 30_000);
    expect(asked?.spec).toEqual({ vmiName: VM, addedNodeSelector: { [ARRAY]: 'policy-b' } });
    const decision = (await policy()).status?.decisions?.[0];
    expect(decision).toMatchObject({ vm: VM, from: 'policy-a', to: 'policy-b', result: 'Requested' });
    expect(decision?.value).toBeGreaterThanOrEqual(0.8);
    expect(decision?.reason).toMatch(/0\.95/);

    // The latency stays high, but the cooldown holds: no second migration, the wish is recorded as Skipped.
    await until('a held decision', async () => ((await policy()).status?.decisions?.some((d) => d.result === 'Skipped') ? true : undefined), 20_000);
    expect(await migrations()).toHaveLength(1);

    // KubeVirt finishes the migration: the decision gets its result.
    await client.mergePatch(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstancemigrations/${asked!.metadata.name}/status`, { status: { phase: 'Succeeded', migrationState: { targetNode: 'policy-node-b' } } });
    await until('the decision Succeeded', async () => ((await policy()).status?.decisions?.some((d) => d.result === 'Succeeded' && d.to === 'policy-b') ? true : undefined), 20_000);
    const counted = (await metrics.policyMigrations.get()).values;
    expect(counted.find((v) => v.labels.result === 'requested')?.value).toBe(1);
    expect(counted.find((v) => v.labels.result === 'succeeded')?.value).toBe(1);
    expect(await migrations()).toHaveLength(1);
  });
});
