// `recontext render` on the examples, with the images read back by an independent ISO reader
// (isoinfo from genisoimage, Rock Ridge names) rather than by our own code; and what a new user
// reads: the merged tree (--print), its files (--unpack), variants, unselected layers, namespaces.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { runCli } from '../support/cli-in-process.js';
import { formatRenderTable, renderVM, type RenderRow } from '../../src/cli/render.js';
import { hasCommand } from '../setup/system-packages.js';
import { skipReason } from '../support/skip.js';

const gluster = join(import.meta.dirname, '..', '..', 'examples', 'gluster');
const zoneA = 'topology.kubernetes.io/zone=zone-a,topology.kubernetes.io/region=eu-north';
const zoneB = 'topology.kubernetes.io/zone=zone-b,topology.kubernetes.io/region=us-east';
const skip = skipReason('recontext render (read back with isoinfo)', hasCommand('isoinfo') ? undefined : inject('missingTools').join('; ') || 'isoinfo is not installed', 'the vitest global setup installs genisoimage with apt-get as root');

function readFromImage(image: string, path: string): string {
  return execFileSync('isoinfo', ['-R', '-i', image, '-x', `/${path}`], { encoding: 'utf8' });
}

function listImage(image: string): string[] {
  // isoinfo -f lists every path; -R gives the Rock Ridge (real) names.
  return execFileSync('isoinfo', ['-R', '-f', '-i', image], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
}

const byName = (rows: readonly RenderRow[], name: string) => rows.find((r) => r.layer.name === name)!;

const run = runCli;

describe.skipIf(skip)('recontext render', () => {
  it('renders one image per layer that an independent reader sees exactly', async () => {
    const out = mkdtempSync(join(tmpdir(), 'render-a-'));
    const { rows } = await renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', node: 'node-a', nodeLabels: zoneA, out });
    expect(rows.map((r) => r.layer.name)).toEqual(['data-residency', 'site-cache', 'broker-endpoints', 'gluster-service']);
    expect(readdirSync(out).sort()).toEqual(rows.map((r) => `${r.layer.digest.slice(7)}.iso`).sort());
    for (const row of rows) {
      const expected = [...row.layer.files.map((f) => `/${f.path}`), '/.recontext/manifest.json'];
      expect(listImage(row.image!).filter((p) => expected.includes(p)).sort()).toEqual(expected.sort());
      for (const file of row.layer.files) expect(readFromImage(row.image!, file.path)).toBe(file.content.toString('utf8'));
      expect(JSON.parse(readFromImage(row.image!, '.recontext/manifest.json'))).toMatchObject({ layer: row.layer.name, digest: row.layer.digest });
    }
    expect(readFromImage(byName(rows, 'site-cache').image!, 'etc/glusterfs/cache.conf')).toContain('cache-server = cache-a.zone-a.example.net');
  });

  it('re-renders only the node-dependent layers for another zone', async () => {
    const a = (await renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', node: 'node-a', nodeLabels: zoneA })).rows;
    const b = (await renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', node: 'node-b', nodeLabels: zoneB })).rows;
    for (const shared of ['gluster-service', 'broker-endpoints']) expect(byName(a, shared).layer.digest).toBe(byName(b, shared).layer.digest);
    for (const local of ['site-cache', 'data-residency']) expect(byName(a, local).layer.digest).not.toBe(byName(b, local).layer.digest);
    expect(byName(b, 'site-cache').layer.files.find((f) => f.path === 'etc/glusterfs/cache.conf')!.content.toString()).toContain('cache-b.zone-b.example.net');
  });

  it('prints the table with clear variant names and keeps secrets out of it', async () => {
    const { rows } = await renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', node: 'node-a', nodeLabels: zoneA });
    const text = formatRenderTable(rows);
    expect(text.split('\n')[0]).toMatch(/^LAYER\s+CLASS\s+PRIORITY\s+FILES\s+BYTES\s+DIGEST\s+VARIANT\s+PER NODE$/);
    expect(text).toMatch(/site-cache\s+infrastructure\s+300\s+2\s+\d+\s+sha256:[0-9a-f]{12}\s+zone-a\s+yes\n/);
    expect(text).toMatch(/gluster-service\s+service\s+100\s+4\s+\d+\s+sha256:[0-9a-f]{12}\s+-\s+no\n/);
    expect(text).not.toContain('(node)');
    expect(text).not.toContain('demo-placeholder-not-a-real-key');
    // A node no variant matches: the names of the variants, and that none matched (spec.values apply).
    const site = mkdtempSync(join(tmpdir(), 'render-v-'));
    writeFileSync(
      join(site, 'site.yaml'),
      'apiVersion: recontext.dev/v1alpha1\nkind: ContextLayer\nmetadata: {name: zone}\nspec:\n  class: infrastructure\n  values: {cache: central}\n  variants:\n    - {name: zone-a, nodeSelector: {zone: a}, values: {cache: cache-a}}\n    - {name: zone-b, nodeSelector: {zone: b}, values: {cache: cache-b}}\n  files: [{path: cache, template: true, content: "{{ values.cache }}"}]\n---\napiVersion: recontext.dev/v1alpha1\nkind: VMContext\nmetadata: {name: vm}\nspec:\n  target: {kubevirt: {name: vm}}\n  layers: [{name: zone}]\n',
    );
    const other = await renderVM({ from: [site], vm: 'vm', namespace: 'default', node: 'node-c', nodeLabels: 'zone=c' });
    expect(formatRenderTable(other.rows)).toMatch(/zone\s+infrastructure\s+300\s+1\s+7\s+sha256:[0-9a-f]{12}\s+none of zone-a, zone-b matched\s+yes\n/);
  });

  it('--print without -o: the merged tree, each file from the layer that wins it, and what is hidden', async () => {
    const { code, stdout } = await run(['render', '-f', gluster, '--vm', 'gluster-client-1', '--node', 'node-a', '--node-labels', zoneA, '--print']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^PATH\s+MODE\s+BYTES\s+LAYER$/m);
    expect(stdout).toMatch(/^ {2}glusterfs\/$/m);
    expect(stdout).toMatch(/^ {4}cache\.conf\s+0644\s+\d+\s+site-cache$/m);
    expect(stdout).toMatch(/^ {4}auth\.key\s+0600\s+\d+\s+gluster-service$/m);
    expect(stdout).toContain('etc/glusterfs/cache.conf of layer gluster-service is hidden by layer site-cache');
    expect(stdout).not.toContain('demo-placeholder-not-a-real-key');
    expect(stdout).not.toContain('images in');
  });

  it('--unpack DIR: the files the guest reads, with their modes; a non-empty directory is refused before anything is written', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'render-u-')), 'view');
    const { code } = await run(['render', '-f', gluster, '--vm', 'gluster-client-1', '--node', 'node-a', '--node-labels', zoneA, '--unpack', dir]);
    expect(code).toBe(0);
    const { files } = await renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', node: 'node-a', nodeLabels: zoneA });
    expect(readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((p) => statSync(join(dir, p)).isFile()).sort()).toEqual(files.map((f) => f.path));
    expect(readFileSync(join(dir, 'etc/glusterfs/cache.conf'), 'utf8')).toContain('cache-a.zone-a.example.net');
    expect(statSync(join(dir, 'etc/glusterfs/auth.key')).mode & 0o777).toBe(0o600);
    const again = await run(['render', '-f', gluster, '--vm', 'gluster-client-1', '--node', 'node-a', '--node-labels', zoneA, '--unpack', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`--unpack ${dir}: the directory is not empty`);
  });

  it('a VM in another namespace: says which and suggests -n', async () => {
    const site = mkdtempSync(join(tmpdir(), 'render-ns-'));
    cpSync(gluster, site, { recursive: true });
    for (const file of readdirSync(site)) writeFileSync(join(site, file), readFileSync(join(site, file), 'utf8').replace(/^metadata:\n/m, 'metadata:\n  namespace: shop\n'));
    const { code, stderr } = await run(['render', '-f', site, '--vm', 'gluster-client-1', '--print']);
    expect(code).toBe(1);
    expect(stderr).toContain('no VMContext named gluster-client-1 or targeting a VM of that name in namespace default; there is one in namespace shop: add -n shop');
    expect((await run(['render', '-f', site, '--vm', 'gluster-client-1', '-n', 'shop', '--node', 'node-a', '--node-labels', zoneA, '--print'])).code).toBe(0);
  });

  it('lists the layers of the namespace the VM does not get, and why', async () => {
    const site = mkdtempSync(join(tmpdir(), 'render-sel-'));
    cpSync(gluster, site, { recursive: true });
    writeFileSync(
      join(site, 'layer-billing.yaml'),
      'apiVersion: recontext.dev/v1alpha1\nkind: ContextLayer\nmetadata: {name: billing, labels: {team: shop}}\nspec:\n  class: service\n  vmSelector: {matchLabels: {app: shop}}\n  files: [{path: etc/billing.conf, content: x}]\n',
    );
    const { code, stdout } = await run(['render', '-f', site, '--vm', 'gluster-client-1', '--node', 'node-a', '--node-labels', zoneA]);
    expect(code).toBe(0);
    expect(stdout).toContain("not selected:\n  billing: not in spec.layers; the VMContext has no layerSelector; its vmSelector app=shop does not match the VMContext's labels (app=gluster-client)");
    expect(stdout).toContain('nothing written: add -o DIR for images, --print for the merged tree, --unpack DIR for its files');
  });

  it('explains what is wrong instead of rendering', async () => {
    await expect(renderVM({ from: [gluster], vm: 'nope', namespace: 'default' })).rejects.toThrow(/no VMContext named nope .* \(it has: gluster-client-1\)/);
    await expect(renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default' })).rejects.toThrow(/node is not known/);
    await expect(renderVM({ from: [join(import.meta.dirname, '..', 'fixtures', 'invalid', 'path-traversal.yaml')], vm: 'x', namespace: 'default' })).rejects.toThrow(/not valid .*must be normalized/s);
  });
});
