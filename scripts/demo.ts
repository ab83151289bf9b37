// `npm run demo`: the README's main command. For now the offline preview of a migration: render
// the GlusterFS example for a VM on a node in zone-a, then for a node in zone-b, and show which
// layers change and what the guest would read. The live-migration demo on real QEMU guests
// replaces this with the libvirt driver (issue #6).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatRenderTable, renderVM, type RenderRow } from '../src/cli/render.js';

const examples = join(import.meta.dirname, '..', 'examples', 'gluster');
const vm = 'gluster-client-1';
const nodes = [
  { node: 'node-a', nodeLabels: 'topology.kubernetes.io/zone=zone-a,topology.kubernetes.io/region=eu-north', where: 'zone-a, eu-north' },
  { node: 'node-b', nodeLabels: 'topology.kubernetes.io/zone=zone-b,topology.kubernetes.io/region=us-east', where: 'zone-b, us-east' },
] as const;
const watched = ['etc/glusterfs/cache.conf', 'etc/policy/data-residency.conf'];

/** What the guest's FFS shows at a path: the file of the highest-priority layer that has it. */
function guestView(rows: readonly RenderRow[], path: string): { layer: string; text: string } | undefined {
  for (const row of rows) {
    const file = row.layer.files.find((f) => f.path === path);
    if (file) return { layer: row.layer.name, text: file.content.toString('utf8').trim() };
  }
  return undefined;
}

const out = mkdtempSync(join(tmpdir(), 'recontext-demo-'));
try {
  console.log(`recontext demo: the context of VM ${vm} (examples/gluster) before and after it moves\n`);
  const results: RenderRow[][] = [];
  for (const [i, n] of nodes.entries()) {
    const started = performance.now();
    const rows = await renderVM({ from: [examples], vm, namespace: 'default', node: n.node, nodeLabels: n.nodeLabels, out: join(out, 'images') }); // one content-addressed store: shared images are written once
    const ms = performance.now() - started;
    results.push(rows);
    console.log(`${i === 0 ? 'Running on' : 'After migration to'} ${n.node} (${n.where}): ${rows.length} layers rendered and written in ${ms.toFixed(0)} ms`);
    console.log(formatRenderTable(rows));
  }
  const [before, after] = results as [RenderRow[], RenderRow[]];
  const changed = after.filter((r) => before.find((b) => b.layer.name === r.layer.name)?.layer.digest !== r.layer.digest);
  const kept = after.filter((r) => !changed.includes(r));
  console.log(`Re-rendered for the new node: ${changed.map((r) => r.layer.name).join(', ')}; unchanged (same image, not rebuilt): ${kept.map((r) => r.layer.name).join(', ')}\n`);
  console.log('What the guest reads (highest-priority layer wins):');
  for (const path of watched) {
    const was = guestView(before, path);
    const now = guestView(after, path);
    console.log(`  /${path}`);
    console.log(`    before (${was?.layer}): ${was?.text.split('\n').filter((l) => !l.startsWith('#')).join(' | ')}`);
    console.log(`    after  (${now?.layer}): ${now?.text.split('\n').filter((l) => !l.startsWith('#')).join(' | ')}`);
  }
  console.log('\nThis is the offline preview (no VM yet): the live-migration demo on QEMU guests comes with the libvirt driver.');
} finally {
  rmSync(out, { recursive: true, force: true });
}
