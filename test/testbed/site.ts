// A standalone-mode site on the test bed: the GlusterFS example's layers, a VMContext for one
// libvirt domain, and a hosts file naming the test bed's two hosts as two zones; the operator on
// it, and its layers rendered for a node as the driver gets them. Used by the libvirt and FFS
// tests, the demo and the migration bench.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createLogger, type Logger } from '../../src/runtime/log.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import type { DesiredLayer } from '../../src/drivers/driver.js';
import { LibvirtDriver } from '../../src/drivers/libvirt/driver.js';
import type { LayerImageStore } from '../../src/images/layer-image.js';
import { loadManifests } from '../../src/manifests/load.js';
import { buildWorkspace } from '../../src/manifests/workspace.js';
import { selectLayers } from '../../src/reconcile/layers.js';
import { renderLayer, type SourceLookup } from '../../src/reconcile/render.js';
import { readHostsFile, resolveHosts } from '../../src/standalone/hosts.js';
import { StandaloneOperator } from '../../src/standalone/operator.js';
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
  writeFileSync(join(dir, 'vmcontext.yaml'), vmContext.replace(/^  name: \S+$/m, `  name: ${options.domain}`).replace(/domain: gluster-client-1/, `domain: ${options.domain}`));
  const [a, b] = options.hosts;
  const labels = (l: Record<string, string>) => Object.entries(l).map(([k, v]) => `      ${k}: ${v}`).join('\n');
  const hostsFile = join(dir, 'hosts.yaml');
  writeFileSync(hostsFile, `hosts:\n  - name: ${a.name}\n    uri: ${a.uri}\n    labels:\n${labels(ZONE_A)}\n  - name: ${b.name}\n    uri: ${b.uri}\n    labels:\n${labels(ZONE_B)}\n`);
  return hostsFile;
}

/**
 * The layers of a site's (or the examples') VMContext rendered for a node, as images in `store`:
 * what the driver is asked to converge to. `sources` overrides the ConfigMaps/Secrets read.
 */
export async function desiredLayers(options: {
  readonly dir: string;
  readonly store: LayerImageStore;
  readonly vm: string;
  readonly node: { readonly name: string; readonly labels: Readonly<Record<string, string>> };
  readonly sources?: (base: SourceLookup) => SourceLookup;
}): Promise<DesiredLayer[]> {
  const workspace = buildWorkspace(loadManifests([options.dir]).documents.filter((d) => basename(d.file) !== 'hosts.yaml'));
  const vmContext = workspace.vmContexts[0];
  if (!vmContext) throw new Error(`no VMContext in ${options.dir}`);
  const base = workspace.sources(vmContext.metadata.namespace ?? 'default');
  const sources = options.sources ? options.sources(base) : base;
  return Promise.all(
    selectLayers(vmContext, workspace.layers).layers.map(async (layer) => {
      const rendered = renderLayer(layer, { vm: { name: options.vm, namespace: 'default', labels: vmContext.metadata.labels ?? {} }, node: { name: options.node.name, labels: { ...options.node.labels } }, sources });
      const image = await options.store.ensure(rendered);
      return { name: rendered.name, class: rendered.class, priority: rendered.priority, digest: rendered.digest, image: image.path, bytes: image.bytes };
    }),
  );
}

/** The site's sources with the first GlusterFS server of `gluster-volume` renamed `server`: a new service image per name. */
export function withGlusterServer(server: string): (base: SourceLookup) => SourceLookup {
  return (base) => ({
    configMap: (name) => (name === 'gluster-volume' ? { 'client.vol': Buffer.from(base.configMap(name)!['client.vol']!.toString().replace('gluster-server-0', server)) } : base.configMap(name)),
    secret: base.secret,
  });
}

/** A standalone operator on a site (as a fresh process would be: same directory, same state). */
export function siteOperator(options: {
  readonly site: string;
  readonly state: string;
  readonly hostsFile: string;
  readonly driver?: LibvirtDriver;
  readonly logger?: Logger;
  readonly metrics?: OperatorMetrics;
  readonly imageGcGraceMs?: number;
  readonly rescanMs?: number;
  readonly metricsAddress?: string;
}): StandaloneOperator {
  return new StandaloneOperator({
    directory: options.site,
    stateDirectory: options.state,
    driver: options.driver ?? new LibvirtDriver(resolveHosts(readHostsFile(options.hostsFile), [], () => {}), { log: () => {} }),
    logger: options.logger ?? createLogger({ level: 'error', write: () => {} }),
    metrics: options.metrics ?? new OperatorMetrics(),
    exclude: [options.hostsFile],
    ...(options.imageGcGraceMs !== undefined ? { imageGcGraceMs: options.imageGcGraceMs } : {}),
    ...(options.rescanMs !== undefined ? { rescanMs: options.rescanMs } : {}),
    ...(options.metricsAddress !== undefined ? { metricsAddress: options.metricsAddress } : {}),
  });
}
