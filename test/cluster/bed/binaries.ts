// The programs of the local cluster, built here from the Go modules under bed/go (module proxy
// only) and, for the pause container, from the C source in the k8s.io/kubernetes module.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findGo, goBuild, kubernetesLdflags, runCommand } from '../../controlplane/build.js';
import { cached, keyOf, keyOfTree } from './cache.js';
import type { ClusterVersions } from './versions.js';
import { CLUSTER_DIR } from './versions.js';

const GO_DIR = join(CLUSTER_DIR, 'bed', 'go');

/** What kubeadm and the nodes run (bed/go/kubernetes), by binary name. */
export const KUBERNETES_COMMANDS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubeadm', 'kubelet', 'kubectl'] as const;

export interface ClusterBinaries {
  /** Directory with one file per entry of KUBERNETES_COMMANDS. */
  readonly kubernetes: string;
  readonly etcd: string;
  readonly coredns: string;
  readonly localPathProvisioner: string;
  readonly crictl: string;
  readonly kind: string;
  readonly runcNosr: string;
  readonly pause: string;
}

interface GoProgram {
  readonly field: Exclude<keyof ClusterBinaries, 'kubernetes' | 'pause'>;
  readonly module: string;
  readonly file: string;
  readonly pkg: string;
  /** The module this program comes from, whose version must be the one versions.env names. */
  readonly upstream?: { readonly path: string; readonly version: keyof ClusterVersions };
}

/** Small first, so a broken toolchain or proxy shows before the long builds. */
export const GO_PROGRAMS: readonly GoProgram[] = [
  { field: 'runcNosr', module: 'runc-nosr', file: 'runc-nosr', pkg: '.' },
  { field: 'kind', module: 'kind', file: 'kind', pkg: 'sigs.k8s.io/kind', upstream: { path: 'sigs.k8s.io/kind', version: 'kind' } },
  { field: 'crictl', module: 'cri-tools', file: 'crictl', pkg: 'sigs.k8s.io/cri-tools/cmd/crictl', upstream: { path: 'sigs.k8s.io/cri-tools', version: 'criTools' } },
  { field: 'etcd', module: 'etcd', file: 'etcd', pkg: '.', upstream: { path: 'go.etcd.io/etcd/server/v3', version: 'etcd' } },
  {
    field: 'localPathProvisioner',
    module: 'local-path-provisioner',
    file: 'local-path-provisioner',
    pkg: 'github.com/rancher/local-path-provisioner',
    upstream: { path: 'github.com/rancher/local-path-provisioner', version: 'localPathProvisioner' },
  },
  { field: 'coredns', module: 'coredns', file: 'coredns', pkg: 'github.com/coredns/coredns', upstream: { path: 'github.com/coredns/coredns', version: 'coredns' } },
];

function goVersion(go: string): string {
  return spawnSync(go, ['env', 'GOVERSION'], { encoding: 'utf8' }).stdout.trim();
}

function moduleKey(module: string, ...extra: string[]): string {
  return keyOfTree(join(GO_DIR, module), (name) => name.startsWith('.')).concat('-', keyOf(...extra));
}

export async function ensureClusterBinaries(versions: ClusterVersions, log: (line: string) => void): Promise<ClusterBinaries> {
  const go = findGo();
  if (!go) throw new Error('no Go toolchain on PATH (nor /usr/local/go/bin): the local cluster builds Kubernetes, etcd, CoreDNS and kind from Go modules; install Go ≥ 1.24');
  const toolchain = goVersion(go);
  const paths: Partial<Record<keyof ClusterBinaries, string>> = {};
  for (const [index, program] of GO_PROGRAMS.entries()) {
    const label = `cluster: [${index + 1}/${GO_PROGRAMS.length + 2}] ${program.file}`;
    const dir = await cached('bin', `${program.module}-${moduleKey(program.module, toolchain)}`, async (temporary) => {
      mkdirSync(temporary, { recursive: true });
      await goBuild(go, { cwd: join(GO_DIR, program.module), packages: [program.pkg], output: join(temporary, program.file), ldflags: '-s -w', label, log });
    }, log);
    paths[program.field] = join(dir, program.file);
  }
  const ldflags = kubernetesLdflags(versions.kubernetes);
  const kubernetes = await cached('bin', `kubernetes-${versions.kubernetes}-${moduleKey('kubernetes', toolchain, ldflags)}`, async (temporary) => {
    await goBuild(go, {
      cwd: join(GO_DIR, 'kubernetes'),
      packages: KUBERNETES_COMMANDS.map((command) => `k8s.io/kubernetes/cmd/${command}`),
      output: temporary,
      ldflags,
      label: `cluster: [${GO_PROGRAMS.length + 1}/${GO_PROGRAMS.length + 2}] kubernetes (${KUBERNETES_COMMANDS.join(', ')})`,
      log,
    });
  }, log);
  const pause = await cached('bin', `pause-${versions.pause}-${keyOf(versions.kubernetes)}`, async (temporary) => {
    mkdirSync(temporary, { recursive: true });
    await buildPause(go, versions, join(temporary, 'pause'), log);
  }, log);
  return { ...(paths as Omit<ClusterBinaries, 'kubernetes' | 'pause'>), kubernetes, pause: join(pause, 'pause') };
}

/**
 * registry.k8s.io/pause is Kubernetes' build/pause/linux/pause.c compiled static, as its Makefile
 * does; the source comes from the k8s.io/kubernetes module the node binaries are built from.
 */
async function buildPause(go: string, versions: ClusterVersions, output: string, log: (line: string) => void): Promise<void> {
  log(`cluster: [${GO_PROGRAMS.length + 2}/${GO_PROGRAMS.length + 2}] pause ${versions.pause} (gcc -static)`);
  const source = join(moduleDir(go, 'kubernetes', 'k8s.io/kubernetes'), 'build', 'pause', 'linux', 'pause.c');
  readFileSync(source); // a clear ENOENT if the module layout ever changes
  await runCommand('gcc', ['-Os', '-Wall', '-Werror', '-static', `-DVERSION=${versions.pause}`, '-o', output, source]);
  await runCommand('strip', [output]);
}

/** kind's node-image files (its images/base/files), from the sigs.k8s.io/kind module of bed/go/kind. */
export function kindBaseFiles(): string {
  return join(moduleDir(findGo() ?? 'go', 'kind', 'sigs.k8s.io/kind'), 'images', 'base', 'files');
}

/** Where the Go module cache holds `path`, as required by the bed's module `module` (downloaded by its build). */
function moduleDir(go: string, module: string, path: string): string {
  const cwd = join(GO_DIR, module);
  const listed = spawnSync(go, ['list', '-m', '-f', '{{.Dir}}', path], { cwd, encoding: 'utf8', env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' } });
  const dir = listed.stdout.trim();
  if (listed.status !== 0 || !dir) throw new Error(`go list -m ${path} failed in ${cwd}: ${listed.stderr}`);
  return dir;
}
