// The operator does its whole job as the restricted identity with only the rules in config/rbac,
// and config/rbac grants nothing it does not use. Judged from the API server's own audit log:
// no request of the operator's identity was forbidden, and every (group, resource, verb) the
// ClusterRole and Role grant appears in it. And the chart's namespace-scoped mode: the operator
// with only its ServiceAccount's token and the chart's Role does its job in the watched namespace.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { createLogger } from '../../src/runtime/log.js';
import { ClusterOperator } from '../../src/controllers/cluster-operator.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { ImagesOnlyDriver } from '../../src/drivers/none.js';
import { KubeClient } from '../../src/kube/client.js';
import { PrometheusSource } from '../../src/metric-sources/index.js';
import { RESTRICTED_USER } from '../controlplane/index.js';
import { controlPlaneSkipReason, runHelm, startExclusiveControlPlane, type ControlPlane } from '../controlplane/shared.js';
import { REPO, getVMContext, installScenario, isReady, strict, until } from './scenario.js';

const NS = 'rbac';
type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type AuditEvent = { verb: string; user: { username: string }; objectRef?: { apiGroup?: string; resource?: string; subresource?: string }; responseStatus?: { code?: number }; requestURI: string };

function grantedRules(): Rule[] {
  const rules: Rule[] = [];
  for (const file of ['10-cluster-role.yaml', '20-leader-election.yaml']) {
    for (const doc of parseAllDocuments(readFileSync(join(REPO, 'config', 'rbac', file), 'utf8'))) {
      const object = doc.toJS() as { kind: string; rules?: Rule[] };
      if (object.kind === 'ClusterRole' || object.kind === 'Role') rules.push(...(object.rules ?? []));
    }
  }
  return rules;
}

/** A private control plane whose audit log records every request of `user` (metadata level). */
async function auditedControlPlane(user: string): Promise<{ cp: ControlPlane; auditOf: () => AuditEvent[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'audit-'));
  const policy = join(dir, 'policy.yaml');
  const auditLog = join(dir, 'audit.log');
  writeFileSync(policy, `apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n    users: ["${user}"]\n  - level: None\n`);
  const cp = await startExclusiveControlPlane({ extraApiServerFlags: [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog}`] });
  const auditOf = () => readFileSync(auditLog, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as AuditEvent).filter((e) => e.user.username === user);
  return { cp, auditOf };
}

describe.skipIf(controlPlaneSkipReason())('RBAC', () => {
  let cp: ControlPlane | undefined;
  let operator: ClusterOperator | undefined;
  const logs: string[] = [];
  afterAll(async () => {
    await operator?.stop();
    await cp?.stop();
  });

  it('config/rbac is enough for the whole job, and every rule in it is used', async () => {
    const audited = await auditedControlPlane(RESTRICTED_USER);
    cp = audited.cp;
    const kubectl = strict(cp.kubectl.bind(cp));
    await installScenario(cp.kubectl.bind(cp), NS, { installCrds: true, nodePrefix: 'rbac-node' });
    await kubectl(['apply', '-f', join(REPO, 'config', 'rbac')]);
    // A MigrationPolicy for the VM (its metric cannot be read here: the policy reports that in its status).
    await kubectl(['apply', '-n', NS, '-f', '-'], readFileSync(join(REPO, 'examples', 'policies', 'threshold.yaml'), 'utf8').replace('app: web', 'app: gluster-client').replace('query:', 'address: http://127.0.0.1:9/\n      query:'));
    const admin = KubeClient.fromKubeconfig(cp.kubeconfigPath);
    const restricted = KubeClient.fromKubeconfig(cp.restrictedKubeconfigPath);
    const logger = createLogger({ level: 'debug', write: (line) => void logs.push(line) });
    const metrics = new OperatorMetrics({ defaultMetrics: false });
    operator = new ClusterOperator({
      client: restricted,
      driver: new ImagesOnlyDriver({ client: restricted, logger, metrics }),
      logger,
      metrics,
      imageDirectory: mkdtempSync(join(tmpdir(), 'rbac-images-')),
      policyMetrics: { source: new PrometheusSource() },
      leaseNamespace: 'recontext-system',
      leaseDurationMs: 3000,
      renewDeadlineMs: 2000,
      retryPeriodMs: 300,
    });
    await operator.start();
    await until('Ready', async () => ((vm) => (isReady(vm) ? vm : undefined))(await getVMContext(admin, NS)));
    await until('the policy reports its metric unavailable', async () => {
      const policy = await admin.get<{ status?: { conditions?: { type: string; reason: string }[] } }>(`/apis/recontext.dev/v1alpha1/namespaces/${NS}/migrationpolicies/web-latency`);
      return policy.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'MetricUnavailable') ? true : undefined;
    });
    // Exercise every path: a layer edit, a failing layer twice (an event and its repeat), deletion.
    await kubectl(['patch', '-n', NS, 'configmap', 'broker-endpoints', '--type=merge', '-p', '{"data":{"sla.conf":"tier = rbac\\n"}}']);
    for (let i = 0; i < 2; i++) {
      await kubectl(['patch', '-n', NS, 'ctxl', 'site-cache', '--type=json', '-p', JSON.stringify([{ op: 'add', path: '/spec/files/-', value: { path: 'x.conf', template: true, content: '{{ values.nope }}' } }])]);
      await until('TemplateError', async () => ((vm) => (vm.status?.conditions?.some((c) => c.reason === 'TemplateError') ? vm : undefined))(await getVMContext(admin, NS)));
      await kubectl(['patch', '-n', NS, 'ctxl', 'site-cache', '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/spec/files/2' }])]);
      await until('Ready', async () => ((vm) => (isReady(vm) ? vm : undefined))(await getVMContext(admin, NS)));
    }
    await kubectl(['delete', '-n', NS, 'vmctx', 'gluster-client-1', '--wait=true', '--timeout=30s']);
    await operator.stop();
    operator = undefined;

    const events = audited.auditOf();
    const forbidden = events.filter((e) => e.responseStatus?.code === 403).map((e) => `${e.verb} ${e.requestURI}`);
    expect(forbidden).toEqual([]);
    expect(logs.join('')).not.toMatch(/forbidden/i);
    const used = new Set(
      events.filter((e) => e.objectRef?.resource).map((e) => `${e.objectRef!.apiGroup ?? ''}|${e.objectRef!.resource}${e.objectRef!.subresource ? `/${e.objectRef!.subresource}` : ''}|${e.verb}`),
    );
    const unused: string[] = [];
    for (const rule of grantedRules()) {
      for (const group of rule.apiGroups) for (const resource of rule.resources) for (const verb of rule.verbs) {
        if (!used.has(`${group}|${resource}|${verb}`)) unused.push(`${group || 'core'} ${resource} ${verb}`);
      }
    }
    expect(unused).toEqual([]);
  });
  it("the chart's namespaced mode: with only its ServiceAccount's token the operator does its job in the watched namespace, and leaves the others alone", async () => {
    const RELEASE_NS = 'recontext-system';
    const WATCHED = 'apps';
    const SERVICE_ACCOUNT = `system:serviceaccount:${RELEASE_NS}:rx-recontext`;
    const audited = await auditedControlPlane(SERVICE_ACCOUNT);
    const own = audited.cp;
    try {
      const kubectl = strict(own.kubectl.bind(own));
      await installScenario(own.kubectl.bind(own), WATCHED, { installCrds: true, nodePrefix: 'ns-node' });
      await installScenario(own.kubectl.bind(own), 'outside', { installCrds: false, nodePrefix: 'ns-node' });
      await kubectl(['create', 'namespace', RELEASE_NS]);
      // Everything the chart renders in this mode (its Deployment never runs: no kubelet), then a
      // token of its ServiceAccount for the operator run here.
      const rendered = await runHelm(['template', 'rx', join(REPO, 'charts', 'recontext'), '--namespace', RELEASE_NS, '--set', 'rbac.namespaced=true', '--set', `operator.watchNamespace=${WATCHED}`]);
      expect(rendered.code, rendered.stderr).toBe(0);
      const manifest = rendered.stdout;
      const kinds = parseAllDocuments(manifest).map((d) => (d.toJS() as { kind?: string } | null)?.kind).filter(Boolean);
      expect(kinds).toContain('Role');
      expect(kinds.filter((k) => k === 'ClusterRole')).toHaveLength(1); // nodes only
      await kubectl(['apply', '--server-side', '-f', '-'], manifest);
      const token = (await kubectl(['create', 'token', 'rx-recontext', '-n', RELEASE_NS, '--duration=1h'])).trim();
      const admin = KubeClient.fromKubeconfig(own.kubeconfigPath);
      const config = parse(readFileSync(own.kubeconfigPath, 'utf8')) as { users: { user: { token: string } }[] };
      for (const user of config.users) user.user.token = token;
      const saKubeconfig = join(mkdtempSync(join(tmpdir(), 'sa-')), 'kubeconfig');
      writeFileSync(saKubeconfig, stringify(config), { mode: 0o600 });
      const sa = KubeClient.fromKubeconfig(saKubeconfig);

      const lines: string[] = [];
      const logger = createLogger({ level: 'debug', write: (line) => void lines.push(line) });
      const metrics = new OperatorMetrics({ defaultMetrics: false });
      operator = new ClusterOperator({
        client: sa,
        driver: new ImagesOnlyDriver({ client: sa, logger, metrics, namespace: WATCHED }),
        logger,
        metrics,
        imageDirectory: mkdtempSync(join(tmpdir(), 'rbac-ns-images-')),
        namespace: WATCHED,
        leaseNamespace: RELEASE_NS,
        leaseDurationMs: 3000,
        renewDeadlineMs: 2000,
        retryPeriodMs: 300,
      });
      await operator.start();
      const ready = await until('Ready in the watched namespace', async () => ((vm) => (isReady(vm) ? vm : undefined))(await getVMContext(admin, WATCHED)));
      expect(ready.status?.node).toBe('ns-node-a'); // the node's labels were read (the nodes-only ClusterRole)
      // A migration in the watched namespace re-renders (the VMI informer works under the Role).
      await kubectl(['patch', '-n', WATCHED, 'vmi', 'gluster-client-1', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', nodeName: 'ns-node-b', migrationState: { completed: true, failed: false, migrationUid: 'ns-mig-1', sourceNode: 'ns-node-a', targetNode: 'ns-node-b' } } })]);
      await until('migration handled', async () => ((vm) => (vm.status?.lastMigrationId === 'ns-mig-1' ? vm : undefined))(await getVMContext(admin, WATCHED)));
      await operator.stop();
      operator = undefined;

      expect((await getVMContext(admin, 'outside')).status).toBeUndefined();
      const events = audited.auditOf();
      expect(events.length).toBeGreaterThan(10);
      expect(events.filter((e) => e.responseStatus?.code === 403).map((e) => `${e.verb} ${e.requestURI}`)).toEqual([]);
      expect(events.filter((e) => e.requestURI.includes('/namespaces/outside'))).toEqual([]);
      expect(lines.join('')).not.toMatch(/forbidden/i);
    } finally {
      await own.stop();
    }
  });
});
