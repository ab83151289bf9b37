// The operator does its whole job as the restricted identity with only the rules in config/rbac,
// and config/rbac grants nothing it does not use. Judged from the API server's own audit log:
// no request of the operator's identity was forbidden, and every (group, resource, verb) the
// ClusterRole and Role grant appears in it.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { createLogger } from '../../src/controllers/log.js';
import { Operator } from '../../src/controllers/manager.js';
import { OperatorMetrics } from '../../src/controllers/metrics.js';
import { ImagesOnlyDriver } from '../../src/drivers/none.js';
import { KubeClient } from '../../src/kube/client.js';
import { PrometheusSource } from '../../src/policy/metrics.js';
import { RESTRICTED_USER } from '../controlplane/index.js';
import { controlPlaneSkipReason, startExclusiveControlPlane, type ControlPlane } from '../controlplane/shared.js';
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

describe.skipIf(controlPlaneSkipReason())('RBAC', () => {
  let cp: ControlPlane | undefined;
  let operator: Operator | undefined;
  const logs: string[] = [];
  afterAll(async () => {
    await operator?.stop();
    await cp?.stop();
  });

  it('config/rbac is enough for the whole job, and every rule in it is used', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'audit-'));
    const policy = join(dir, 'policy.yaml');
    const auditLog = join(dir, 'audit.log');
    writeFileSync(policy, `apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n    users: ["${RESTRICTED_USER}"]\n  - level: None\n`);
    cp = await startExclusiveControlPlane({ extraApiServerFlags: [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog}`] });
    const kubectl = strict(cp.kubectl.bind(cp));
    await installScenario(cp.kubectl.bind(cp), NS, { installCrds: true, nodePrefix: 'rbac-node' });
    await kubectl(['apply', '-f', join(REPO, 'config', 'rbac')]);
    // A MigrationPolicy for the VM (its metric cannot be read here: the policy reports that in its status).
    await kubectl(['apply', '-n', NS, '-f', '-'], readFileSync(join(REPO, 'examples', 'policies', 'threshold.yaml'), 'utf8').replace('app: web', 'app: gluster-client').replace('query:', 'address: http://127.0.0.1:9/\n      query:'));
    const admin = KubeClient.fromKubeconfig(cp.kubeconfigPath);
    const restricted = KubeClient.fromKubeconfig(cp.restrictedKubeconfigPath);
    const logger = createLogger({ level: 'debug', write: (line) => void logs.push(line) });
    const metrics = new OperatorMetrics({ defaultMetrics: false });
    operator = new Operator({
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

    const events = readFileSync(auditLog, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as AuditEvent).filter((e) => e.user.username === RESTRICTED_USER);
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
});
