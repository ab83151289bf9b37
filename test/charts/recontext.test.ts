// What can be checked of charts/recontext without a helm binary (issue #10 adds `helm lint` and
// `helm template` in CI): the plain YAML files parse, crds/ is a byte-for-byte copy of config/crd,
// the RBAC templates grant exactly the rules the chart README lists (and cover config/rbac), the
// Deployment has the security settings, probes, volumes and environment the README promises, and
// every flag it passes is one `recontext operator` knows or one that is being added.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { operatorCommand } from '../../src/cli/operator.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CHART = join(ROOT, 'charts', 'recontext');
const read = (...path: string[]): string => readFileSync(join(...path), 'utf8');

/**
 * The YAML a template renders to, as far as a test can tell without helm: lines that are only
 * template actions ({{- if …}}, {{- toYaml … | nindent }}) are dropped, and actions inside a line
 * become the word TEMPLATED. Good enough for templates whose structure is plain YAML.
 */
function untemplate(text: string): unknown[] {
  const lines = text
    .replace(/\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/g, '') // comments, which may span lines
    .split('\n')
    .filter((line) => !/^\s*\{\{.*\}\}\s*$/.test(line))
    .map((line) => line.replace(/\{\{.*?\}\}/g, 'TEMPLATED'));
  return parseAllDocuments(lines.join('\n'))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('\n'));
      return doc.toJS() as unknown;
    })
    .filter((doc) => doc !== null);
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
interface K8sObject {
  kind: string;
  metadata: { name: string };
  rules?: Rule[];
  [key: string]: unknown;
}

/** One "group resource verb" string per permission a list of rules grants. */
function grants(rules: readonly Rule[]): Set<string> {
  const out = new Set<string>();
  for (const rule of rules) for (const g of rule.apiGroups) for (const r of rule.resources) for (const v of rule.verbs) out.add(`${g || 'core'} ${r} ${v}`);
  return out;
}

const templateObjects = (file: string): K8sObject[] => untemplate(read(CHART, 'templates', file)) as K8sObject[];
const byKind = (objects: K8sObject[], kind: string): K8sObject => {
  const found = objects.find((o) => o.kind === kind);
  if (!found) throw new Error(`no ${kind}`);
  return found;
};

/** The README's RBAC table: scope (cluster or namespace) → permissions. */
function readmeRbac(): { cluster: Set<string>; namespace: Set<string> } {
  const readme = read(CHART, 'README.md');
  const table = readme.slice(readme.indexOf('<!-- rbac:begin -->'), readme.indexOf('<!-- rbac:end -->'));
  const cluster = new Set<string>();
  const namespace = new Set<string>();
  for (const line of table.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const scope = cells[1];
    if (scope !== 'cluster' && scope !== 'release namespace') continue;
    const ticks = (cell: string | undefined) => [...(cell ?? '').matchAll(/`([^`]*)`/g)].map((m) => (m[1] === '""' ? '' : (m[1] ?? '')));
    const rule: Rule = { apiGroups: ticks(cells[2]), resources: ticks(cells[3]), verbs: ticks(cells[4]) };
    for (const g of grants([rule])) (scope === 'cluster' ? cluster : namespace).add(g);
  }
  return { cluster, namespace };
}

describe('charts/recontext: plain files', () => {
  it('Chart.yaml is a v2 chart of appVersion 0.1.0', () => {
    const chart = parse(read(CHART, 'Chart.yaml')) as Record<string, unknown>;
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'recontext', appVersion: '0.1.0', type: 'application' });
    expect(chart['version']).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('values.yaml parses and every key is in the README values table', () => {
    const values = parse(read(CHART, 'values.yaml')) as Record<string, unknown>;
    expect(values).toMatchObject({ replicas: 2, leaderElection: { enabled: true }, operator: { driver: 'kubevirt' } });
    const table = read(CHART, 'README.md').split('## Values')[1] ?? '';
    const documented = new Set([...table.matchAll(/^\| (.+?) \|/gm)].flatMap((m) => [...(m[1] ?? '').matchAll(/`([^`]+)`/g)].map((t) => t[1])));
    const missing: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (documented.has(path)) return; // a documented map (resources, podSecurityContext …)
      if (node !== null && typeof node === 'object' && !Array.isArray(node) && Object.keys(node).length > 0) {
        for (const [key, child] of Object.entries(node)) walk(child, path ? `${path}.${key}` : key);
      } else missing.push(path);
    };
    walk(values, '');
    expect(missing, 'values.yaml keys missing from the README values table').toEqual([]);
  });

  it('crds/ is a byte-for-byte copy of config/crd (npm run generate writes both)', () => {
    const source = readdirSync(join(ROOT, 'config', 'crd')).filter((f) => f.endsWith('.yaml')).sort();
    const copies = readdirSync(join(CHART, 'crds')).sort();
    expect(copies).toEqual(source);
    for (const file of source) {
      const same = readFileSync(join(ROOT, 'config', 'crd', file)).equals(readFileSync(join(CHART, 'crds', file)));
      expect(same, `charts/recontext/crds/${file} differs from config/crd/${file}: npm run generate`).toBe(true);
      const docs = parseAllDocuments(read(CHART, 'crds', file));
      expect(docs.map((d) => d.errors)).toEqual(docs.map(() => []));
      expect(docs.map((d) => (d.toJS() as K8sObject).kind)).toEqual(['CustomResourceDefinition']);
    }
  });
});

describe('charts/recontext: templates', () => {
  // Not a template engine: a cheap guard against the commonest slip until helm lint runs in CI.
  it.each(readdirSync(join(CHART, 'templates')))('%s: every if/with/range/define has its end', (file) => {
    const actions = [...read(CHART, 'templates', file).matchAll(/\{\{-?\s*(if|with|range|define|end)\b/g)].map((m) => m[1]);
    let depth = 0;
    for (const action of actions) {
      depth += action === 'end' ? -1 : 1;
      expect(depth, `${file}: an end without its block`).toBeGreaterThanOrEqual(0);
    }
    expect(depth, `${file}: a block without its end`).toBe(0);
  });
});

describe('charts/recontext: RBAC', () => {
  const clusterRole = byKind(templateObjects('clusterrole.yaml'), 'ClusterRole');
  const role = byKind(templateObjects('role.yaml'), 'Role');

  it('the ClusterRole and the Role grant exactly what the README lists', () => {
    const readme = readmeRbac();
    expect(readme.cluster.size).toBeGreaterThan(10);
    expect([...grants(clusterRole.rules ?? [])].sort()).toEqual([...readme.cluster].sort());
    expect([...grants(role.rules ?? [])].sort()).toEqual([...readme.namespace].sort());
  });

  it('grants exactly what config/rbac grants (the images-only, KubeVirt and leader-label rules)', () => {
    const cluster = grants(clusterRole.rules ?? []);
    const namespaced = grants(role.rules ?? []);
    const config = { cluster: new Set<string>(), namespaced: new Set<string>() };
    for (const file of readdirSync(join(ROOT, 'config', 'rbac'))) {
      for (const object of parseAllDocuments(read(ROOT, 'config', 'rbac', file)).map((d) => d.toJS() as K8sObject)) {
        if (object.kind === 'ClusterRole') for (const g of grants(object.rules ?? [])) config.cluster.add(g);
        if (object.kind === 'Role') for (const g of grants(object.rules ?? [])) config.namespaced.add(g);
      }
    }
    expect([...cluster].sort()).toEqual([...config.cluster].sort());
    expect([...namespaced].sort()).toEqual([...config.namespaced].sort());
    // Nothing broader than needed: no wildcards; pods cluster-wide only read (what Kubernetes' own
    // view role grants: the KubeVirt driver watches migration target pods), never written; no
    // secrets beyond list/watch.
    for (const g of [...cluster, ...namespaced]) expect(g).not.toContain('*');
    expect([...cluster].filter((g) => g.startsWith('core pods ')).sort()).toEqual(['core pods list', 'core pods watch']);
    expect([...cluster].filter((g) => g.startsWith('core secrets ')).sort()).toEqual(['core secrets list', 'core secrets watch']);
  });
});

describe('charts/recontext: Deployment, Service, Secret', () => {
  const deployment = byKind(templateObjects('deployment.yaml'), 'Deployment') as unknown as {
    spec: { replicas: unknown; template: { spec: PodSpec } };
  };
  interface Container {
    command: string[];
    args: string[];
    env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
    ports: { name: string }[];
    livenessProbe: { httpGet: { path: string; port: string } };
    readinessProbe: { httpGet: { path: string; port: string } };
    volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  }
  interface PodSpec {
    containers: Container[];
    volumes: { name: string; emptyDir?: unknown; secret?: unknown }[];
  }
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0] as Container;
  const values = parse(read(CHART, 'values.yaml')) as {
    podSecurityContext: Record<string, unknown>;
    securityContext: Record<string, unknown>;
    resources: { requests?: unknown; limits?: unknown };
  };

  it('runs non-root, read-only, without privilege escalation, seccomp RuntimeDefault, with resources', () => {
    expect(values.podSecurityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(values.podSecurityContext['runAsUser']).toBeGreaterThan(0);
    expect(values.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(values.resources.requests).toBeDefined();
    expect(values.resources.limits).toBeDefined();
    const template = read(CHART, 'templates', 'deployment.yaml');
    expect(template).toContain('toYaml .Values.podSecurityContext');
    expect(template).toContain('toYaml .Values.securityContext');
    expect(template).toContain('toYaml .Values.resources');
  });

  it('probes /healthz and /readyz on the metrics port; images in an emptyDir; pod name and namespace from the downward API', () => {
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(container.ports.map((p) => p.name)).toEqual(['metrics', 'images']);
    expect(container.volumeMounts).toContainEqual({ name: 'images', mountPath: '/var/lib/recontext/images' });
    expect(container.volumeMounts).toContainEqual({ name: 'signing-key', mountPath: '/etc/recontext/signing', readOnly: true });
    expect(pod.volumes.find((v) => v.name === 'images')).toHaveProperty('emptyDir');
    expect(pod.volumes.find((v) => v.name === 'signing-key')).toHaveProperty('secret');
    const fieldOf = (name: string) => container.env.find((e) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
    expect(fieldOf('POD_NAME')).toBe('metadata.name');
    expect(fieldOf('POD_NAMESPACE')).toBe('metadata.namespace');
  });

  it('passes the image server, signing key, pod and lease flags', () => {
    expect(container.command).toEqual(['recontext']);
    expect(container.args[0]).toBe('operator');
    for (const arg of [
      '--image-dir=/var/lib/recontext/images',
      '--image-signing-key-file=/etc/recontext/signing/key',
      '--pod-name=$(POD_NAME)',
      '--pod-namespace=$(POD_NAMESPACE)',
      '--lease-namespace=$(POD_NAMESPACE)',
    ])
      expect(container.args).toContain(arg);
    const helpers = read(CHART, 'templates', '_helpers.tpl');
    expect(helpers).toContain('printf "http://%s-images.%s.svc:%d"');
  });

  it('every flag it passes is one `recontext operator` knows', () => {
    const command = operatorCommand();
    const known = new Set(command.options.map((o) => o.long).filter((l): l is string => l !== undefined));
    const flags = container.args.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0] as string);
    const template = read(CHART, 'templates', 'deployment.yaml');
    if (template.includes('--no-leader-elect')) flags.push('--no-leader-elect');
    const unknown = flags.filter((f) => !known.has(f));
    expect(unknown, 'flags recontext operator does not know').toEqual([]);
    const driverChoices = command.options.find((o) => o.long === '--driver')?.argChoices ?? [];
    const values = parse(read(CHART, 'values.yaml')) as { operator: { driver: string } };
    expect(driverChoices).toContain(values.operator.driver);
  });

  it('the image Service selects the pod labels plus recontext.dev/leader=true', () => {
    const service = byKind(templateObjects('service.yaml'), 'Service') as unknown as { spec: { selector: Record<string, string>; ports: { targetPort: string }[] } };
    expect(service.spec.selector).toEqual({ 'recontext.dev/leader': 'true' }); // plus the selector labels, rendered by the include
    expect(read(CHART, 'templates', 'service.yaml')).toMatch(/selector:\n\s+\{\{- include "recontext\.selectorLabels" \. \| nindent 4 \}\}\n\s+recontext\.dev\/leader: "true"/);
    expect(read(CHART, 'templates', 'deployment.yaml')).toMatch(/matchLabels:\n\s+\{\{- include "recontext\.selectorLabels" \. \| nindent 6 \}\}/);
    expect(service.spec.ports[0]?.targetPort).toBe('images');
  });

  it('the signing key Secret is generated with randAlphaNum and kept on upgrade with lookup', () => {
    const secret = read(CHART, 'templates', 'secret.yaml');
    expect(secret).toMatch(/randAlphaNum \d+ \| b64enc/);
    expect(secret).toMatch(/lookup "v1" "Secret" \.Release\.Namespace \$name/);
    expect(byKind(templateObjects('secret.yaml'), 'Secret')).toMatchObject({ type: 'Opaque', data: { key: 'TEMPLATED' } });
  });
});
