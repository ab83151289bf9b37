// Builds the test control plane (kube-apiserver, etcd, kubectl; helm for the chart tests) from the
// Go modules beside this file into a per-version cache outside the repo. One implementation, used
// by the vitest global setup, `npm run testenv:up` and `tsx test/controlplane/cli.ts build`.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

export interface ControlPlaneVersions {
  /** k8s.io/kubernetes version of kube-apiserver and kubectl, e.g. v1.33.13. */
  readonly kubernetes: string;
  /** go.etcd.io/etcd/server/v3 version, e.g. v3.5.21. */
  readonly etcd: string;
  /** helm.sh/helm/v3 version of helm, e.g. v3.18.6. */
  readonly helm: string;
}

export interface ControlPlaneBinaries {
  readonly dir: string;
  readonly kubeApiserver: string;
  readonly etcd: string;
  readonly kubectl: string;
  /** In its own cache entry beside the control plane's (keyed by helm's version). */
  readonly helm: string;
  readonly versions: ControlPlaneVersions;
}

/** Why the control plane cannot be built or run here; tests that need it skip with this message. */
export class ControlPlaneUnavailable extends Error {
  override readonly name = 'ControlPlaneUnavailable';
}

interface GoModule {
  /** Directory under test/controlplane. */
  readonly module: string;
  /** Output file name in the cache. */
  readonly binary: keyof Pick<ControlPlaneBinaries, 'kubeApiserver' | 'etcd' | 'kubectl' | 'helm'>;
  readonly file: string;
  /** Package to build; default the module's own main package ("."). */
  readonly pkg?: string;
}

const MODULES: readonly GoModule[] = [
  // Smallest first, so a broken toolchain shows up before the long kube-apiserver build.
  { module: 'etcd', binary: 'etcd', file: 'etcd' },
  { module: 'kubectl', binary: 'kubectl', file: 'kubectl' },
  // Upstream's main, named by the go.mod `tool` directive; after kubectl, whose packages it reuses.
  { module: 'helm', binary: 'helm', file: 'helm', pkg: 'helm.sh/helm/v3/cmd/helm' },
  { module: 'kas', binary: 'kubeApiserver', file: 'kube-apiserver' },
];

/** Versions come from the committed go.mod files, so the cache key cannot drift from the build. */
export function controlPlaneVersions(): ControlPlaneVersions {
  return {
    kubernetes: requiredVersion('kas', 'k8s.io/kubernetes'),
    etcd: requiredVersion('etcd', 'go.etcd.io/etcd/server/v3'),
    helm: requiredVersion('helm', 'helm.sh/helm/v3'),
  };
}

function requiredVersion(module: string, path: string): string {
  const version = goModRequires(readFileSync(join(HERE, module, 'go.mod'), 'utf8'), path);
  if (!version) throw new Error(`test/controlplane/${module}/go.mod does not require ${path}`);
  return version;
}

/** The version of `path` a go.mod requires (direct or indirect), or undefined. */
export function goModRequires(goMod: string, path: string): string | undefined {
  const escaped = path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, 'm').exec(goMod)?.[1];
}

/** `$RECONTEXT_CACHE` or `~/.cache/recontext` (XDG_CACHE_HOME respected). */
export function cacheRoot(): string {
  const explicit = process.env['RECONTEXT_CACHE'];
  if (explicit) return explicit;
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'recontext');
}

export function binariesFor(versions: ControlPlaneVersions = controlPlaneVersions()): ControlPlaneBinaries {
  const dir = join(cacheRoot(), 'controlplane', `k8s-${versions.kubernetes}-etcd-${versions.etcd}`);
  return {
    dir,
    kubeApiserver: join(dir, 'kube-apiserver'),
    etcd: join(dir, 'etcd'),
    kubectl: join(dir, 'kubectl'),
    helm: join(cacheRoot(), 'controlplane', `helm-${versions.helm}`, 'helm'),
    versions,
  };
}

/** The cached binaries, or undefined when any is missing. */
export function findBinaries(): ControlPlaneBinaries | undefined {
  const binaries = binariesFor();
  return MODULES.every((m) => isExecutable(binaries[m.binary])) ? binaries : undefined;
}

export function isExecutable(path: string): boolean {
  try {
    const stat = statSync(path);
    return stat.isFile() && (stat.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** The go command: PATH first, then the usual install location (non-login shells often miss it). */
export function findGo(): string | undefined {
  // RECONTEXT_GO picks a toolchain explicitly (and, set to nothing usable, simulates having none).
  const explicit = process.env['RECONTEXT_GO'];
  if (explicit !== undefined) return isExecutable(explicit) ? explicit : undefined;
  const candidates = [
    ...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean).map((d) => join(d, 'go')),
    '/usr/local/go/bin/go',
    join(homedir(), 'go', 'bin', 'go'),
  ];
  return candidates.find(isExecutable);
}

export interface BuildOptions {
  /** Progress lines (one per step, with elapsed time, plus a heartbeat during long compiles). */
  readonly log?: (line: string) => void;
  /** Heartbeat period; default 30 s. */
  readonly heartbeatMs?: number;
}

/**
 * Returns the cached binaries, building the missing ones first. Throws ControlPlaneUnavailable
 * when there is no Go toolchain. Concurrent callers (two terminals, a test run and testenv:up)
 * serialize on a lock directory so they never write the same file at once.
 */
export async function ensureBinaries(options: BuildOptions = {}): Promise<ControlPlaneBinaries> {
  const found = findBinaries();
  if (found) return found;
  const log = options.log ?? ((line: string) => console.log(line));
  const binaries = binariesFor();
  mkdirSync(binaries.dir, { recursive: true });
  mkdirSync(dirname(binaries.helm), { recursive: true });
  const release = await lock(`${binaries.dir}.lock`, log);
  try {
    const go = findGo();
    const missing = MODULES.filter((m) => !isExecutable(binaries[m.binary]));
    if (missing.length === 0) return binaries;
    if (!go) {
      throw new ControlPlaneUnavailable(
        `no Go toolchain (${process.env['RECONTEXT_GO'] !== undefined ? `RECONTEXT_GO=${process.env['RECONTEXT_GO']} is not executable` : 'go not on PATH nor in /usr/local/go/bin'}): cannot build kube-apiserver/etcd/kubectl`,
      );
    }
    const started = Date.now();
    log(
      `control plane: building ${missing.map((m) => m.file).join(', ')} (k8s ${binaries.versions.kubernetes}, ` +
        `etcd ${binaries.versions.etcd}, helm ${binaries.versions.helm}) into ${binaries.dir}; a cold build takes 10-20 min on 2 cores (helm alone: 6 CPU-minutes, 3-14 min)`,
    );
    for (const [index, module] of missing.entries()) {
      const step = `[${index + 1}/${missing.length}] ${module.file}`;
      await buildModule(go, module, binaries, step, log, options.heartbeatMs ?? 30_000);
    }
    log(`control plane: built in ${formatElapsed(Date.now() - started)}`);
    return binaries;
  } finally {
    release();
  }
}

async function buildModule(
  go: string,
  module: GoModule,
  binaries: ControlPlaneBinaries,
  step: string,
  log: (line: string) => void,
  heartbeatMs: number,
): Promise<void> {
  await goBuild(go, {
    cwd: join(HERE, module.module),
    packages: [module.pkg ?? '.'],
    output: binaries[module.binary],
    ldflags: ldflags(module, binaries.versions),
    label: `control plane: ${step}`,
    log,
    heartbeatMs,
  });
}

export interface GoBuild {
  /** The module directory. */
  readonly cwd: string;
  /** Packages to build: one for a file output, any number for a directory output. */
  readonly packages: readonly string[];
  /** The binary (one package), or a directory that receives one binary per package. */
  readonly output: string;
  readonly ldflags: string;
  /** Extra environment (e.g. CGO_ENABLED=1 for a cgo build); CGO is off by default. */
  readonly env?: NodeJS.ProcessEnv;
  /** Prefix of the progress lines, e.g. "control plane: [2/4] kubectl". */
  readonly label: string;
  readonly log: (line: string) => void;
  readonly heartbeatMs?: number;
}

/**
 * `go build` of a module's packages with progress: module download first (so a proxy failure is
 * reported as such), then the compile with a heartbeat counting the packages built. The output
 * appears only complete (written beside it, then renamed). Niced: the machine's 2 cores are shared
 * with whatever else runs.
 */
export async function goBuild(go: string, build: GoBuild): Promise<void> {
  const { cwd, label, log } = build;
  const env = { ...goEnv(), ...build.env };
  const started = Date.now();
  log(`${label}: downloading modules`);
  await runCommand(go, ['mod', 'download'], { cwd, env });

  // The package count gives the heartbeat a denominator; `go build -v` names each package it compiles.
  const listed = spawnSync(go, ['list', '-deps', ...build.packages], { cwd, env, encoding: 'utf8' });
  const total = listed.status === 0 ? listed.stdout.split('\n').filter(Boolean).length : undefined;
  log(`${label}: compiling${total ? ` (${total} packages in the build graph)` : ''} (${formatElapsed(Date.now() - started)})`);

  const temporary = `${build.output}.tmp-${process.pid}`;
  let compiled = 0;
  const timer = setInterval(() => {
    log(`${label}: still compiling, ${compiled}${total ? `/${total}` : ''} packages built (${formatElapsed(Date.now() - started)})`);
  }, build.heartbeatMs ?? 30_000);
  timer.unref();
  try {
    // A directory output needs the trailing slash (go build writes one binary per main package).
    const toDirectory = build.packages.length > 1;
    if (toDirectory) mkdirSync(temporary, { recursive: true });
    const args = ['build', '-v', '-trimpath', '-ldflags', build.ldflags, '-o', toDirectory ? `${temporary}/` : temporary, ...build.packages];
    const nice = isExecutable('/usr/bin/nice') ? '/usr/bin/nice' : undefined;
    await runCommand(nice ?? go, nice ? ['-n', '10', go, ...args] : args, {
      cwd,
      env,
      onLine: (line) => {
        if (!line.startsWith('#') && !line.includes(' ')) compiled++;
      },
    });
    rmSync(build.output, { recursive: true, force: true });
    renameSync(temporary, build.output);
  } finally {
    clearInterval(timer);
    rmSync(temporary, { recursive: true, force: true });
  }
  log(`${label}: done (${formatElapsed(Date.now() - started)})`);
}

function ldflags(module: GoModule, versions: ControlPlaneVersions): string {
  const flags = ['-s', '-w'];
  if (module.module === 'etcd') return flags.join(' ');
  if (module.module === 'helm') {
    // As helm's Makefile: its version, and the Kubernetes version `helm template` and `helm lint`
    // assume without a cluster (.Capabilities.KubeVersion; default v1.20): the API server's.
    const k8s = /^v(\d+)\.(\d+)\./.exec(versions.kubernetes);
    flags.push(`-X helm.sh/helm/v3/internal/version.version=${versions.helm}`, '-X helm.sh/helm/v3/internal/version.gitTreeState=clean');
    for (const pkg of ['helm.sh/helm/v3/pkg/lint/rules', 'helm.sh/helm/v3/pkg/chartutil'])
      flags.push(`-X ${pkg}.k8sVersionMajor=${k8s?.[1] ?? '1'}`, `-X ${pkg}.k8sVersionMinor=${k8s?.[2] ?? '33'}`);
    return flags.join(' ');
  }
  return kubernetesLdflags(versions.kubernetes);
}

/** -ldflags of a Kubernetes binary: stripped, and its version set as upstream's build does. */
export function kubernetesLdflags(version: string): string {
  const flags = ['-s', '-w'];
  // Without these the binaries report v0.0.0-master and the API server's emulation version
  // machinery falls back to defaults; kubectl prints a skew warning.
  const match = /^v(\d+)\.(\d+)\./.exec(version);
  const [major, minor] = [match?.[1] ?? '1', match?.[2] ?? '0'];
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    flags.push(
      `-X ${pkg}.gitVersion=${version}`,
      `-X ${pkg}.gitMajor=${major}`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
      `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
    );
  }
  return flags.join(' ');
}

function goEnv(): NodeJS.ProcessEnv {
  const goflags = [process.env['GOFLAGS'], '-mod=mod'].filter(Boolean).join(' ');
  // GOCACHE/GOMODCACHE stay at Go's defaults (outside the repo); GOTOOLCHAIN=local so a go
  // directive never triggers a toolchain download.
  return { ...process.env, CGO_ENABLED: '0', GOFLAGS: goflags, GOTOOLCHAIN: 'local' };
}

/**
 * Runs a command; resolves with its stdout, rejects with the last lines of its output (both
 * streams) and where it ran. onLine sees every line of either stream as it comes.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv; onLine?: (line: string) => void } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    const tail: string[] = [];
    // One line splitter per stream, so a line is never made of two streams' halves.
    const lines = (): ((chunk: Buffer) => void) => {
      let partial = '';
      return (chunk) => {
        const parts = (partial + chunk.toString('utf8')).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) {
          options.onLine?.(line);
          tail.push(line);
          if (tail.length > 40) tail.shift();
        }
      };
    };
    const onStdout = lines();
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      onStdout(chunk);
    });
    child.stderr.on('data', lines());
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${[command, ...args].join(' ')} failed (${signal ?? `exit ${code}`})${options.cwd ? ` in ${options.cwd}` : ''}:\n${tail.join('\n').trim()}`));
    });
    child.stdin.end(options.input ?? '');
  });
}

/**
 * A lock directory holding the owner's pid, for builds into a shared cache (the control plane
 * here, the test bed's guest too); a lock whose owner is gone is taken over.
 */
export async function lock(path: string, log: (line: string) => void, label = 'control plane'): Promise<() => void> {
  let announced = false;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, 'pid'), String(process.pid));
      return () => rmSync(path, { recursive: true, force: true });
    } catch (error: unknown) {
      if (!isErrnoException(error) || error.code !== 'EEXIST') throw error;
    }
    const owner = readPid(join(path, 'pid'));
    // No pid file a while after mkdir means the owner died in between.
    const orphan = owner === undefined && ageMs(path) > 30_000;
    if (orphan || (owner !== undefined && !isAlive(owner))) {
      rmSync(path, { recursive: true, force: true });
      continue;
    }
    if (!announced) {
      log(`${label}: waiting for another build (pid ${owner ?? '?'}) holding ${path}`);
      announced = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error: unknown) {
    return isErrnoException(error) && error.code === 'EPERM';
  }
}

export function isErrnoException(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && 'code' in error;
}

export function formatElapsed(ms: number): string {
  const seconds = Math.round(ms / 1000);
  return seconds < 60 ? `${seconds}s` : `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
}
