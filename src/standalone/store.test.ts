import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CONTEXT_LAYERS, VM_CONTEXTS } from '../kube/resources.js';
import { DirectoryStore } from './store.js';

const layer = (name: string, content: string) => `apiVersion: recontext.dev/v1alpha1
kind: ContextLayer
metadata:
  name: ${name}
spec:
  class: service
  files:
    - path: etc/${name}.conf
      content: "${content}"
`;
const vmContext = (name: string, layers: string[]) => `apiVersion: recontext.dev/v1alpha1
kind: VMContext
metadata:
  name: ${name}
spec:
  target:
    libvirt:
      domain: ${name}
  layers:
${layers.map((l) => `    - name: ${l}`).join('\n')}
`;

describe('DirectoryStore', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  function setup() {
    const dir = mkdtempSync(join(tmpdir(), 'store-dir-'));
    const state = mkdtempSync(join(tmpdir(), 'store-state-'));
    dirs.push(dir, state);
    return { dir, state, open: () => new DirectoryStore({ directory: dir, stateDirectory: state, exclude: [join(dir, 'hosts.yaml')] }) };
  }

  it('reads objects, reports only what changed, and bumps generation on spec changes', () => {
    const { dir, open } = setup();
    writeFileSync(join(dir, 'a.yaml'), `${layer('one', 'x')}---\n${vmContext('vm1', ['one'])}`);
    writeFileSync(join(dir, 'hosts.yaml'), 'hosts: []\n');
    const store = open();
    const first = store.sync();
    expect(first.problems).toEqual([]);
    expect(first.changes.map((c) => c.kind)).toEqual(['ContextLayer', 'VMContext']);
    expect(store.vmContexts.get('default/vm1')?.metadata.generation).toBe(1);
    expect(store.sync().changes).toEqual([]);
    writeFileSync(join(dir, 'a.yaml'), `${layer('one', 'y')}---\n${vmContext('vm1', ['one'])}`);
    const second = store.sync();
    expect(second.changes.map((c) => c.kind)).toEqual(['ContextLayer']);
    expect(store.layers.get('default/one')?.metadata.generation).toBe(2);
  });

  it('reports ConfigMap and Secret changes by name only', () => {
    const { dir, open } = setup();
    const cm = (v: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  k: ${v}\n`;
    writeFileSync(join(dir, 'cm.yaml'), cm('1'));
    const store = open();
    expect(store.sync().changes).toEqual([{ kind: 'ConfigMap', namespace: 'default', name: 'cm' }]);
    expect(store.sources('default').configMap('cm')?.['k']?.toString()).toBe('1');
    writeFileSync(join(dir, 'cm.yaml'), cm('2'));
    expect(store.sync().changes).toEqual([{ kind: 'ConfigMap', namespace: 'default', name: 'cm' }]);
    expect(store.sync().changes).toEqual([]);
  });

  it('keeps the last good version of an object whose manifest became invalid or unparsable, and says where', () => {
    const { dir, open } = setup();
    writeFileSync(join(dir, 'l.yaml'), layer('one', 'x'));
    const store = open();
    store.sync();
    writeFileSync(join(dir, 'l.yaml'), layer('one', 'x').replace('class: service', 'class: nonsense'));
    const invalid = store.sync();
    expect(invalid.changes).toEqual([]);
    expect(invalid.problems.join('\n')).toMatch(/l\.yaml:\d+: spec\.class/);
    expect(store.layers.get('default/one')?.spec.class).toBe('service');
    writeFileSync(join(dir, 'l.yaml'), 'kind: [unclosed\n');
    const broken = store.sync();
    expect(broken.problems.length).toBeGreaterThan(0);
    expect(broken.changes).toEqual([]);
    expect(store.layers.get('default/one')).toBeDefined();
  });

  it('persists status and finalizers; a restart restores them; a removed VMContext with a finalizer is marked, then forgotten', async () => {
    const { dir, state, open } = setup();
    writeFileSync(join(dir, 'a.yaml'), `${layer('one', 'x')}---\n${vmContext('vm1', ['one'])}`);
    let store = open();
    store.sync();
    const vm = store.vmContexts.get('default/vm1')!;
    await store.writer.setFinalizers(VM_CONTEXTS, vm, ['recontext.dev/release-devices']);
    expect(await store.writer.applyStatus(VM_CONTEXTS, store.vmContexts.get('default/vm1')!, { node: 'host-a' })).toBe(true);
    expect(await store.writer.applyStatus(VM_CONTEXTS, store.vmContexts.get('default/vm1')!, { node: 'host-a' })).toBe(false);
    expect(await store.writer.applyStatus(CONTEXT_LAYERS, store.layers.get('default/one')!, { renderedFor: 1 })).toBe(true);
    const file = join(state, 'objects', 'vmcontexts', 'default', 'vm1.json');
    expect(JSON.parse(readFileSync(file, 'utf8')).status).toEqual({ node: 'host-a' });

    // The operator restarts after the VMContext was removed from the directory.
    writeFileSync(join(dir, 'a.yaml'), layer('one', 'x'));
    store = open();
    expect(store.vmContexts.get('default/vm1')?.status).toEqual({ node: 'host-a' });
    const changes = store.sync().changes;
    expect(changes).toHaveLength(1);
    const marked = store.vmContexts.get('default/vm1')!;
    expect(marked.metadata.deletionTimestamp).toBeDefined();
    await store.writer.setFinalizers(VM_CONTEXTS, marked, []);
    expect(store.vmContexts.get('default/vm1')).toBeUndefined();
    expect(existsSync(file)).toBe(false);
  });

  it('forgets a removed object without finalizers at once', () => {
    const { dir, open } = setup();
    writeFileSync(join(dir, 'l.yaml'), layer('one', 'x'));
    const store = open();
    store.sync();
    rmSync(join(dir, 'l.yaml'));
    const { changes } = store.sync();
    expect(changes.map((c) => c.kind)).toEqual(['ContextLayer']);
    expect(store.layers.list()).toEqual([]);
  });
});
