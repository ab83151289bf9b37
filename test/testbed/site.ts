// A standalone-mode site on the test bed: the GlusterFS example's layers, a VMContext for one
// libvirt domain, and a hosts file naming the test bed's two hosts as two zones. Used by the
// standalone tests, the demo and the migration bench.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestbedHost } from './index.js';

export const REPO = join(import.meta.dirname, '..', '..');
export const ZONE_A = { 'topology.kubernetes.io/zone': 'zone-a', 'topology.kubernetes.io/region': 'eu-north' };
export const ZONE_B = { 'topology.kubernetes.io/zone': 'zone-b', 'topology.kubernetes.io/region': 'us-east' };

/** Writes the site into `dir` (created); the VMContext targets `domain`. Returns the hosts file path. */
export function writeSite(dir: string, options: { domain: string; hosts: readonly [TestbedHost, TestbedHost] }): string {
  mkdirSync(dir, { recursive: true });
  const gluster = join(REPO, 'examples', 'gluster');
  for (const file of readdirSync(gluster)) if (!file.startsWith('vmcontext-')) copyFileSync(join(gluster, file), join(dir, file));
  const vmContext = readFileSync(join(REPO, 'examples', 'standalone', 'vmcontext-gluster-client.yaml'), 'utf8');
  writeFileSync(join(dir, 'vmcontext.yaml'), vmContext.replace(/^  name: gluster-client-1$/m, `  name: ${options.domain}`).replace(/domain: gluster-client-1/, `domain: ${options.domain}`));
  const [a, b] = options.hosts;
  const labels = (l: Record<string, string>) => Object.entries(l).map(([k, v]) => `      ${k}: ${v}`).join('\n');
  const hostsFile = join(dir, 'hosts.yaml');
  writeFileSync(hostsFile, `hosts:\n  - name: ${a.name}\n    uri: ${a.uri}\n    labels:\n${labels(ZONE_A)}\n  - name: ${b.name}\n    uri: ${b.uri}\n    labels:\n${labels(ZONE_B)}\n`);
  return hostsFile;
}
