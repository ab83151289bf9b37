import { describe, expect, it } from 'vitest';
import type { ContextLayer, ContextLayerSpec, VMContext } from '../crds/index.js';
import { selectLayers } from './layers.js';
import { contextLayerProblems } from './checks.js';
import { hooksFile, LayerError, layerDigest, layerUsesNode, manifestFile, pathSegmentProblem, renderLayer, type SourceLookup } from './render.js';

const layer = (name: string, spec: ContextLayerSpec, labels?: Record<string, string>): ContextLayer => ({
  apiVersion: 'recontext.dev/v1alpha1',
  kind: 'ContextLayer',
  metadata: { name, namespace: 'ns', ...(labels ? { labels } : {}) },
  spec,
});
const vm = { name: 'vm1', namespace: 'ns', labels: { app: 'web' } };
const nodeA = { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'zone-a' } };
const nodeB = { name: 'node-b', labels: { 'topology.kubernetes.io/zone': 'zone-b' } };
const noSources: SourceLookup = { configMap: () => undefined, secret: () => undefined };
const sources: SourceLookup = {
  configMap: (name) => (name === 'cm' ? { 'a.conf': Buffer.from('from-cm'), 'b.conf': Buffer.from('b') } : undefined),
  secret: (name) => (name === 's' ? { token: Buffer.from('s3cr3t-value') } : undefined),
};

const cache = layer('cache', {
  class: 'infrastructure',
  variants: [
    { name: 'a', nodeSelector: { 'topology.kubernetes.io/zone': 'zone-a' }, values: { host: 'cache-a' } },
    { name: 'b', nodeSelector: { 'topology.kubernetes.io/zone': 'zone-b' }, values: { host: 'cache-b' } },
  ],
  values: { host: 'cache-default' },
  files: [{ path: 'etc/cache.conf', template: true, content: 'host={{ values.host }}\n' }],
});

describe('renderLayer', () => {
  it('renders variants per node and names content by digest', () => {
    const a = renderLayer(cache, { vm, node: nodeA, sources: noSources });
    const b = renderLayer(cache, { vm, node: nodeB, sources: noSources });
    expect(a.files[0]!.content.toString()).toBe('host=cache-a\n');
    expect(b.files[0]!.content.toString()).toBe('host=cache-b\n');
    expect(a.variant).toBe('a');
    expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(a.digest).not.toBe(b.digest);
    expect(renderLayer(cache, { vm, node: nodeA, sources: noSources }).digest).toBe(a.digest);
    expect(a.nodeDependent).toBe(true);
  });

  it('falls back to spec.values on a node no variant matches', () => {
    const other = renderLayer(cache, { vm, node: { name: 'n', labels: {} }, sources: noSources });
    expect(other.files[0]!.content.toString()).toBe('host=cache-default\n');
    expect(other.variant).toBeUndefined();
  });

  it('gives a shared layer the same digest for every VM and node', () => {
    const shared = layer('svc', { class: 'service', files: [{ path: 'a', content: 'x' }] });
    const one = renderLayer(shared, { vm, node: nodeA, sources: noSources });
    const two = renderLayer(shared, { vm: { ...vm, name: 'vm2' }, node: nodeB, sources: noSources });
    expect(one.digest).toBe(two.digest);
    expect(one.nodeDependent).toBe(false);
    expect(layerUsesNode(shared)).toBe(false);
    expect(layerUsesNode(cache)).toBe(true);
  });

  it('changes the digest with content, mode, priority and name', () => {
    const base = renderLayer(layer('l', { class: 'service', files: [{ path: 'a', content: 'x' }] }), { vm, sources: noSources }).digest;
    const variants = [
      layer('l', { class: 'service', files: [{ path: 'a', content: 'y' }] }),
      layer('l', { class: 'service', files: [{ path: 'a', content: 'x', mode: 0o600 }] }),
      layer('l', { class: 'service', priority: 5, files: [{ path: 'a', content: 'x' }] }),
      layer('m', { class: 'service', files: [{ path: 'a', content: 'x' }] }),
      layer('l', { class: 'service', files: [{ path: 'b', content: 'x' }] }),
    ];
    const digests = variants.map((l) => renderLayer(l, { vm, sources: noSources }).digest);
    expect(new Set([base, ...digests]).size).toBe(6);
  });

  it('resolves ConfigMap and Secret content; secrets default to 0600 and are marked sensitive', () => {
    const rendered = renderLayer(
      layer('l', {
        class: 'service',
        files: [
          { path: 'cm', contentFrom: { configMapKeyRef: { name: 'cm', key: 'a.conf' } } },
          { path: 'tok', contentFrom: { secretKeyRef: { name: 's', key: 'token' } } },
        ],
        sources: [{ configMap: 'cm', directory: 'etc/cm' }],
      }),
      { vm, sources },
    );
    expect(rendered.files.map((f) => [f.path, f.mode.toString(8), f.sensitive])).toEqual([
      ['cm', '644', false],
      ['etc/cm/a.conf', '644', false],
      ['etc/cm/b.conf', '644', false],
      ['tok', '600', true],
    ]);
  });

  it('reports missing content with a reason, unless optional', () => {
    const missing = layer('l', { class: 'service', files: [{ path: 'a', contentFrom: { configMapKeyRef: { name: 'nope', key: 'k' } } }] });
    expect(() => renderLayer(missing, { vm, sources })).toThrow(expect.objectContaining({ reason: 'ContentNotFound', message: expect.stringContaining('ConfigMap nope not found') }));
    const optional = layer('l', { class: 'service', files: [{ path: 'a', contentFrom: { configMapKeyRef: { name: 'nope', key: 'k', optional: true } } }] });
    expect(renderLayer(optional, { vm, sources }).files).toHaveLength(0);
    const missingKey = layer('l', { class: 'service', files: [{ path: 'a', contentFrom: { secretKeyRef: { name: 's', key: 'other' } } }] });
    expect(() => renderLayer(missingKey, { vm, sources })).toThrow(/Secret s has no key other/);
  });

  it('never puts secret content into error messages', () => {
    const templated = layer('l', { class: 'service', files: [{ path: 'a', template: true, contentFrom: { secretKeyRef: { name: 's', key: 'token' } } }] });
    // The secret is not a template with errors here, but a source path clash must not echo it either.
    const clash = layer('l', { class: 'service', files: [{ path: 'token', content: 'x' }], sources: [{ secret: 's' }] });
    for (const l of [clash]) {
      try {
        renderLayer(l, { vm, sources });
        expect.unreachable();
      } catch (error: unknown) {
        expect(String(error)).not.toContain('s3cr3t-value');
      }
    }
    expect(renderLayer(templated, { vm, sources }).files[0]!.content.toString()).toBe('s3cr3t-value');
  });

  it('rejects file/directory clashes and duplicate paths from sources', () => {
    const clash = layer('l', { class: 'service', files: [{ path: 'etc', content: 'x' }], sources: [{ configMap: 'cm', directory: 'etc' }] });
    expect(() => renderLayer(clash, { vm, sources })).toThrow(expect.objectContaining({ reason: 'PathConflict' }));
    const dup = layer('l', { class: 'service', files: [{ path: 'a.conf', content: 'x' }], sources: [{ configMap: 'cm' }] });
    expect(() => renderLayer(dup, { vm, sources })).toThrow(/writes a.conf/);
  });

  it('needs the node for node-dependent layers', () => {
    expect(() => renderLayer(cache, { vm, sources: noSources })).toThrow(expect.objectContaining({ reason: 'NodeUnknown' }));
    const usesNode = layer('l', { class: 'infrastructure', files: [{ path: 'a', template: true, content: '{{ node.name }}' }] });
    expect(() => renderLayer(usesNode, { vm, sources: noSources })).toThrow(LayerError);
  });

  it('enforces the layer size limit', () => {
    const big = layer('l', { class: 'service', files: [{ path: 'a', content: 'x'.repeat(2000) }] });
    expect(() => renderLayer(big, { vm, sources: noSources, maxLayerBytes: 1000 })).toThrow(expect.objectContaining({ reason: 'TooLarge' }));
  });

  it("carries the layer's hooks for the guest in the image and in the digest; no hooks, no change", () => {
    const plain = renderLayer(layer('svc', { class: 'service', files: [{ path: 'etc/a.conf', content: 'x' }] }), { vm, sources: noSources });
    expect(plain.hooks).toBeUndefined();
    expect(hooksFile(plain)).toBeUndefined();
    expect(plain.digest).toBe(layerDigest('svc', 'service', 100, plain.files));
    const hooks = [{ name: 'reload', paths: ['etc/'], signal: { name: 'HUP' as const, pidfile: '/run/app.pid' } }];
    const hooked = renderLayer(layer('svc', { class: 'service', files: [{ path: 'etc/a.conf', content: 'x' }], hooks }), { vm, sources: noSources });
    expect(hooked.digest).not.toBe(plain.digest);
    expect(hooksFile(hooked)).toMatchObject({ path: '.recontext/hooks.json', mode: 0o444 });
    expect(JSON.parse(hooked.hooks!.toString('utf8'))).toEqual({ hooks });
    // As the API server returns it: defaults filled in, keys in another order — same bytes.
    const defaulted = [{ disabled: false, appendPaths: false, signal: { pidfile: '/run/app.pid', name: 'HUP' as const }, paths: ['etc/'], name: 'reload' }];
    expect(renderLayer(layer('svc', { class: 'service', files: [{ path: 'etc/a.conf', content: 'x' }], hooks: defaulted }), { vm, sources: noSources }).digest).toBe(hooked.digest);
  });

  it('writes a manifest naming the layer for the guest', () => {
    const rendered = renderLayer(cache, { vm, node: nodeA, sources: noSources });
    const manifest = JSON.parse(manifestFile(rendered).content.toString());
    expect(manifest).toEqual({ apiVersion: 'recontext.dev/v1alpha1', kind: 'LayerImage', layer: 'cache', class: 'infrastructure', priority: 300, digest: rendered.digest, files: 1 });
  });
});

describe('path segments an image can hold', () => {
  it('InvalidPath for a segment over 255 UTF-8 bytes, though under 256 characters (the API server counts characters)', () => {
    for (const path of ['\u{1F600}'.repeat(100), `etc/${'é'.repeat(200)}`, `${'ab'.repeat(127)}é`]) {
      expect(() => renderLayer(layer('l', { class: 'service', files: [{ path, content: 'x' }] }), { vm, sources: noSources })).toThrow(expect.objectContaining({ reason: 'InvalidPath' }));
    }
    expect(renderLayer(layer('l', { class: 'service', files: [{ path: 'x'.repeat(255), content: 'x' }] }), { vm, sources: noSources }).files).toHaveLength(1);
    expect(pathSegmentProblem('a/\ud800b')).toMatch(/lone surrogate/);
    expect(pathSegmentProblem(`a/${'é'.repeat(127)}`)).toBeUndefined();
  });

  it('is reported by the semantic checks too (validate, the ContextLayer Invalid condition)', () => {
    const problems = contextLayerProblems({ class: 'service', files: [{ path: '\u{1F600}'.repeat(64), content: 'x' }], sources: [{ configMap: 'cm', directory: 'é'.repeat(128) }] });
    expect(problems.map((p) => p.path.join('.'))).toEqual(['spec.files.0.path', 'spec.sources.0.directory']);
    expect(problems[0]!.message).toMatch(/256 bytes in UTF-8; at most 255/);
  });
});

describe('selectLayers', () => {
  const vmContext = (spec: Partial<VMContext['spec']>, labels?: Record<string, string>): VMContext => ({
    apiVersion: 'recontext.dev/v1alpha1',
    kind: 'VMContext',
    metadata: { name: 'ctx', namespace: 'ns', ...(labels ? { labels } : {}) },
    spec: { target: { kubevirt: { name: 'vm1' } }, ...spec },
  });
  const svc = layer('svc', { class: 'service', files: [{ path: 'a', content: 'x' }] }, { role: 'base' });
  const legal = layer('legal', { class: 'legislative', files: [{ path: 'a', content: 'x' }] });
  const broker = layer('broker', { class: 'broker', vmSelector: { matchLabels: { app: 'web' } }, files: [{ path: 'a', content: 'x' }] });
  const tie = layer('a-tie', { class: 'service', files: [{ path: 'a', content: 'x' }] });
  const elsewhere: ContextLayer = { ...legal, metadata: { name: 'legal2', namespace: 'other' } };

  it('takes layers by name, by layerSelector and by their vmSelector, highest priority first, ties by name', () => {
    const selection = selectLayers(vmContext({ layers: [{ name: 'legal' }, { name: 'a-tie' }], layerSelector: { matchLabels: { role: 'base' } } }, { app: 'web' }), [svc, legal, broker, tie, elsewhere]);
    expect(selection.layers.map((l) => l.metadata.name)).toEqual(['legal', 'broker', 'a-tie', 'svc']);
    expect(selection.missing).toEqual([]);
  });

  it('never crosses namespaces and reports missing references', () => {
    const selection = selectLayers(vmContext({ layers: [{ name: 'legal2' }] }), [elsewhere]);
    expect(selection.layers).toEqual([]);
    expect(selection.missing).toEqual(['legal2']);
  });
});
