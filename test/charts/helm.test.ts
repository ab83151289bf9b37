// charts/recontext with a real helm (built from the Go module proxy by the control plane's build,
// test/controlplane/helm/): `helm lint` (and --strict), `helm template` for the defaults and each
// option, parsed and checked object by object; values.schema.json rejecting bad values; and
// `helm install --dry-run=server` against the shared test API server, whose rendered manifest is
// then submitted with `kubectl apply --dry-run=server` so the API server validates every object;
// and one real install, upgrade and uninstall on a private API server, for the CRDs of crds/ (which
// a dry run skips). The ServiceMonitor and PrometheusRule are installed on a private API server that
// has the Prometheus Operator's real CRDs.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { operatorCommand } from '../../src/cli/operator.js';
import { runKubectl } from '../controlplane/index.js';
import { prometheusOperatorCrds, prometheusOperatorCrdsSkipReason } from '../support/prometheus-operator-crds.js';
import { controlPlaneSkipReason, installCrds, runHelm, startExclusiveControlPlane, useControlPlane, type SharedControlPlane } from '../controlplane/shared.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CHART = join(ROOT, 'charts', 'recontext');
const NS = 'recontext-system';
const RELEASE = 'rx';
const FULLNAME = 'rx-recontext';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  rules?: Rule[];
  subjects?: { kind: string; name: string; namespace?: string }[];
  roleRef?: { kind: string; name: string };
  spec?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function objectsOf(yaml: string): K8sObject[] {
  return parseAllDocuments(yaml)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('\n'));
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** `helm template rx charts/recontext -n recontext-system --set …`, parsed; fails the test on a helm error. */
async function render(...set: string[]): Promise<K8sObject[]> {
  const result = await runHelm(['template', RELEASE, CHART, '--namespace', NS, ...set.flatMap((s) => ['--set', s])]);
  expect(result.code, result.stderr).toBe(0);
  return objectsOf(result.stdout);
}

const kinds = (objects: readonly K8sObject[]): string[] => objects.map((o) => o.kind).sort();
const one = (objects: readonly K8sObject[], kind: string, name?: string): K8sObject => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found.map((o) => `${o.kind}/${o.metadata.name}`), `exactly one ${kind}${name ? `/${name}` : ''}`).toHaveLength(1);
  return found[0] as K8sObject;
};
function grants(rules: readonly Rule[]): string[] {
  const out = new Set<string>();
  for (const rule of rules) for (const g of rule.apiGroups) for (const r of rule.resources) for (const v of rule.verbs) out.add(`${g || 'core'} ${r} ${v}`);
  return [...out].sort();
}
const container = (objects: readonly K8sObject[]) => one(objects, 'Deployment').spec.template.spec.containers[0] as { args: string[] };

const skip = controlPlaneSkipReason();

describe.skipIf(skip)('charts/recontext: helm lint', () => {
  it.each([['helm lint', []], ['helm lint --strict', ['--strict']]])('%s passes, for the defaults and every option', async (_, flags: string[]) => {
    for (const set of [[], ['rbac.namespaced=true'], ['serviceMonitor.enabled=true', 'prometheusRule.enabled=true'], ['crds.templated=true'], ['replicas=1']]) {
      const result = await runHelm(['lint', CHART, ...flags, ...set.flatMap((s) => ['--set', s])]);
      expect(result.code, `helm lint ${flags.join(' ')} ${set.join(' ')}:\n${result.stdout}${result.stderr}`).toBe(0);
      expect(result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    }
  });
});

describe.skipIf(skip)('charts/recontext: helm template', () => {
  it('the defaults: the operator, its identity, least-privilege RBAC, the image Service and a PDB; no CRDs, no monitoring', async () => {
    const objects = await render();
    expect(kinds(objects)).toEqual(
      ['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Lease', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount'].sort(),
    );
    for (const o of objects) if (!o.kind.startsWith('Cluster')) expect(o.metadata.namespace, `${o.kind} namespace`).toBe(NS);

    // The bindings name the ServiceAccount the Deployment runs as.
    const account = one(objects, 'ServiceAccount');
    const deployment = one(objects, 'Deployment');
    expect(deployment.spec.template.spec.serviceAccountName).toBe(account.metadata.name);
    for (const binding of objects.filter((o) => o.kind.endsWith('Binding'))) {
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: account.metadata.name, namespace: NS }]);
      const ref = binding.roleRef as { kind: string; name: string };
      expect(one(objects, ref.kind, ref.name)).toBeDefined();
    }

    // Exactly config/rbac's rules, cluster-wide and in the release namespace.
    const config = { cluster: [] as Rule[], namespaced: [] as Rule[] };
    for (const file of readdirSync(join(ROOT, 'config', 'rbac')))
      for (const o of objectsOf(readFileSync(join(ROOT, 'config', 'rbac', file), 'utf8'))) {
        if (o.kind === 'ClusterRole') config.cluster.push(...(o.rules ?? []));
        if (o.kind === 'Role') config.namespaced.push(...(o.rules ?? []));
      }
    expect(grants(one(objects, 'ClusterRole').rules ?? [])).toEqual(grants(config.cluster));
    expect(grants(one(objects, 'Role').rules ?? [])).toEqual(grants(config.namespaced));

    // Two replicas with leader election; security settings, resources and probes as rendered.
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    const c = pod.containers[0];
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(c.image).toBe('ghcr.io/recontext/recontext:0.1.0');

    // Every flag is one `recontext operator` knows; no --namespace (all namespaces).
    const command = operatorCommand();
    const known = new Set(command.options.map((o) => o.long));
    expect(c.command).toEqual(['recontext']);
    expect(c.args[0]).toBe('operator');
    const flags = (c.args as string[]).slice(1).map((a) => a.split('=')[0]);
    expect(flags.filter((f) => !known.has(f)), 'flags recontext operator does not know').toEqual([]);
    expect(c.args).toEqual(
      expect.arrayContaining([
        '--driver=kubevirt',
        `--image-base-url=http://${FULLNAME}-images.${NS}.svc:8090`,
        '--lease-namespace=$(POD_NAMESPACE)',
      ]),
    );
    // The lease timings are the operator's defaults unless set (each default lives once, in src/runtime/leader.ts).
    expect(flags).not.toContain('--lease-duration');
    expect(flags).not.toContain('--namespace');

    const service = one(objects, 'Service');
    expect(service.metadata.name).toBe(`${FULLNAME}-images`);
    expect(service.spec.selector).toEqual({ ...deployment.spec.selector.matchLabels, 'recontext.dev/leader': 'true' });

    const pdb = one(objects, 'PodDisruptionBudget');
    expect(pdb.spec).toEqual({ minAvailable: 1, selector: { matchLabels: deployment.spec.selector.matchLabels } });
  });

  it('operator.kubevirt sets the DataVolumes\' storage class and access mode (only with the kubevirt driver)', async () => {
    const args = async (...sets: string[]) => one(await render(...sets), 'Deployment').spec.template.spec.containers[0].args as string[];
    expect((await args()).filter((a) => /^--(storage-class|access-mode)=/.test(a))).toEqual([]);
    const set = ['operator.kubevirt.storageClass=shared', 'operator.kubevirt.accessMode=ReadWriteMany'];
    expect(await args(...set)).toEqual(expect.arrayContaining(['--storage-class=shared', '--access-mode=ReadWriteMany']));
    expect((await args(...set, 'operator.driver=none')).filter((a) => /^--(storage-class|access-mode)=/.test(a))).toEqual([]);
  });

  it('operator.kubevirt.watchTargetPods=false: --no-kubevirt-target-pods, and no pods list/watch rule', async () => {
    const podReads = (objects: Awaited<ReturnType<typeof render>>) =>
      (one(objects, 'ClusterRole').rules ?? []).filter((r) => r.resources.includes('pods') && r.verbs.includes('watch'));
    const on = await render();
    expect(one(on, 'Deployment').spec.template.spec.containers[0].args).not.toContain('--no-kubevirt-target-pods');
    expect(podReads(on)).toHaveLength(1);
    const off = await render('operator.kubevirt.watchTargetPods=false');
    expect(one(off, 'Deployment').spec.template.spec.containers[0].args).toContain('--no-kubevirt-target-pods');
    expect(podReads(off)).toEqual([]);
  });

  it('no PodDisruptionBudget for a single replica (minAvailable 1 would block every drain)', async () => {
    const objects = await render('replicas=1');
    expect(kinds(objects)).not.toContain('PodDisruptionBudget');
    expect(one(objects, 'Deployment').spec.replicas).toBe(1);
    expect(kinds(await render('podDisruptionBudget.enabled=false'))).not.toContain('PodDisruptionBudget');
    expect(one(await render('podDisruptionBudget.minAvailable=50%'), 'PodDisruptionBudget').spec.minAvailable).toBe('50%');
  });

  it('rbac.namespaced: a Role in the watched namespace (the cluster rules minus nodes), a nodes-only ClusterRole, --namespace', async () => {
    const cluster = grants(one(await render(), 'ClusterRole').rules ?? []);
    const objects = await render('rbac.namespaced=true', 'operator.watchNamespace=apps');
    const clusterRoles = objects.filter((o) => o.kind === 'ClusterRole');
    expect(clusterRoles.map((r) => r.metadata.name)).toEqual([`${FULLNAME}-nodes`]);
    expect(grants(clusterRoles[0]?.rules ?? [])).toEqual(['core nodes get', 'core nodes list']);
    const role = one(objects, 'Role', FULLNAME);
    expect(role.metadata.namespace).toBe('apps');
    expect(grants(role.rules ?? [])).toEqual(cluster.filter((g) => !g.startsWith('core nodes ')));
    // The leader election Role stays in the release namespace.
    expect(one(objects, 'Role', `${FULLNAME}-leader-election`).metadata.namespace).toBe(NS);
    expect(one(objects, 'RoleBinding', FULLNAME).metadata.namespace).toBe('apps');
    for (const binding of objects.filter((o) => o.kind.endsWith('Binding'))) expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: FULLNAME, namespace: NS }]);
    expect(container(objects).args).toContain('--namespace=apps');

    // Without a watchNamespace it watches (and its Role is in) the release namespace.
    const defaulted = await render('rbac.namespaced=true');
    expect(one(defaulted, 'Role', FULLNAME).metadata.namespace).toBe(NS);
    expect(container(defaulted).args).toContain(`--namespace=${NS}`);
  });

  it('serviceMonitor.enabled: a metrics Service over every replica and a ServiceMonitor that selects it', async () => {
    const objects = await render('serviceMonitor.enabled=true', 'serviceMonitor.labels.release=prom');
    const monitor = one(objects, 'ServiceMonitor');
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor.metadata.labels?.['release']).toBe('prom');
    const metrics = one(objects, 'Service', `${FULLNAME}-metrics`);
    const images = one(objects, 'Service', `${FULLNAME}-images`);
    const matches = (labels: Record<string, string> | undefined) => Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => labels?.[k] === v);
    expect(matches(metrics.metadata.labels)).toBe(true);
    expect(matches(images.metadata.labels)).toBe(false);
    expect(metrics.spec.selector).toEqual(one(objects, 'Deployment').spec.selector.matchLabels);
    expect(metrics.spec.ports[0].name).toBe(monitor.spec.endpoints[0].port);
    expect(monitor.spec.endpoints[0]).toMatchObject({ path: '/metrics', interval: '30s' });
    expect(kinds(await render('prometheusRule.enabled=false'))).not.toContain('ServiceMonitor');
  });

  it('prometheusRule.enabled: the groups of alerts/recontext-rules.yaml as they are (failing, latency, stuck queue, ...)', async () => {
    const rule = one(await render('prometheusRule.enabled=true', 'prometheusRule.labels.role=alert-rules'), 'PrometheusRule');
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(rule.metadata.labels?.['role']).toBe('alert-rules');
    // Unchanged, Prometheus' own {{ $labels.… }} included; the file's content is checked (promtool,
    // metric and label names) by observability.test.ts.
    const file = parse(readFileSync(join(CHART, 'alerts', 'recontext-rules.yaml'), 'utf8')) as { groups: unknown[] };
    expect(rule.spec.groups).toEqual(file.groups);
    const alerts = (rule.spec.groups as { rules: { alert?: string; expr: string; annotations?: Record<string, string> }[] }[]).flatMap((g) => g.rules);
    expect(alerts.map((r) => r.alert)).toEqual(expect.arrayContaining(['RecontextFailing', 'RecontextLatencyHigh', 'RecontextWorkQueueStuck']));
    const byName = (name: string) => alerts.find((r) => r.alert === name);
    expect(byName('RecontextFailing')?.expr).toContain('recontext_recontext_failures_total');
    expect(byName('RecontextLatencyHigh')?.expr).toContain('recontext_recontext_duration_seconds_bucket');
    expect(byName('RecontextWorkQueueStuck')?.expr).toContain('recontext_workqueue_depth');
    expect(JSON.stringify(byName('RecontextFailing')?.annotations)).toContain('{{ $labels.reason }}');
    expect(kinds(await render())).not.toContain('PrometheusRule');
  });

  it('crds.templated: the files of crds/ as templates, kept on uninstall', async () => {
    const crds = (await render('crds.templated=true')).filter((o) => o.kind === 'CustomResourceDefinition');
    const files = readdirSync(join(CHART, 'crds')).sort();
    expect(crds).toHaveLength(files.length);
    for (const file of files) {
      const source = parse(readFileSync(join(CHART, 'crds', file), 'utf8')) as K8sObject;
      const rendered = one(crds, 'CustomResourceDefinition', source.metadata.name);
      expect(rendered.spec).toEqual(source.spec);
      expect(rendered.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
      expect(rendered.metadata.labels).toMatchObject({ ...source.metadata.labels, 'app.kubernetes.io/managed-by': 'Helm' });
    }
    expect(kinds(await render()).filter((k) => k === 'CustomResourceDefinition')).toEqual([]);
  });

  it.each([
    ['replicas=abc', 'replicas'],
    ['replicas=0', 'replicas'],
    ['operator.driver=libvirt', 'driver'],
    ['operator.logLevel=verbose', 'logLevel'],
    ['image.pullPolicy=Sometimes', 'pullPolicy'],
    ['metrics.port=70000', 'port'],
    ['replica=3', 'replica'],
    ['rbac.namespaced=yes', 'namespaced'],
    ['podDisruptionBudget.minAvailable=half', 'minAvailable'],
    ['prometheusRule.severity=page', 'severity'],
    ['serviceMonitor.interval=soon', 'interval'],
    ['operator.kubevirt.accessMode=ReadOnce', 'accessMode'],
    ['leaderElection.leaseDuration=15000', 'leaseDuration'],
    ['operator.prometheusUrl=prometheus:9090', 'prometheusUrl'],
  ])('values.schema.json rejects --set %s', async (set, word) => {
    const result = await runHelm(['template', RELEASE, CHART, '--namespace', NS, '--set', set]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('values don\'t meet the specifications of the schema');
    expect(result.stderr).toContain(word);
  });

  it('passes the MigrationPolicy metric settings when set', async () => {
    expect(container(await render()).args).not.toEqual(expect.arrayContaining([expect.stringMatching(/^--(prometheus-url|accept-reports)/)]));
    const args = container(await render('operator.prometheusUrl=http://prometheus-operated.monitoring.svc:9090', 'operator.acceptReports=true')).args;
    expect(args).toEqual(expect.arrayContaining(['--prometheus-url=http://prometheus-operated.monitoring.svc:9090', '--accept-reports']));
  });

  it('passes lease timings as Go durations when set', async () => {
    const args = container(await render('leaderElection.leaseDuration=20s', 'leaderElection.renewDeadline=12s', 'leaderElection.retryPeriod=3s')).args;
    expect(args).toEqual(expect.arrayContaining(['--lease-duration=20s', '--renew-deadline=12s', '--retry-period=3s']));
  });

  it('refuses more than one replica without leader election', async () => {
    const result = await runHelm(['template', RELEASE, CHART, '--set', 'leaderElection.enabled=false']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('replicas > 1 needs leaderElection.enabled');
    expect(container(await render('leaderElection.enabled=false', 'replicas=1')).args).toContain('--no-leader-elect');
  });
});

describe.skipIf(skip)('charts/recontext: helm install on a real API server', () => {
  let plane: SharedControlPlane;
  beforeAll(async () => {
    plane = await useControlPlane();
    await installCrds(plane); // as a previous install (crds/ = config/crd) would have left them
  });

  /** A fresh namespace; the release goes there. */
  async function namespace(prefix: string): Promise<string> {
    const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
    const created = await plane.kubectl(['create', 'namespace', name]);
    expect(created.code, created.stderr).toBe(0);
    return name;
  }

  /**
   * helm's --dry-run=server renders with the cluster (lookup, capabilities, REST mappings of every
   * kind, conflicts with existing objects) but sends no object; kubectl then submits the manifest
   * as a server-side dry run, so the API server validates each object (strict field validation).
   */
  async function installDryRun(ns: string, ...extra: string[]): Promise<K8sObject[]> {
    const release = `rx-${ns}`;
    const result = await runHelm(['install', release, CHART, '--namespace', ns, '--dry-run=server', '--kubeconfig', plane.kubeconfigPath, '-o', 'json', ...extra]);
    expect(result.code, result.stderr).toBe(0);
    const manifest = (JSON.parse(result.stdout) as { manifest: string }).manifest;
    const applied = await plane.kubectl(['apply', '--dry-run=server', '--server-side', '--field-manager=recontext-chart-test', '-f', '-'], { input: manifest });
    expect(applied.code, `${applied.stderr}${applied.stdout}`).toBe(0);
    return objectsOf(manifest);
  }

  it('the defaults install (and lookup finds an existing signing key in the cluster)', async () => {
    const ns = await namespace('chart');
    const key = Buffer.from('a-key-that-was-there-before-the-upgrade').toString('base64');
    const secret = await plane.kubectl(['-n', ns, 'create', 'secret', 'generic', `rx-${ns}-recontext-signing-key`, '--from-literal=key=a-key-that-was-there-before-the-upgrade']);
    expect(secret.code, secret.stderr).toBe(0);
    // Owned by the release, as an earlier install would have left it (else Helm refuses to adopt it).
    const owned = [
      await plane.kubectl(['-n', ns, 'label', 'secret', `rx-${ns}-recontext-signing-key`, 'app.kubernetes.io/managed-by=Helm']),
      await plane.kubectl(['-n', ns, 'annotate', 'secret', `rx-${ns}-recontext-signing-key`, `meta.helm.sh/release-name=rx-${ns}`, `meta.helm.sh/release-namespace=${ns}`]),
    ];
    for (const result of owned) expect(result.code, result.stderr).toBe(0);
    const objects = await installDryRun(ns);
    expect(kinds(objects)).toEqual(['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Lease', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount'].sort());
    expect(one(objects, 'Secret') as unknown as { data: { key: string } }).toMatchObject({ data: { key } });

    // The API server's check is not vacuous: a misspelt field in the same manifest is refused.
    const typo = objects.map((o) => (o.kind === 'Deployment' ? { ...o, spec: { ...o.spec, replica: 2 } } : o));
    const refused = await plane.kubectl(['apply', '--dry-run=server', '--server-side', '--field-manager=recontext-chart-test', '-f', '-'], {
      input: typo.map((o) => JSON.stringify(o)).join('\n---\n'),
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('.spec.replica: field not declared in schema');
  });

  it('rbac.namespaced installs, its Role in the watched namespace', async () => {
    const ns = await namespace('chart-ns');
    const watched = await namespace('chart-apps');
    const objects = await installDryRun(ns, '--set', 'rbac.namespaced=true', '--set', `operator.watchNamespace=${watched}`);
    expect(one(objects, 'Role', `rx-${ns}-recontext`).metadata.namespace).toBe(watched);
  });

  it('crds.templated: the templated CRDs take over the ones crds/ installed (helm upgrade/install --take-ownership)', async () => {
    const ns = await namespace('chart-crds');
    // Without --take-ownership Helm refuses: the CRDs exist and carry no Helm ownership.
    const refused = await runHelm(['install', `rx-${ns}`, CHART, '--namespace', ns, '--dry-run=server', '--kubeconfig', plane.kubeconfigPath, '--skip-crds', '--set', 'crds.templated=true']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/CustomResourceDefinition "[a-z]+\.recontext\.dev" in namespace "" exists and cannot be imported/);
    const objects = await installDryRun(ns, '--skip-crds', '--take-ownership', '--set', 'crds.templated=true');
    expect(objects.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name).sort()).toEqual([
      'contextlayers.recontext.dev',
      'migrationpolicies.recontext.dev',
      'vmcontexts.recontext.dev',
    ]);
  });

  // The CRDs of crds/ really installed (helm skips crds/ on a dry run), on a private API server that
  // has none: a real install, an upgrade to templated CRDs, an uninstall that keeps them.
  it('helm install creates the CRDs of crds/ and every object; upgrading to crds.templated adopts them; uninstall keeps them', async () => {
    const own = await startExclusiveControlPlane();
    try {
      const kubectl = (args: string[]) => runKubectl(own.kubectlPath, own.kubeconfigPath, args);
      const names = ['contextlayers.recontext.dev', 'migrationpolicies.recontext.dev', 'vmcontexts.recontext.dev'];
      const base = ['--namespace', NS, '--kubeconfig', own.kubeconfigPath];
      const installed = await runHelm(['install', RELEASE, CHART, ...base, '--create-namespace']);
      expect(installed.code, installed.stderr).toBe(0);
      const established = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...names.map((n) => `crd/${n}`)]);
      expect(established.code, established.stderr).toBe(0);
      const listed = await kubectl(['-n', NS, 'get', 'deployment,service,serviceaccount,secret,role,rolebinding,poddisruptionbudget', '-o', 'name']);
      // (besides the release record helm keeps in a Secret)
      expect(listed.stdout.split('\n').filter((line) => line && !line.startsWith('secret/sh.helm.release.')).sort()).toEqual(
        [
          `deployment.apps/${FULLNAME}`,
          `poddisruptionbudget.policy/${FULLNAME}`,
          `role.rbac.authorization.k8s.io/${FULLNAME}-leader-election`,
          `rolebinding.rbac.authorization.k8s.io/${FULLNAME}-leader-election`,
          `secret/${FULLNAME}-signing-key`,
          `service/${FULLNAME}-images`,
          `serviceaccount/${FULLNAME}`,
        ].sort(),
      );
      const key = await kubectl(['-n', NS, 'get', 'secret', `${FULLNAME}-signing-key`, '-o', 'jsonpath={.data.key}']);

      const upgraded = await runHelm(['upgrade', RELEASE, CHART, ...base, '--set', 'crds.templated=true', '--take-ownership']);
      expect(upgraded.code, upgraded.stderr).toBe(0);
      const annotations = await kubectl(['get', 'crd', names[0] as string, '-o', 'jsonpath={.metadata.annotations}']);
      expect(JSON.parse(annotations.stdout)).toMatchObject({ 'helm.sh/resource-policy': 'keep', 'meta.helm.sh/release-name': RELEASE });
      // lookup kept the signing key across the upgrade.
      expect((await kubectl(['-n', NS, 'get', 'secret', `${FULLNAME}-signing-key`, '-o', 'jsonpath={.data.key}'])).stdout).toBe(key.stdout);

      const uninstalled = await runHelm(['uninstall', RELEASE, ...base]);
      expect(uninstalled.code, uninstalled.stderr).toBe(0);
      expect(uninstalled.stdout + uninstalled.stderr).toContain('These resources were kept due to the resource policy');
      const left = await kubectl(['get', 'crd', ...names, '-o', 'name']);
      expect(left.code, left.stderr).toBe(0);
      expect((await kubectl(['-n', NS, 'get', 'deployment', FULLNAME])).code).not.toBe(0);
    } finally {
      await own.stop();
    }
  });

  // Where the Prometheus Operator's CRDs are installed (its real ones, pinned: test/support/
  // prometheus-operator-crds.ts), on a private API server: the ServiceMonitor and PrometheusRule
  // are created and pass the real schemas; a misspelt field in them is refused.
  it.skipIf(prometheusOperatorCrdsSkipReason())('serviceMonitor and prometheusRule install against the real Prometheus Operator CRDs', async () => {
    const own = await startExclusiveControlPlane();
    try {
      const crds = await prometheusOperatorCrds();
      const kubectl = (args: readonly string[], input?: string) => own.kubectl(args, input === undefined ? {} : { input });
      const applied = await kubectl(['apply', '--server-side', ...crds.flatMap((f) => ['-f', f])]);
      expect(applied.code, applied.stderr).toBe(0);
      const established = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/servicemonitors.monitoring.coreos.com', 'crd/prometheusrules.monitoring.coreos.com']);
      expect(established.code, established.stderr).toBe(0);
      expect((await kubectl(['create', 'namespace', NS])).code).toBe(0);
      const installed = await runHelm(['install', RELEASE, CHART, '--namespace', NS, '--kubeconfig', own.kubeconfigPath, '--set', 'serviceMonitor.enabled=true', '--set', 'prometheusRule.enabled=true', '-o', 'json']);
      expect(installed.code, installed.stderr).toBe(0);
      const monitor = JSON.parse((await kubectl(['-n', NS, 'get', 'servicemonitor', FULLNAME, '-o', 'json'])).stdout) as K8sObject;
      expect(monitor.spec.endpoints[0].port).toBe('metrics');
      const rule = JSON.parse((await kubectl(['-n', NS, 'get', 'prometheusrule', FULLNAME, '-o', 'json'])).stdout) as K8sObject;
      expect(rule.spec.groups.length).toBeGreaterThan(0);
      // Not vacuous: the same ServiceMonitor with a misspelt field is refused by the real schema.
      const typo = { apiVersion: monitor.apiVersion, kind: monitor.kind, metadata: { name: 'typo', namespace: NS }, spec: { ...monitor.spec, endpoints: [{ ...monitor.spec.endpoints[0], intervall: '30s' }] } };
      const refused = await kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify(typo));
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/intervall: field not declared in schema/);
    } finally {
      await own.stop();
    }
  });

  it('serviceMonitor and prometheusRule fail clearly where the Prometheus Operator CRDs are missing', async () => {
    const ns = await namespace('chart-mon');
    const result = await runHelm(['install', `rx-${ns}`, CHART, '--namespace', ns, '--dry-run=server', '--kubeconfig', plane.kubeconfigPath, '--set', 'serviceMonitor.enabled=true']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('no matches for kind "ServiceMonitor" in version "monitoring.coreos.com/v1"');
  });
});
