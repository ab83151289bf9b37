// The operator survives a bad day on a real API server (each scenario on a control plane of its
// own, since they restart, pause or compact it): an API server restart, a partition during which
// etcd is compacted (the watch resumes with 410 Gone and must relist, deletions included), a
// SIGSTOPped API server (the watch goes silent beyond the watchdog), and leader failover when the
// leading operator process is SIGKILLed. After each, every update made meanwhile is applied.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/runtime/log.js';
import { ClusterOperator } from '../../src/controllers/cluster-operator.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { ImagesOnlyDriver } from '../../src/drivers/none.js';
import { KubeClient } from '../../src/kube/client.js';
import { controlPlaneSkipReason, startExclusiveControlPlane, type ControlPlane } from '../controlplane/shared.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { REPO, digestOf, getVMContext, installScenario, isReady, strict, until } from './scenario.js';

const NS = 'faults';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function plane(): Promise<ControlPlane> {
  const started = await startExclusiveControlPlane();
  cleanups.push(() => started.stop());
  await installScenario(started.kubectl.bind(started), NS, { installCrds: true, nodePrefix: 'node' });
  return started;
}

function startOperator(kubeconfigPath: string, metrics = new OperatorMetrics({ defaultMetrics: false }), options: { watchdogMs?: number } = {}) {
  const client = KubeClient.fromKubeconfig(kubeconfigPath, { requestTimeoutMs: 5000 });
  const logger = createLogger({ level: 'error' });
  const operator = new ClusterOperator({
    client,
    driver: new ImagesOnlyDriver({ client, logger, metrics, namespace: NS }),
    logger,
    metrics,
    imageDirectory: mkdtempSync(join(tmpdir(), 'faults-images-')),
    namespace: NS,
    leaderElection: false,
    ...options,
  });
  cleanups.push(() => operator.stop());
  return { operator, metrics, started: operator.start() };
}

/** A kubeconfig like `path` whose server is `server`. */
function kubeconfigVia(path: string, server: string): string {
  const original = new KubeConfig();
  original.loadFromFile(path);
  const copy = new KubeConfig();
  copy.loadFromOptions({
    clusters: original.clusters.map((c) => ({ ...c, server })),
    users: original.users,
    contexts: original.contexts,
    currentContext: original.currentContext,
  });
  const out = join(mkdtempSync(join(tmpdir(), 'kubeconfig-')), 'config');
  writeFileSync(out, copy.exportConfig());
  return out;
}

async function restarts(metrics: OperatorMetrics, reason: string): Promise<number> {
  return (await metrics.watchRestarts.get()).values.filter((v) => v.labels.reason === reason).reduce((sum, v) => sum + v.value, 0);
}

describe.skipIf(controlPlaneSkipReason())('operator under faults', () => {
  it('converges after the API server restarts and applies changes made right after', async () => {
    const cp = await plane();
    const kubectl = strict(cp.kubectl.bind(cp));
    const admin = KubeClient.fromKubeconfig(cp.kubeconfigPath);
    const { started } = startOperator(cp.kubeconfigPath);
    await started;
    const ready = await until('Ready', async () => ((vm) => (isReady(vm) ? vm : undefined))(await getVMContext(admin, NS)));
    await cp.restartApiServer();
    await kubectl(['patch', '-n', NS, 'configmap', 'broker-endpoints', '--type=merge', '-p', '{"data":{"sla.conf":"tier = bronze\\n"}}']);
    await until('the edit made after the restart', async () => {
      const vm = await getVMContext(admin, NS);
      return digestOf(vm, 'broker-endpoints') !== digestOf(ready, 'broker-endpoints') && isReady(vm) ? vm : undefined;
    }, 45_000);
  });

  it('relists after 410 Gone and applies the updates and deletions it missed while partitioned', async () => {
    const cp = await plane();
    const kubectl = strict(cp.kubectl.bind(cp));
    const admin = KubeClient.fromKubeconfig(cp.kubeconfigPath);
    const proxy = await TcpProxy.start(cp.server);
    cleanups.push(() => proxy.close());
    const { started, metrics } = startOperator(kubeconfigVia(cp.kubeconfigPath, proxy.url(cp.server)));
    await started;
    const ready = await until('Ready', async () => ((vm) => (isReady(vm) ? vm : undefined))(await getVMContext(admin, NS)));
    proxy.cut();
    // While the operator cannot see the server: an update, a deletion, then history is compacted.
    await kubectl(['patch', '-n', NS, 'configmap', 'gluster-volume', '--type=merge', '-p', '{"data":{"client.vol":"volume gv1\\n"}}']);
    await kubectl(['delete', '-n', NS, 'ctxl', 'broker-endpoints']);
    await kubectl(['create', 'configmap', '-n', NS, 'filler', '--from-literal=a=b']);
    await cp.compactEtcd();
    await cp.restartApiServer(); // the watch cache forgets the compacted history too
    proxy.heal();
    const after = await until('missed changes applied', async () => {
      const vm = await getVMContext(admin, NS);
      const layers = vm.status?.layers?.map((l) => l.name) ?? [];
      return !layers.includes('broker-endpoints') && digestOf(vm, 'gluster-service') !== digestOf(ready, 'gluster-service') ? vm : undefined;
    }, 60_000);
    expect(after.status?.layers?.map((l) => l.name)).toEqual(['data-residency', 'site-cache', 'gluster-service']);
    expect(await restarts(metrics, 'gone')).toBeGreaterThan(0);
  });

  it('restarts a watch that went silent (API server SIGSTOPped beyond the watchdog)', async () => {
    const cp = await plane();
    const kubectl = strict(cp.kubectl.bind(cp));
    const admin = KubeClient.fromKubeconfig(cp.kubeconfigPath);
    const { started, metrics } = startOperator(cp.kubeconfigPath, undefined, { watchdogMs: 2000 });
    await started;
    const ready = await until('Ready', async () => ((vm) => (isReady(vm) ? vm : undefined))(await getVMContext(admin, NS)));
    cp.pauseApiServer();
    await new Promise((r) => setTimeout(r, 4000));
    cp.resumeApiServer();
    await kubectl(['patch', '-n', NS, 'configmap', 'broker-endpoints', '--type=merge', '-p', '{"data":{"sla.conf":"tier = silver\\n"}}']);
    await until('the edit after the stall', async () => {
      const vm = await getVMContext(admin, NS);
      return digestOf(vm, 'broker-endpoints') !== digestOf(ready, 'broker-endpoints') ? vm : undefined;
    }, 45_000);
    expect(await restarts(metrics, 'silent')).toBeGreaterThan(0);
  });

  it('lets only the leader reconcile, and a standby takes over within the lease time when the leader is killed', async () => {
    const cp = await plane();
    const kubectl = strict(cp.kubectl.bind(cp));
    const admin = KubeClient.fromKubeconfig(cp.kubeconfigPath);
    // Generous timings: the suite runs on 2 busy cores, and a leader that cannot renew in time
    // steps down (and exits) by design, which would make this test about load, not about leading.
    const leaseMs = 8000;
    const retryMs = 1000;
    const spawnOperator = (port: number): ChildProcess => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(REPO, 'test', 'support', 'run-cli.ts'), 'operator', '--kubeconfig', cp.kubeconfigPath, '-n', NS,
          '--metrics-address', `127.0.0.1:${port}`, '--image-dir', mkdtempSync(join(tmpdir(), 'leader-images-')),
          '--lease-duration', `${leaseMs}ms`, '--renew-deadline', '6s', '--retry-period', `${retryMs}ms`, '--log-level', 'warn'],
        { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] },
      );
      cleanups.push(async () => void child.kill('SIGKILL'));
      return child;
    };
    const ports = [await freePort(), await freePort()];
    const children = ports.map(spawnOperator);
    const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const leads = (metrics: string) => /^recontext_leader 1$/m.test(metrics);
    const leaderIndex = await until('a leader', async () => {
      for (const [i, port] of ports.entries()) if (leads(await scrape(port).catch(() => ''))) return i;
      return undefined;
    }, 60_000);
    const standby = 1 - leaderIndex;
    await until('Ready', async () => ((vm) => (isReady(vm) ? vm : undefined))(await getVMContext(admin, NS)));
    const standbyMetrics = await until('the standby serves metrics', () => scrape(ports[standby]!));
    expect(standbyMetrics).toMatch(/^recontext_leader 0$/m);
    expect(standbyMetrics).not.toMatch(/recontext_controller_reconcile_total\{controller="vmcontext"/);

    children[leaderIndex]!.kill('SIGKILL');
    const killedAt = Date.now();
    await until('the standby leads', async () => (leads(await scrape(ports[standby]!)) ? true : undefined), 30_000);
    const takeoverMs = Date.now() - killedAt;
    const before = digestOf(await getVMContext(admin, NS), 'broker-endpoints');
    await kubectl(['patch', '-n', NS, 'configmap', 'broker-endpoints', '--type=merge', '-p', '{"data":{"sla.conf":"tier = failover\\n"}}']);
    await until('the new leader reconciles', async () => ((vm) => (digestOf(vm, 'broker-endpoints') !== before ? vm : undefined))(await getVMContext(admin, NS)));
    // The lease is judged by when the standby last saw it renewed: expiry plus at most one retry.
    expect(takeoverMs).toBeLessThan(leaseMs + 2 * retryMs + 1000);
  });
});

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
