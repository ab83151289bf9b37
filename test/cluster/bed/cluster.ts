// The local kind cluster: one control-plane node and two workers labelled as two zones and
// regions (as the libvirt test bed's host-a and host-b), from the node image built here.
//
// Pod network: kind's default CNI (kindnetd) has no Go module on the module proxy, so it cannot be
// built here. kind's nodes share one Docker bridge, which is all kindnetd uses: each node's pods
// get the node's podCIDR through the CNI ptp + host-local plugins (Debian's
// containernetworking-plugins), and every node routes the other nodes' podCIDRs to them. That is
// static configuration, written once after kubeadm allocated the podCIDRs: the nodes of this
// cluster never change.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatElapsed, runCommand } from '../../controlplane/build.js';
import { ensureClusterBinaries, type ClusterBinaries } from './binaries.js';
import { clusterCache } from './cache.js';
import { docker, engineFor, ensureEngine, runningEnginePid, stopEngine, type DockerEngine } from './docker.js';
import { buildNodeImage, type NodeImage } from './images.js';
import { clusterVersions, type ClusterVersions } from './versions.js';

export const CLUSTER_NAME = 'recontext';
const POD_SUBNET = '10.244.0.0/16';
/**
 * The API server's port on the host (127.0.0.1): fixed and below the ephemeral range, so it can
 * never be a port another test server just picked as free (kind's default is a random free port).
 */
export const API_SERVER_PORT = 16443;
const SERVICE_SUBNET = '10.96.0.0/16';

/** The workers and their places: zone-a/eu-north and zone-b/us-east, as the libvirt test bed. */
export const WORKER_PLACES = [
  { zone: 'zone-a', region: 'eu-north' },
  { zone: 'zone-b', region: 'us-east' },
] as const;

export interface LocalCluster {
  readonly name: string;
  readonly kubeconfig: string;
  readonly engine: DockerEngine;
  readonly nodeImage: NodeImage;
  readonly binaries: ClusterBinaries;
  readonly versions: ClusterVersions;
  /** kubectl built with the cluster (same Kubernetes version). */
  readonly kubectl: string;
  /** kind, for `kind load docker-image` and friends. */
  readonly kind: string;
}

export function kubeconfigPath(): string {
  return join(clusterCache(), 'kubeconfig');
}

/**
 * The host directory behind the "shared" StorageClass (ReadWriteMany): mounted at
 * SHARED_VOLUMES_PATH into every node, so a volume is the same directory wherever its pod runs.
 */
export function sharedVolumesDir(): string {
  return join(clusterCache(), 'shared-volumes');
}
export const SHARED_VOLUMES_PATH = '/var/shared-volumes';

/** kind's cluster configuration (YAML is JSON's superset: written as JSON). */
export function kindConfig(image: string, sharedVolumes: string): string {
  const extraMounts = [{ hostPath: sharedVolumes, containerPath: SHARED_VOLUMES_PATH }];
  const config = {
    kind: 'Cluster',
    apiVersion: 'kind.x-k8s.io/v1alpha4',
    networking: { disableDefaultCNI: true, podSubnet: POD_SUBNET, serviceSubnet: SERVICE_SUBNET, apiServerAddress: '127.0.0.1', apiServerPort: API_SERVER_PORT },
    nodes: [
      { role: 'control-plane', image, extraMounts },
      ...WORKER_PLACES.map((place) => ({
        role: 'worker',
        image,
        extraMounts,
        labels: { 'topology.kubernetes.io/zone': place.zone, 'topology.kubernetes.io/region': place.region },
      })),
    ],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** The CNI configuration of one node: ptp links, host-local addresses from its podCIDR. */
export function cniConfig(podCidr: string): string {
  return `${JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'recontext-ptp',
      plugins: [
        { type: 'ptp', ipMasq: false, mtu: 1500, ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], routes: [{ dst: '0.0.0.0/0' }] } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  )}\n`;
}

interface NodeAddress {
  readonly name: string;
  readonly ip: string;
  readonly podCidr: string;
}

/**
 * Builds what is missing, starts the Docker engine, and creates the cluster unless it exists.
 * Progress goes to log; returns when every node is Ready and every kube-system pod runs.
 */
export async function clusterUp(log: (line: string) => void, options: { readonly plain?: boolean } = {}): Promise<LocalCluster> {
  const started = Date.now();
  const versions = clusterVersions();
  const binaries = await ensureClusterBinaries(versions, log);
  const engine = await ensureEngine(binaries.runcNosr, log);
  const nodeImage = await buildNodeImage(engine, versions, binaries, log);
  const cluster: LocalCluster = {
    name: CLUSTER_NAME,
    kubeconfig: kubeconfigPath(),
    engine,
    nodeImage,
    binaries,
    versions,
    kubectl: join(binaries.kubernetes, 'kubectl'),
    kind: binaries.kind,
  };
  const existing = (await kind(cluster, ['get', 'clusters'])).split('\n').includes(CLUSTER_NAME);
  // Reused only as it was made: from this node image (not older versions or inputs), with every
  // node running (a stopped engine or machine leaves stopped nodes, whose routes are gone too).
  const nodes = existing ? (await kind(cluster, ['get', 'nodes', '--name', CLUSTER_NAME])).split('\n').filter(Boolean) : [];
  const states = await Promise.all(nodes.map((node) => docker(engine, ['inspect', '--format', '{{.Config.Image}} {{.State.Running}}', node]).then((out) => out.trim(), () => '')));
  // …and from this configuration (the one it was created with is kept beside the kubeconfig).
  const configFile = join(clusterCache(), 'kind-config.yaml');
  const config = kindConfig(nodeImage.tag, sharedVolumesDir());
  const sameConfig = existsSync(configFile) && readFileSync(configFile, 'utf8') === config;
  const reusable = existing && sameConfig && existsSync(cluster.kubeconfig) && nodes.length === 1 + WORKER_PLACES.length && states.every((state) => state === `${nodeImage.tag} true`);
  // `plain`: without KubeVirt and CDI (test/cluster/bed/platform.ts), whose CRDs and webhooks the
  // plain cluster's tests would meet instead of their fixtures; recreating is the quick way back.
  const platform = reusable && options.plain === true && (await kubectl(cluster, ['get', 'namespace', 'kubevirt', 'cdi', '--ignore-not-found', '-o', 'name'])).trim() !== '';
  if (reusable && !platform) {
    log(`cluster: ${CLUSTER_NAME} exists; checking it`);
  } else {
    if (platform) log(`cluster: ${CLUSTER_NAME} has KubeVirt or CDI installed (npm run e2e:kubevirt) and a plain cluster is wanted: recreating it`);
    if (existing && !platform) log(`cluster: ${CLUSTER_NAME} is not as made (nodes: ${states.join(', ') || 'none'}; want ${nodeImage.tag}, running${sameConfig ? '' : '; its kind configuration changed'}): recreating it`);
    if (existing) await kind(cluster, ['delete', 'cluster', '--name', CLUSTER_NAME]);
    mkdirSync(clusterCache(), { recursive: true });
    // A new cluster has no volumes: whatever a deleted one left in the shared directory goes.
    rmSync(sharedVolumesDir(), { recursive: true, force: true });
    mkdirSync(sharedVolumesDir(), { recursive: true });
    writeFileSync(configFile, config);
    log(`cluster: kind create cluster ${CLUSTER_NAME} (1 control plane, 2 workers; ${nodeImage.tag})`);
    await kind(cluster, ['create', 'cluster', '--name', CLUSTER_NAME, '--config', configFile, '--kubeconfig', cluster.kubeconfig], log);
  }
  await configurePodNetwork(cluster, log);
  log('cluster: waiting for the nodes and the kube-system and storage pods to be Ready');
  const deadline = Date.now() + 300_000;
  for (const args of [['nodes', '--all'], ['pods', '--all', '-n', 'kube-system'], ['pods', '--all', '-n', 'local-path-storage']]) {
    await kubectlWait(cluster, ['--for=condition=Ready', ...args], deadline).catch((error: unknown) => {
      throw new Error(`cluster: not Ready within 300 s (${args.join(' ')}): ${String(error)}`);
    });
  }
  log(`cluster: ${CLUSTER_NAME} is up (${formatElapsed(Date.now() - started)})`);
  return cluster;
}

/** Writes each node's CNI configuration and routes (idempotent: run on every clusterUp). */
async function configurePodNetwork(cluster: LocalCluster, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + 120_000;
  let nodes: NodeAddress[] = [];
  // The controller manager allocates podCIDRs shortly after a node registers.
  for (;;) {
    nodes = await nodeAddresses(cluster);
    if (nodes.length === 1 + WORKER_PLACES.length && nodes.every((node) => node.podCidr !== '')) break;
    if (Date.now() > deadline) throw new Error(`cluster: nodes without a podCIDR after 120 s: ${JSON.stringify(nodes)}`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  log(`cluster: pod network: ${nodes.map((node) => `${node.name} ${node.podCidr} via ${node.ip}`).join(', ')}`);
  for (const node of nodes) {
    await docker(cluster.engine, ['exec', '-i', node.name, 'sh', '-c', 'mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-recontext-ptp.conflist'], { input: cniConfig(node.podCidr) });
    for (const other of nodes.filter((candidate) => candidate !== node)) {
      await docker(cluster.engine, ['exec', node.name, 'ip', 'route', 'replace', other.podCidr, 'via', other.ip]);
    }
    // Pods reach addresses outside the cluster (the Docker host) from their node's address.
    const masquerade = ['-t', 'nat', '-{op}', 'POSTROUTING', '-s', POD_SUBNET, '!', '-d', POD_SUBNET, '-j', 'MASQUERADE'];
    const rule = (op: 'C' | 'A'): string[] => ['exec', node.name, 'iptables', ...masquerade.map((word) => word.replace('{op}', op))];
    const present = await docker(cluster.engine, rule('C')).then(() => true, () => false);
    if (!present) await docker(cluster.engine, rule('A'));
  }
}

async function nodeAddresses(cluster: LocalCluster): Promise<NodeAddress[]> {
  const template = '{range .items[*]}{.metadata.name}{" "}{.status.addresses[?(@.type=="InternalIP")].address}{" "}{.spec.podCIDR}{"\\n"}{end}';
  const out = await kubectl(cluster, ['get', 'nodes', '-o', `jsonpath=${template}`]);
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name = '', ip = '', podCidr = ''] = line.split(' ');
      return { name, ip, podCidr };
    });
}

/** Whether our engine runs and has our cluster (builds nothing, starts nothing). */
export async function clusterIsUp(): Promise<boolean> {
  if (runningEnginePid() === undefined || !existsSync(kubeconfigPath())) return false;
  const names = await docker(engineFor(), ['ps', '--filter', `label=io.x-k8s.kind.cluster=${CLUSTER_NAME}`, '--format', '{{.Names}}']).catch(() => '');
  return names.trim().split('\n').filter(Boolean).length === 1 + WORKER_PLACES.length;
}

export function kubectl(cluster: LocalCluster, args: readonly string[], input?: string): Promise<string> {
  return runCommand(cluster.kubectl, ['--kubeconfig', cluster.kubeconfig, ...args], { input });
}

/**
 * `kubectl wait ARGS` until the deadline (epoch ms), asked again after each failure: it fails at
 * once while what it waits for does not exist yet (a namespace without pods, an object its
 * operator has not created). Rejects with kubectl's last error once the deadline has passed.
 */
export async function kubectlWait(cluster: LocalCluster, args: readonly string[], deadline: number): Promise<void> {
  for (;;) {
    const left = Math.max(1, Math.round((deadline - Date.now()) / 1000));
    const done = await kubectl(cluster, ['wait', ...args, `--timeout=${Math.min(left, 30)}s`]).then(() => true, (error: unknown) => error);
    if (done === true) return;
    if (Date.now() > deadline) throw done;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

export function kind(cluster: Pick<LocalCluster, 'kind' | 'engine'>, args: readonly string[], log?: (line: string) => void): Promise<string> {
  return runCommand(cluster.kind, args, { env: cluster.engine.env, onLine: log ? (line) => line.trim() && log(`  kind: ${line.trim()}`) : undefined });
}

/**
 * Deletes the cluster, its Docker network, and stops the engine when nothing else of it runs.
 * Does nothing without our running engine; with it, the binaries are the cached ones cluster:up built.
 */
export async function clusterDown(log: (line: string) => void): Promise<void> {
  const engine = engineFor();
  if (runningEnginePid() === undefined) {
    log('cluster: no Docker engine of ours runs; nothing to remove');
    rmSync(kubeconfigPath(), { force: true });
    return;
  }
  const binaries = await ensureClusterBinaries(clusterVersions(), log);
  const clusters = (await kind({ kind: binaries.kind, engine }, ['get', 'clusters'])).split('\n');
  if (clusters.includes(CLUSTER_NAME)) {
    log(`cluster: kind delete cluster ${CLUSTER_NAME}`);
    await kind({ kind: binaries.kind, engine }, ['delete', 'cluster', '--name', CLUSTER_NAME, '--kubeconfig', kubeconfigPath()]);
  }
  rmSync(sharedVolumesDir(), { recursive: true, force: true });
  rmSync(kubeconfigPath(), { force: true });
  const containers = (await docker(engine, ['ps', '-aq'])).trim();
  if (containers !== '') {
    log(`cluster: the engine still has containers (${containers.split('\n').length}), left running`);
    return;
  }
  await docker(engine, ['network', 'rm', 'kind']).catch(() => undefined);
  await stopEngine(log);
  const left = leftovers();
  if (left.length > 0) throw new Error(`cluster: down left ${left.join('; ')}`);
}

/** What of ours still runs or exists on the host: engine processes, bridges, iptables chains. */
export function leftovers(): string[] {
  const found: string[] = [];
  const processes = spawnSync('pgrep', ['-a', '-f', 'dockerd|containerd-shim|/usr/bin/containerd'], { encoding: 'utf8' }).stdout.trim();
  if (processes) found.push(`processes: ${processes.split('\n').join(', ')}`);
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout.split('\n').filter((line) => /: (docker0|br-[0-9a-f]{12}|veth[0-9a-f]+)[@:]/.test(line));
  if (links.length > 0) found.push(`network links: ${links.map((line) => line.split(':')[1]?.trim()).join(', ')}`);
  const chains = spawnSync('iptables-save', [], { encoding: 'utf8' }).stdout.split('\n').filter((line) => /DOCKER|docker0|br-[0-9a-f]{12}/.test(line));
  if (chains.length > 0) found.push(`iptables: ${chains.length} rules or chains of Docker`);
  return found;
}
