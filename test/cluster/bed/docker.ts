// The Docker engine of the local cluster: Debian's docker.io, started by us (there is no systemd
// here) on its own socket, data root and exec root, so it never collides with another engine,
// and stopped by its pid. Its default runtime is runc-nosr (bed/go/runc-nosr), without which no
// privileged container — a kind node — can start in this sandbox.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, runCommand } from '../../controlplane/build.js';
import { ensureTools, type RequiredTool } from '../../setup/system-packages.js';
import { clusterCache } from './cache.js';

/** What the engine and the image builds need from Debian (mmdebstrap makes the root file systems). */
export const DOCKER_TOOLS: readonly RequiredTool[] = [
  { command: 'dockerd', debianPackage: 'docker.io' },
  { command: 'docker', debianPackage: 'docker.io' },
  { command: 'runc', debianPackage: 'runc' },
  { command: 'mmdebstrap', debianPackage: 'mmdebstrap' },
];

/** Short paths: containerd's shim sockets live under the exec root and have a length limit. */
const RUN_DIR = '/run/recontext-docker';

export interface DockerEngine {
  /** DOCKER_HOST for every docker and kind command. */
  readonly host: string;
  /** process.env plus DOCKER_HOST: pass to child processes (docker, kind). */
  readonly env: NodeJS.ProcessEnv;
}

export class DockerUnavailable extends Error {
  override readonly name = 'DockerUnavailable';
}

function paths(): { socket: string; pidFile: string; execRoot: string; dataRoot: string; log: string; forwardPolicy: string } {
  return {
    forwardPolicy: join(RUN_DIR, 'forward-policy'),
    socket: join(RUN_DIR, 'docker.sock'),
    pidFile: join(RUN_DIR, 'docker.pid'),
    execRoot: join(RUN_DIR, 'exec'),
    dataRoot: join(clusterCache(), 'docker'),
    log: join(clusterCache(), 'dockerd.log'),
  };
}

export function engineFor(): DockerEngine {
  const host = `unix://${paths().socket}`;
  return { host, env: { ...process.env, DOCKER_HOST: host } };
}

/** The engine's pid when it runs, from its pid file. */
export function runningEnginePid(): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(paths().pidFile, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Installs docker.io (and mmdebstrap) when missing, then starts the engine unless it runs.
 * `runtime` is the runc-nosr binary. Throws DockerUnavailable, saying what to install or why the
 * engine did not answer.
 */
export async function ensureEngine(runtime: string, log: (line: string) => void): Promise<DockerEngine> {
  const missing = ensureTools(DOCKER_TOOLS, log);
  if (missing.length > 0) throw new DockerUnavailable(`${missing.join('; ')}: the local cluster needs Debian's docker.io, runc and mmdebstrap (apt-get install docker.io mmdebstrap)`);
  const engine = engineFor();
  if (runningEnginePid() !== undefined && answers(engine)) return engine;

  const p = paths();
  mkdirSync(RUN_DIR, { recursive: true });
  mkdirSync(p.dataRoot, { recursive: true });
  rmSync(p.pidFile, { force: true });
  // dockerd sets the FORWARD policy to DROP; stopEngine puts back what the host had.
  if (!existsSync(p.forwardPolicy)) {
    const policy = /^-P FORWARD (\S+)/m.exec(spawnSync('iptables', ['-S', 'FORWARD'], { encoding: 'utf8' }).stdout)?.[1];
    if (policy) writeFileSync(p.forwardPolicy, policy);
  }
  log(`docker: starting dockerd on ${p.socket} (data ${p.dataRoot}, log ${p.log})`);
  const out = openSync(p.log, 'a');
  const child = spawn(
    'dockerd',
    [
      `--host=${engine.host}`,
      `--data-root=${p.dataRoot}`,
      `--exec-root=${p.execRoot}`,
      `--pidfile=${p.pidFile}`,
      `--add-runtime=nosr=${runtime}`,
      '--default-runtime=nosr',
    ],
    { detached: true, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  child.unref();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (answers(engine)) return engine;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const tail = existsSync(p.log) ? readFileSync(p.log, 'utf8').split('\n').slice(-15).join('\n') : '';
  throw new DockerUnavailable(`dockerd did not answer on ${p.socket} within 60 s (exit ${child.exitCode ?? 'none yet'}); its log ends:\n${tail}`);
}

function answers(engine: DockerEngine): boolean {
  return spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { env: engine.env, stdio: 'ignore', timeout: 10_000 }).status === 0;
}

/** Stops the engine (SIGTERM, then SIGKILL after 30 s); its containerd exits with it. */
export async function stopEngine(log: (line: string) => void): Promise<void> {
  const pid = runningEnginePid();
  if (pid === undefined) return;
  log(`docker: stopping dockerd (pid ${pid})`);
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(paths().pidFile, { force: true });
  removeHostNetworking();
}

/**
 * What dockerd leaves on the host after it exits: its default bridge docker0 and its iptables
 * chains and rules (DOCKER*, and those naming docker0), and the FORWARD policy it set to DROP.
 * Every Docker network of ours is gone by then (kind's is removed before the engine stops).
 */
function removeHostNetworking(): void {
  spawnSync('ip', ['link', 'delete', 'docker0'], { stdio: 'ignore' });
  const saved = spawnSync('iptables-save', [], { encoding: 'utf8' });
  if (saved.status === 0) {
    const kept = saved.stdout
      .split('\n')
      .filter((line) => !/DOCKER|docker0/.test(line))
      .join('\n');
    spawnSync('iptables-restore', [], { input: kept, stdio: ['pipe', 'ignore', 'ignore'] });
  }
  const policyFile = paths().forwardPolicy;
  if (existsSync(policyFile)) {
    spawnSync('iptables', ['-P', 'FORWARD', readFileSync(policyFile, 'utf8').trim()], { stdio: 'ignore' });
    rmSync(policyFile, { force: true });
  }
}

/** Runs docker with the engine's DOCKER_HOST; resolves with stdout, rejects with stderr's tail. */
export function docker(
  engine: DockerEngine,
  args: readonly string[],
  options: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv; onLine?: (line: string) => void } = {},
): Promise<string> {
  return runCommand('docker', args, { ...options, env: { ...engine.env, ...options.env } });
}
