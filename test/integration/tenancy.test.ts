// Multi-tenancy: a VMContext gets layers, ConfigMaps and Secrets of its own namespace only. With a
// real `recontext operator` process watching all namespaces of a control plane of its own,
// tenant-a tries every way across to tenant-b: a layer by name, a layerSelector matching
// tenant-b's layers, contentFrom/sources naming tenant-b's ConfigMap and Secret (plain names,
// namespaced spellings, traversal), a same-named Secret in both, templates reaching for other
// namespaces or secrets, a target VM that exists only in tenant-b; and tenant-b reaches back with
// a layer whose vmSelector matches tenant-a's VMContext (and an empty one matching everything)
// and a MigrationPolicy whose vmSelector does. Nothing of tenant-b reaches tenant-a's images or
// status digests (checked against the renderer and the image files in the operator's store), the
// conditions say LayerNotFound / ContentNotFound / TemplateError / VMNotFound, spellings with a
// namespace are rejected by the schema, and no Secret value is in any log line, event or status.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ContextLayer, VMContext } from '../../src/crds/index.js';
import { ApiError, KubeClient } from '../../src/kube/client.js';
import { selectLayers } from '../../src/reconcile/layers.js';
import { renderLayer, type SourceLookup } from '../../src/reconcile/render.js';
import { controlPlaneSkipReason, startExclusiveControlPlane, type ControlPlane } from '../controlplane/shared.js';
import { startOperatorProcess, type OperatorProcess } from '../support/operator-process.js';
import { REPO, nodeYaml, strict, until, ZONE_A } from './scenario.js';

const A = 'tenant-a';
const B = 'tenant-b';
const tag = randomBytes(4).toString('hex');
const SECRETS = { a: `tenant-a-secret-${tag}`, aShared: `tenant-a-shared-${tag}`, b: `tenant-b-secret-${tag}`, bShared: `tenant-b-shared-${tag}` };
/** Everything of tenant-b that must never show up in tenant-a's images or status. */
const B_MARKERS = [SECRETS.b, SECRETS.bShared, `tenant-b-config-${tag}`, `tenant-b-layer-${tag}`];
const API = (ns: string) => `/apis/recontext.dev/v1alpha1/namespaces/${ns}`;

const layer = (ns: string, name: string, spec: object, labels?: Record<string, string>) => ({ apiVersion: 'recontext.dev/v1alpha1', kind: 'ContextLayer', metadata: { name, namespace: ns, ...(labels ? { labels } : {}) }, spec });
const vmContext = (ns: string, name: string, spec: object, labels: Record<string, string> = { app: 'victim' }) => ({ apiVersion: 'recontext.dev/v1alpha1', kind: 'VMContext', metadata: { name, namespace: ns, labels }, spec });
const kubevirt = (name: string) => ({ kubevirt: { name } });
const file = (path: string, content: string) => ({ path, content });

/** A layer of tenant-a that tries to read tenant-b, and the VMContext that makes the operator render it. */
const stealing = (name: string, spec: object) => [layer(A, name, { class: 'service', ...spec }), vmContext(A, `${name}-vm`, { target: kubevirt('a-vm'), layers: [{ name }] }, { app: `${name}` })];

const TENANT_B = [
  { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'b-secret', namespace: B }, stringData: { token: SECRETS.b } },
  { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'shared-name', namespace: B }, stringData: { token: SECRETS.bShared } },
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b-config', namespace: B }, data: { 'b.conf': `tenant-b-config-${tag}\n` } },
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared-name', namespace: B }, data: { 'b.conf': `tenant-b-config-${tag}\n` } },
  // Reaches for tenant-a's VMContext by its labels, and for every VM with an empty selector.
  layer(B, 'b-only', { class: 'legislative', vmSelector: { matchLabels: { app: 'victim' } }, files: [file('etc/b', `tenant-b-layer-${tag}\n`), { path: 'etc/b-token', contentFrom: { secretKeyRef: { name: 'b-secret', key: 'token' } } }], sources: [{ configMap: 'b-config', directory: 'b' }] }, { tier: 'shared' }),
  layer(B, 'b-grabber', { class: 'broker', vmSelector: {}, files: [file('etc/grab', `tenant-b-layer-${tag}\n`)] }, { tier: 'shared' }),
  vmContext(B, 'b-vm', { target: kubevirt('b-vm') }),
  {
    apiVersion: 'recontext.dev/v1alpha1',
    kind: 'MigrationPolicy',
    metadata: { name: 'b-policy', namespace: B },
    spec: { type: 'Threshold', dryRun: true, vmSelector: { matchLabels: { app: 'victim' } }, metric: { reported: { key: 'load' } }, sampleInterval: '1s', high: 0.5, highFor: 1, arrays: [{ name: 'zone-a', nodeSelector: { 'topology.kubernetes.io/zone': 'zone-a' }, cost: 1 }, { name: 'zone-b', nodeSelector: { 'topology.kubernetes.io/zone': 'zone-b' }, cost: 1 }], cooldown: '1s' },
  },
];

const TENANT_A = [
  { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'a-secret', namespace: A }, stringData: { token: SECRETS.a } },
  { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'shared-name', namespace: A }, stringData: { token: SECRETS.aShared } },
  layer(A, 'a-own', {
    class: 'service',
    files: [
      file('etc/a', 'tenant-a\n'),
      { path: 'etc/ns', template: true, content: 'namespace = {{ vm.namespace }}\n' },
      { path: 'etc/token', contentFrom: { secretKeyRef: { name: 'a-secret', key: 'token' } } },
      // Same name in both namespaces: the own namespace's value, always.
      { path: 'etc/shared-token', contentFrom: { secretKeyRef: { name: 'shared-name', key: 'token' } } },
      { path: 'etc/shared-conf', contentFrom: { configMapKeyRef: { name: 'shared-name', key: 'b.conf', optional: true } } },
    ],
  }),
  // layerSelector matches tenant-b's layers' labels; b-only's and b-grabber's vmSelectors match it.
  vmContext(A, 'a-vm', { target: kubevirt('a-vm'), layers: [{ name: 'a-own' }], layerSelector: { matchLabels: { tier: 'shared' } } }),
  vmContext(A, 'a-by-name', { target: kubevirt('a-vm'), layers: [{ name: 'b-only' }] }, { app: 'by-name' }),
  vmContext(A, 'a-cross-vm', { target: kubevirt('b-vm'), layers: [{ name: 'a-own' }] }, { app: 'cross-vm' }),
  ...stealing('steal-secret', { files: [{ path: 'x', contentFrom: { secretKeyRef: { name: 'b-secret', key: 'token' } } }] }),
  ...stealing('steal-configmap', { files: [{ path: 'x', contentFrom: { configMapKeyRef: { name: 'b-config', key: 'b.conf' } } }] }),
  ...stealing('steal-sources-secret', { sources: [{ secret: 'b-secret' }] }),
  ...stealing('steal-sources-configmap', { sources: [{ configMap: 'b-config' }] }),
  // A DNS subdomain that spells "namespace.name": valid as a name, and names nothing here.
  ...stealing('steal-dotted', { files: [{ path: 'x', contentFrom: { secretKeyRef: { name: 'tenant-b.b-secret', key: 'token' } } }] }),
  ...stealing('steal-template-values', { files: [{ path: 'x', template: true, content: '{{ values["tenant-b"] }}' }] }),
  ...stealing('steal-template-secrets', { files: [{ path: 'x', template: true, content: '{{ secrets.b-secret.token }}' }] }),
];

/** Objects the schema must refuse: a namespace spelled into a name, traversal. */
const REFUSED: { what: string; ns: string; object: object; message: RegExp }[] = [
  ...['tenant-b/b-secret', '../tenant-b/b-secret', '/tenant-b/b-secret', 'tenant-b:b-secret'].flatMap((name) => [
    { what: `secretKeyRef ${name}`, ns: A, object: layer(A, 'refused', { class: 'service', files: [{ path: 'x', contentFrom: { secretKeyRef: { name, key: 'token' } } }] }), message: /secretKeyRef\.name/ },
    { what: `configMapKeyRef ${name}`, ns: A, object: layer(A, 'refused', { class: 'service', files: [{ path: 'x', contentFrom: { configMapKeyRef: { name, key: 'b.conf' } } }] }), message: /configMapKeyRef\.name/ },
    { what: `sources.secret ${name}`, ns: A, object: layer(A, 'refused', { class: 'service', sources: [{ secret: name }] }), message: /sources\[0\]\.secret/ },
    { what: `layers[].name ${name}`, ns: A, object: vmContext(A, 'refused', { target: kubevirt('a-vm'), layers: [{ name }] }), message: /layers\[0\]\.name/ },
    { what: `target.kubevirt.name ${name}`, ns: A, object: vmContext(A, 'refused', { target: kubevirt(name) }), message: /target\.kubevirt\.name/ },
  ]),
  { what: 'a key with a slash', ns: A, object: layer(A, 'refused', { class: 'service', files: [{ path: 'x', contentFrom: { secretKeyRef: { name: 'b-secret', key: '../tenant-b/token' } } }] }), message: /key/ },
  { what: 'namespace: field naming tenant-b', ns: A, object: layer(A, 'refused', { class: 'service', files: [{ path: 'x', contentFrom: { secretKeyRef: { name: 'b-secret', key: 'token', namespace: B } } }] }), message: /unknown field "spec\.files\[0\]\.contentFrom\.secretKeyRef\.namespace"/ },
  { what: 'an object for tenant-b posted to tenant-a', ns: A, object: layer(B, 'refused', { class: 'service', files: [file('x', 'y')] }), message: /namespace/ },
];

type Conditioned = { metadata: { name: string }; status?: { renderedFor?: number; conditions?: { type: string; status: string; reason: string; message: string }[]; decisions?: { vm: string }[] } };
const ready = (o: Conditioned) => o.status?.conditions?.find((c) => c.type === 'Ready');

describe.skipIf(controlPlaneSkipReason())('multi-tenancy: a VMContext only reaches its own namespace', () => {
  let cp: ControlPlane | undefined;
  let operator: OperatorProcess | undefined;
  const imageDir = mkdtempSync(join(tmpdir(), 'tenancy-images-'));
  afterAll(async () => {
    operator?.kill('SIGTERM');
    await operator?.exited;
    await cp?.stop();
    rmSync(imageDir, { recursive: true, force: true });
  });

  it('tenant-a gets nothing of tenant-b however it asks, and tenant-b cannot push into tenant-a', async () => {
    cp = await startExclusiveControlPlane();
    const kubectl = strict(cp.kubectl.bind(cp));
    const crds = ['contextlayers', 'vmcontexts', 'migrationpolicies'].map((p) => `crd/${p}.recontext.dev`);
    await kubectl(['apply', '--server-side', '-f', join(REPO, 'config', 'crd'), '-f', join(REPO, 'test', 'fixtures', 'kubevirt', 'vmi-crd.yaml')]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...crds, 'crd/virtualmachineinstances.kubevirt.io']);
    await kubectl(['create', 'namespace', A]);
    await kubectl(['create', 'namespace', B]);
    await kubectl(['apply', '-f', '-'], nodeYaml('node-a', ZONE_A));
    // The VMIs: a-vm runs in tenant-a, b-vm in tenant-b only.
    for (const [ns, name] of [[A, 'a-vm'], [B, 'b-vm']] as const) {
      await kubectl(['apply', '-n', ns, '-f', '-'], `apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata:\n  name: ${name}\nspec: {}\n`);
      await kubectl(['patch', '-n', ns, 'vmi', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', nodeName: 'node-a' } })]);
    }
    await kubectl(['apply', '--server-side', '-f', '-'], [...TENANT_B, ...TENANT_A].map((o) => JSON.stringify(o)).join('\n---\n'));
    const client = KubeClient.fromKubeconfig(cp.kubeconfigPath);

    // The schema refuses every spelling of another namespace, with a message.
    for (const r of REFUSED) {
      const kind = (r.object as { kind: string }).kind === 'VMContext' ? 'vmcontexts' : 'contextlayers';
      const error = await client.create(`${API(r.ns)}/${kind}?fieldValidation=Strict`, r.object).then(() => undefined, (e: unknown) => e);
      expect(error, r.what).toBeInstanceOf(ApiError);
      expect((error as ApiError).status, r.what).toBeGreaterThanOrEqual(400);
      expect((error as ApiError).status, r.what).toBeLessThan(500);
      expect((error as ApiError).message, r.what).toMatch(r.message);
    }

    operator = await startOperatorProcess(['--kubeconfig', cp.kubeconfigPath, '--driver', 'none', '--no-leader-elect', '--accept-reports', '--image-dir', imageDir, '--log-level', 'debug']);
    await until('the operator serves', async () => ((await operator!.healthy()) ? true : undefined), 30_000);
    // Load far over the policy's threshold for both VMs: tenant-b's policy may decide for b-vm only.
    const metricsUrl = `http://127.0.0.1:${operator.port}/v1/reports`;
    const report = () => fetch(metricsUrl, { method: 'POST', body: JSON.stringify([{ namespace: A, name: 'a-vm', key: 'load', value: 9 }, { namespace: B, name: 'b-vm', key: 'load', value: 9 }]) });

    const get = (ns: string, plural: string, name: string) => client.get<Conditioned & VMContext>(`${API(ns)}/${plural}/${name}`);
    const reasonOf = async (ns: string, plural: string, name: string) => ready(await get(ns, plural, name))?.reason;
    const expectations: [string, string, string, string][] = [
      [A, 'vmcontexts', 'a-vm', 'ImagesReady'],
      [B, 'vmcontexts', 'b-vm', 'ImagesReady'],
      [A, 'vmcontexts', 'a-by-name', 'LayerNotFound'],
      [A, 'vmcontexts', 'a-cross-vm', 'VMNotFound'],
      ...['steal-secret', 'steal-configmap', 'steal-sources-secret', 'steal-sources-configmap', 'steal-dotted'].flatMap((n): [string, string, string, string][] => [
        [A, 'contextlayers', n, 'ContentNotFound'],
        [A, 'vmcontexts', `${n}-vm`, 'ContentNotFound'],
      ]),
      [A, 'vmcontexts', 'steal-template-values-vm', 'TemplateError'],
      [A, 'vmcontexts', 'steal-template-secrets-vm', 'TemplateError'],
      [A, 'contextlayers', 'steal-template-secrets', 'InvalidSpec'],
    ];
    await until('every condition', async () => {
      await report();
      for (const [ns, plural, name, reason] of expectations) if ((await reasonOf(ns, plural, name)) !== reason) return undefined;
      return true;
    }, 45_000).catch(async (error: unknown) => {
      const actual = await Promise.all(expectations.map(async ([ns, plural, name, reason]) => `${ns}/${plural}/${name}: want ${reason}, have ${await reasonOf(ns, plural, name).catch(String)}`));
      throw new Error(`${String(error)}\n${actual.join('\n')}`);
    });
    for (const [ns, plural, name] of expectations) {
      const message = ready(await get(ns, plural, name))!.message;
      if (plural === 'vmcontexts' && name.startsWith('steal-') && !name.includes('template')) expect(message, name).toMatch(/(Secret|ConfigMap) (b-secret|b-config|tenant-b\.b-secret)( has no key \S+)? not found|not found/);
    }
    expect(ready(await get(A, 'vmcontexts', 'a-by-name'))!.message).toMatch(/ContextLayer b-only not found in namespace tenant-a/);

    // a-vm: exactly its own layer, with the digest the renderer computes from tenant-a alone.
    const aVm = await get(A, 'vmcontexts', 'a-vm');
    expect(aVm.status?.layers?.map((l) => l.name)).toEqual(['a-own']);
    const aLayers = (await client.list<ContextLayer>(`${API(A)}/contextlayers`)).items;
    const aSources: SourceLookup = {
      configMap: () => undefined, // tenant-a has no ConfigMaps
      secret: (name) => ({ 'a-secret': { token: Buffer.from(SECRETS.a) }, 'shared-name': { token: Buffer.from(SECRETS.aShared) } })[name],
    };
    const want = selectLayers(aVm, aLayers).layers.map((l) => [l.metadata.name, renderLayer(l, { vm: { name: 'a-vm', namespace: A, labels: aVm.metadata.labels ?? {} }, node: { name: 'node-a', labels: ZONE_A }, sources: aSources }).digest]);
    expect(aVm.status?.layers?.map((l) => [l.name, l.digest])).toEqual(want);
    // tenant-b's layers count tenant-b's VM only.
    for (const name of ['b-only', 'b-grabber']) expect((await get(B, 'contextlayers', name)).status?.renderedFor, name).toBe(1);
    expect((await get(B, 'vmcontexts', 'b-vm')).status?.layers?.map((l) => l.name).sort()).toEqual(['b-grabber', 'b-only']);

    // The images: tenant-a's hold nothing of tenant-b (and its own value of the same-named Secret);
    // tenant-b's own image does hold its markers, so the scan would see them.
    const image = (digest: string) => readFileSync(join(imageDir, `${digest.replace(/^sha256:/, '')}.iso`));
    const aImages = (await client.list<VMContext>(`${API(A)}/vmcontexts`)).items.flatMap((v) => (v.status?.layers ?? []).map((l) => image(l.digest)));
    expect(aImages.length).toBeGreaterThanOrEqual(1);
    for (const bytes of aImages) for (const marker of B_MARKERS) expect(bytes.includes(marker), marker).toBe(false);
    expect(image(aVm.status!.layers![0]!.digest).includes(SECRETS.aShared)).toBe(true);
    expect(image(aVm.status!.layers![0]!.digest).includes('namespace = tenant-a')).toBe(true);
    const bImages = ((await get(B, 'vmcontexts', 'b-vm')).status?.layers ?? []).map((l) => image(l.digest));
    expect(bImages.some((b) => b.includes(SECRETS.b))).toBe(true);

    // tenant-b's MigrationPolicy decides for b-vm, never for tenant-a's VM with the same labels.
    const policy = await until('the policy decides', async () => {
      await report();
      const p = await get(B, 'migrationpolicies', 'b-policy');
      return (p.status?.decisions ?? []).length > 0 ? p : undefined;
    }, 30_000);
    expect(new Set(policy.status?.decisions?.map((d) => d.vm))).toEqual(new Set(['b-vm']));

    // No Secret value (nor its base64) in any log line, event or status, in either namespace.
    const values = Object.values(SECRETS).flatMap((s) => [s, Buffer.from(s).toString('base64')]);
    const events = JSON.stringify((await client.list<object>('/api/v1/events')).items);
    const statuses = JSON.stringify(
      await Promise.all([A, B].flatMap((ns) => ['contextlayers', 'vmcontexts', 'migrationpolicies'].map(async (p) => (await client.list<{ status?: object }>(`${API(ns)}/${p}`)).items.map((o) => o.status)))),
    );
    expect(operator.lines.some((l) => l.includes('"key":"tenant-a/a-vm"'))).toBe(true); // the log is captured
    for (const value of values) {
      expect(operator.lines.filter((l) => l.includes(value)), 'log').toEqual([]);
      expect(events.includes(value), 'events').toBe(false);
      expect(statuses.includes(value), 'status').toBe(false);
    }
    // …and nothing of tenant-b in tenant-a's statuses or events.
    const aStatuses = JSON.stringify((await client.list<{ status?: object }>(`${API(A)}/vmcontexts`)).items.map((o) => o.status));
    const aEvents = JSON.stringify((await client.list<object>(`/api/v1/namespaces/${A}/events`)).items);
    for (const marker of B_MARKERS) {
      expect(aStatuses.includes(marker), marker).toBe(false);
      expect(aEvents.includes(marker), marker).toBe(false);
    }
    expect(operator.gone()).toBe(false);
  }, 120_000);
});
