// The operator as users run it: its image built by the real `docker build` from the repository's
// Dockerfile (Node.js bases built here), loaded into the local kind cluster, installed by the real
// helm from charts/recontext (driver none: KubeVirt arrives with its own issue), then driven with
// kubectl. Proven here: both replicas Ready under the chart's security context, /readyz and
// /metrics through Services, the examples Ready, a leader failover the image Service follows,
// an upgrade that rolls without losing a reconciliation, and an uninstall that leaves nothing.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageUrlSigner } from '../../src/images/server.js';
import { controlPlaneSkipReason, runHelm } from '../controlplane/shared.js';
import { prometheusOperatorCrds } from '../support/prometheus-operator-crds.js';
import { engineFor } from './bed/docker.js';
import { buildOperatorImage, type OperatorImage } from './bed/images.js';
import { clusterVersions } from './bed/versions.js';
import { clusterOffReason, eventually, useCluster, type ClusterClient } from './shared.js';

const REPO = join(import.meta.dirname, '..', '..');
const RELEASE = 'recontext';
const SYSTEM = 'recontext-system';
const TENANT = 'cluster-tenant';
const SELECTOR = 'app.kubernetes.io/name=recontext';
// The chart's defaults: a standby takes an expired lease at its next try after the duration.
const LEASE_DURATION_MS = 15_000;
const RETRY_PERIOD_MS = 2_000;

interface Pod {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { securityContext?: Record<string, unknown>; containers: { securityContext?: Record<string, unknown> }[] };
  status: { phase: string; conditions?: { type: string; status: string }[] };
}
interface VMContext {
  metadata: { generation: number };
  status?: {
    observedGeneration?: number;
    node?: string;
    layers?: { name: string; digest: string }[];
    conditions?: { type: string; status: string; reason?: string }[];
  };
}

const skip = clusterOffReason() ?? controlPlaneSkipReason();

describe.skipIf(skip)('operator on the local cluster: docker build, helm install, kubectl', () => {
  let cluster: ClusterClient;
  let image: OperatorImage;

  const helm = async (args: readonly string[]): Promise<string> => {
    const result = await runHelm([...args, '--kubeconfig', cluster.kubeconfig], { timeoutMs: 360_000 });
    if (result.code !== 0) throw new Error(`helm ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  };
  const pods = async (): Promise<Pod[]> => (JSON.parse(await cluster.kubectl(['get', 'pods', '-n', SYSTEM, '-l', SELECTOR, '-o', 'json'])) as { items: Pod[] }).items;
  const ready = (pod: Pod): boolean => pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  const leaseHolder = async (): Promise<string> => (await cluster.kubectl(['get', 'lease', 'recontext-operator', '-n', SYSTEM, '-o', 'jsonpath={.spec.holderIdentity}'])).trim();
  const vmContext = async (): Promise<VMContext> => JSON.parse(await cluster.kubectl(['get', 'vmcontext', 'gluster-client-1', '-n', TENANT, '-o', 'json'])) as VMContext;
  const isReady = (vm: VMContext): boolean =>
    vm.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true && vm.status.observedGeneration === vm.metadata.generation;
  const digest = (vm: VMContext, layer: string): string | undefined => vm.status?.layers?.find((l) => l.name === layer)?.digest;
  /** GET through the API server's proxy to a Service (so: its selector and endpoints, for real). */
  const viaService = (service: string, port: number, path: string): Promise<string> =>
    cluster.kubectl(['get', '--raw', `/api/v1/namespaces/${SYSTEM}/services/http:${service}:${port}/proxy${path}`]);
  const installValues = (): string[] => [
    '--set', `image.repository=${image.repository}`,
    '--set', `image.tag=${image.tag}`,
    '--set', 'image.pullPolicy=Never',
    '--set', 'operator.driver=none',
    '--set', 'serviceMonitor.enabled=true',
  ];

  beforeAll(async () => {
    cluster = await useCluster();
    image = await buildOperatorImage(engineFor(), clusterVersions(), (line) => console.log(line));
    console.log(`operator image ${image.image}: ${(image.sizeBytes / 1e6).toFixed(0)} MB`);
    await cluster.kind(['load', 'docker-image', image.image, '--name', cluster.name]);
    // The ServiceMonitor's CRD (the Prometheus Operator's own), so the chart's metrics Service is on.
    const monitoring = await prometheusOperatorCrds();
    await cluster.kubectl(['apply', '--server-side', ...monitoring.flatMap((file) => ['-f', file])]);
    // What KubeVirt would provide for the none driver: a VMI (open fixture schema) running on a worker.
    await cluster.kubectl(['apply', '--server-side', '-f', join(REPO, 'test', 'fixtures', 'kubevirt', 'vmi-crd.yaml')]);
    await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/virtualmachineinstances.kubevirt.io', 'crd/servicemonitors.monitoring.coreos.com']);
    await helm(['install', RELEASE, join(REPO, 'charts', 'recontext'), '-n', SYSTEM, '--create-namespace', ...installValues(), '--wait', '--timeout', '5m']);
  }, 3_600_000);

  afterAll(async () => {
    if (!cluster) return;
    await helm(['uninstall', RELEASE, '-n', SYSTEM, '--wait']).catch(() => undefined);
    for (const ns of [TENANT, SYSTEM]) await cluster.kubectl(['delete', 'namespace', ns, '--ignore-not-found', '--wait=false']).catch(() => undefined);
  }, 300_000);

  it('runs both replicas Ready as a non-root user, read-only root, no capabilities, RuntimeDefault seccomp', async () => {
    const running = await pods();
    expect(running).toHaveLength(2);
    expect(running.every(ready)).toBe(true);
    expect(running.filter((pod) => pod.metadata.labels?.['recontext.dev/leader'] === 'true')).toHaveLength(1);
    for (const pod of running) {
      expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.spec.containers[0]?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      // What the kernel says about the running process, not only what the spec asked for.
      const probe = await cluster.kubectl(['exec', '-n', SYSTEM, pod.metadata.name, '--', 'sh', '-c', 'id -u; grep -E "^(CapEff|Seccomp):" /proc/1/status; touch /probe 2>&1 || true']);
      const [uid, ...rest] = probe.trim().split('\n');
      expect(uid).toBe('65532');
      expect(rest.join('\n')).toMatch(/CapEff:\s+0000000000000000/);
      expect(rest.join('\n')).toMatch(/Seccomp:\s+2/); // 2 = filter mode (RuntimeDefault)
      expect(rest.join('\n')).toMatch(/Read-only file system/);
    }
  });

  it('answers /readyz on every replica and /metrics through the metrics Service', async () => {
    for (const pod of await pods()) {
      expect(await cluster.kubectl(['get', '--raw', `/api/v1/namespaces/${SYSTEM}/pods/http:${pod.metadata.name}:8080/proxy/readyz`])).toMatch(/ok/i);
    }
    const metrics = await viaService(`${RELEASE}-metrics`, 8080, '/metrics');
    expect(metrics).toMatch(/^recontext_/m);
    expect(metrics).toMatch(/^recontext_process_resident_memory_bytes/m);
  });

  it('makes the examples Ready when applied with kubectl', async () => {
    await cluster.kubectl(['create', 'namespace', TENANT]);
    await cluster.kubectl(['apply', '-n', TENANT, '-f', '-'], 'apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata:\n  name: gluster-client-1\nspec: {}\n');
    await setVmiNode('recontext-worker');
    const examples = readdirSync(join(REPO, 'examples', 'gluster')).map((file) => join(REPO, 'examples', 'gluster', file));
    await cluster.kubectl(['apply', '-n', TENANT, ...examples.flatMap((file) => ['-f', file])]);
    const vm = await eventually('the VMContext Ready', async () => ((current) => (isReady(current) ? current : undefined))(await vmContext()), 120_000);
    expect(vm.status?.node).toBe('recontext-worker');
    expect(vm.status?.layers?.map((layer) => layer.name).sort()).toEqual(['broker-endpoints', 'data-residency', 'gluster-service', 'site-cache']);
  });

  it('hands the lease to the other replica within the lease duration when the leader pod is deleted, and the image Service follows', async () => {
    const vm = await vmContext();
    const siteCache = digest(vm, 'site-cache')!;
    const secret = JSON.parse(await cluster.kubectl(['get', 'secret', `${RELEASE}-signing-key`, '-n', SYSTEM, '-o', 'json'])) as { data: { key: string } };
    const signer = new ImageUrlSigner(Buffer.from(secret.data.key, 'base64'), 'http://unused');
    const signed = new URL(signer.url(TENANT, siteCache));
    const imagePath = signed.pathname + signed.search;
    const isIso = (body: string): boolean => body.slice(32769, 32774) === 'CD001';

    expect(isIso(await viaService(`${RELEASE}-images`, 8090, imagePath))).toBe(true);
    const before = await leaseHolder();
    const leaderPod = (await pods()).find((pod) => pod.metadata.labels?.['recontext.dev/leader'] === 'true')!;
    expect(before).toContain(leaderPod.metadata.name);
    const deleted = Date.now();
    await cluster.kubectl(['delete', 'pod', '-n', SYSTEM, leaderPod.metadata.name, '--wait=false']);
    const after = await eventually('another replica holding the lease', async () => ((holder) => (holder && holder !== before ? holder : undefined))(await leaseHolder()), 60_000);
    const handover = Date.now() - deleted;
    console.log(`lease: ${before} → ${after} in ${handover} ms`);
    // Leader election's guarantee, not a speed goal: even a leader that never released its lease
    // (killed, not stopped) loses it after the lease duration, at the standby's next try.
    expect(handover).toBeLessThanOrEqual(LEASE_DURATION_MS + RETRY_PERIOD_MS);
    // The new leader labels its pod; the image Service selects it and serves the same signed URL
    // (it rebuilds the image from the layers: the store is per pod).
    await eventually('the image through the Service from the new leader', async () => (isIso(await viaService(`${RELEASE}-images`, 8090, imagePath)) ? true : undefined), 60_000);
    // The Service's ready endpoint is the new leader's pod (the old one may linger as terminating).
    const readyEndpoint = (): Promise<string> =>
      cluster.kubectl(['get', 'endpointslices', '-n', SYSTEM, '-l', `kubernetes.io/service-name=${RELEASE}-images`, '-o', 'jsonpath={.items[*].endpoints[?(@.conditions.ready==true)].targetRef.name}']);
    const endpoint = await eventually('one ready endpoint behind the image Service', async () => ((names) => (names.length === 1 ? names[0] : undefined))((await readyEndpoint()).trim().split(/\s+/).filter(Boolean)), 60_000);
    expect(after).toContain(endpoint);
  });

  it('rolls a helm upgrade without losing a reconciliation: migrations all through the rollout are followed', async () => {
    await eventually('two Ready replicas', async () => ((list) => (list.length === 2 && list.every(ready) ? true : undefined))(await pods()), 120_000);
    const siteCacheBefore = digest(await vmContext(), 'site-cache');
    // Changed values roll the Deployment (new pods, then the old ones go, the lease moves); all the
    // while the VM "migrates" back and forth between the workers every second. The last place must win.
    let done = false;
    const upgrade = helm(['upgrade', RELEASE, join(REPO, 'charts', 'recontext'), '-n', SYSTEM, ...installValues(), '--set', 'operator.logLevel=debug', '--wait', '--timeout', '5m']).finally(() => (done = true));
    const workers = ['recontext-worker2', 'recontext-worker'];
    let moves = 0;
    while (!done) {
      await setVmiNode(workers[moves % 2]!, `cluster-migration-${moves}`);
      moves++;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    await upgrade;
    if (moves % 2 === 0) await setVmiNode(workers[moves++ % 2]!, `cluster-migration-${moves}`); // end on zone-b
    console.log(`helm upgrade: ${moves} migrations during the rollout`);
    expect(moves).toBeGreaterThan(2);
    const after = await eventually('the VMContext re-rendered for recontext-worker2', async () => ((vm) => (isReady(vm) && vm.status?.node === 'recontext-worker2' ? vm : undefined))(await vmContext()), 120_000);
    expect(digest(after, 'site-cache')).not.toBe(siteCacheBefore);
    const args = (await cluster.kubectl(['get', 'deployment', RELEASE, '-n', SYSTEM, '-o', 'jsonpath={.spec.template.spec.containers[0].args}'])).trim();
    expect(args).toContain('--log-level=debug');
  });

  it('leaves nothing of the release behind after helm uninstall', async () => {
    await helm(['uninstall', RELEASE, '-n', SYSTEM, '--wait']);
    await eventually('the operator pods gone', async () => ((list) => (list.length === 0 ? true : undefined))(await pods()), 120_000);
    const kinds = 'deployments,replicasets,pods,services,endpointslices,serviceaccounts,secrets,configmaps,roles,rolebindings,leases,servicemonitors,poddisruptionbudgets';
    const namespaced = await cluster.kubectl(['get', kinds, '-n', SYSTEM, '-o', 'name']);
    // Kubernetes' own in every namespace: the kube-root-ca.crt ConfigMap and the default ServiceAccount.
    const own = new Set(['configmap/kube-root-ca.crt', 'serviceaccount/default']);
    expect(namespaced.split('\n').filter((name) => name && !own.has(name))).toEqual([]);
    const clusterScoped = await cluster.kubectl(['get', 'clusterroles,clusterrolebindings', '-l', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'name']);
    expect(clusterScoped.trim()).toBe('');
  });

  async function setVmiNode(node: string, migrationUid?: string): Promise<void> {
    const status: Record<string, unknown> = { phase: 'Running', nodeName: node };
    if (migrationUid) status['migrationState'] = { completed: true, failed: false, migrationUid, sourceNode: node === 'recontext-worker' ? 'recontext-worker2' : 'recontext-worker', targetNode: node };
    await cluster.kubectl(['patch', '-n', TENANT, 'vmi', 'gluster-client-1', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  }
});
