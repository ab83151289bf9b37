// `recontext render` on the examples, with the images read back by an independent ISO reader
// (isoinfo from genisoimage, Rock Ridge names) rather than by our own code.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
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

describe.skipIf(skip)('recontext render', () => {
  it('renders one image per layer that an independent reader sees exactly', async () => {
    const out = mkdtempSync(join(tmpdir(), 'render-a-'));
    const rows = await renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', node: 'node-a', nodeLabels: zoneA, out });
    expect(rows.map((r) => r.layer.name)).toEqual(['data-residency', 'site-cache', 'broker-endpoints', 'gluster-service']);
    expect(readdirSync(out).sort()).toEqual(rows.map((r) => `${r.layer.digest.slice(7)}.iso`).sort());
    for (const row of rows) {
      const expected = [...row.layer.files.map((f) => `/${f.path}`), '/.recontext/manifest.json'];
      expect(listImage(row.image).filter((p) => expected.includes(p)).sort()).toEqual(expected.sort());
      for (const file of row.layer.files) expect(readFromImage(row.image, file.path)).toBe(file.content.toString('utf8'));
      expect(JSON.parse(readFromImage(row.image, '.recontext/manifest.json'))).toMatchObject({ layer: row.layer.name, digest: row.layer.digest });
    }
    expect(readFromImage(byName(rows, 'site-cache').image, 'etc/glusterfs/cache.conf')).toContain('cache-server = cache-a.zone-a.example.net');
  });

  it('re-renders only the node-dependent layers for another zone', async () => {
    const a = await renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', node: 'node-a', nodeLabels: zoneA, out: mkdtempSync(join(tmpdir(), 'render-a-')) });
    const b = await renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', node: 'node-b', nodeLabels: zoneB, out: mkdtempSync(join(tmpdir(), 'render-b-')) });
    for (const shared of ['gluster-service', 'broker-endpoints']) expect(byName(a, shared).layer.digest).toBe(byName(b, shared).layer.digest);
    for (const local of ['site-cache', 'data-residency']) expect(byName(a, local).layer.digest).not.toBe(byName(b, local).layer.digest);
    expect(readFromImage(byName(b, 'site-cache').image, 'etc/glusterfs/cache.conf')).toContain('cache-b.zone-b.example.net');
    expect(readFromImage(byName(b, 'data-residency').image, 'etc/policy/data-residency.conf')).toContain('jurisdiction = US');
  });

  it('prints the table and keeps secrets out of it', async () => {
    const rows = await renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', node: 'node-a', nodeLabels: zoneA, out: mkdtempSync(join(tmpdir(), 'render-t-')) });
    const text = formatRenderTable(rows);
    expect(text.split('\n')[0]).toMatch(/^LAYER\s+CLASS\s+PRIORITY\s+FILES\s+BYTES\s+DIGEST/);
    expect(text).toMatch(/site-cache\s+infrastructure\s+300\s+2\s+\d+\s+sha256:[0-9a-f]{12}\s+zone-a/);
    expect(text).not.toContain('demo-placeholder-not-a-real-key');
  });

  it('explains what is wrong instead of rendering', async () => {
    const out = mkdtempSync(join(tmpdir(), 'render-e-'));
    await expect(renderVM({ from: [gluster], vm: 'nope', namespace: 'default', out })).rejects.toThrow(/no VMContext named nope .* \(found: gluster-client-1\)/);
    await expect(renderVM({ from: [gluster], vm: 'gluster-client-1', namespace: 'default', out })).rejects.toThrow(/node is not known/);
    await expect(renderVM({ from: [join(import.meta.dirname, '..', 'fixtures', 'invalid', 'path-traversal.yaml')], vm: 'x', namespace: 'default', out })).rejects.toThrow(/not valid .*must be normalized/s);
  });
});
