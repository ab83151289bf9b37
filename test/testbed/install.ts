// Installs what the test bed needs from Debian's packages (idempotent; a fresh Debian 12 machine
// as root needs nothing else), and small process helpers shared by the test bed's modules.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAlive, isErrnoException } from '../controlplane/build.js';

export { cacheRoot, formatElapsed, isAlive, isErrnoException, lock } from '../controlplane/build.js';

/** Why the test bed cannot run on this machine; tests that need it skip with this message. */
export class TestbedUnavailable extends Error {
  override readonly name = 'TestbedUnavailable';
}

/**
 * Debian packages of the two libvirt hosts and of the guest build (gcc -static needs libc6-dev).
 * The fat guest's agent is built with Go (guest/agent's go.mod), which is not installed from here.
 */
export const TESTBED_PACKAGES: readonly string[] = [
  'qemu-system-x86',
  'qemu-utils',
  'libvirt-daemon-system',
  'libvirt-clients',
  'busybox-static',
  'gcc',
  'libc6-dev',
  'xz-utils',
  'xorriso',
  'util-linux',
];

/** Where test bed instances live: `${RECONTEXT_TESTBED_DIR:-/run/recontext-testbed}/<id>`. */
export function testbedRoot(): string {
  return process.env['RECONTEXT_TESTBED_DIR'] ?? '/run/recontext-testbed';
}

export type Log = (line: string) => void;

/** Cheap checks only (no apt, no processes): why the test bed cannot run here, if it cannot. */
export function testbedPrecondition(): string | undefined {
  if (process.env['RECONTEXT_TESTBED'] === 'off') return 'RECONTEXT_TESTBED=off';
  if (process.platform !== 'linux' || process.arch !== 'x64') return `needs Linux x86_64 (this is ${process.platform}/${process.arch})`;
  if (process.getuid?.() !== 0) return 'needs root (libvirtd, mount namespaces, apt-get)';
  const missing = missingPackages();
  if (missing.length > 0 && !hasCommand('apt-get')) return `missing Debian packages ${missing.join(' ')} and no apt-get`;
  // Each libvirt host lives in its own mount namespace: sandboxes without CAP_SYS_ADMIN cannot.
  const unshare = spawnSync('unshare', ['--mount', '--propagation', 'private', 'true'], { encoding: 'utf8' });
  if (unshare.status !== 0) return `cannot create a mount namespace (unshare --mount): ${(unshare.stderr ?? unshare.error?.message ?? '').trim()}`;
  return undefined;
}

export function missingPackages(): string[] {
  const result = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\\n', ...TESTBED_PACKAGES], { encoding: 'utf8' });
  const installed = new Set(
    (result.stdout ?? '')
      .split('\n')
      .filter((line) => line.endsWith(' installed'))
      .map((line) => line.split(' ')[0]),
  );
  return TESTBED_PACKAGES.filter((p) => !installed.has(p));
}

/** apt-get update once, then install what is missing (--no-install-recommends). */
export async function ensurePackages(log: Log): Promise<void> {
  const missing = missingPackages();
  if (missing.length === 0) return;
  const reason = testbedPrecondition();
  if (reason) throw new TestbedUnavailable(reason);
  const started = Date.now();
  log(`testbed: installing ${missing.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Without systemd, the packages' maintainer scripts would start a system libvirtd and virtlogd
  // through invoke-rc.d; the test bed runs its own. Debian's policy-rc.d (exit 101) prevents it.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\n# recontext test bed: no service starts during apt-get install\nexit 101\n', { mode: 0o755 });
  try {
    await run('apt-get', ['update', '-qq'], { env });
    await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, timeoutMs: 900_000 });
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  const still = missingPackages();
  if (still.length > 0) throw new Error(`apt-get install left ${still.join(' ')} missing`);
  log(`testbed: packages installed in ${Math.round((Date.now() - started) / 1000)}s`);
}

export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; a non-zero exit rejects with its output unless allowFailure. */
export function run(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; allowFailure?: boolean; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      [...args],
      { env: options.env ?? process.env, cwd: options.cwd, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        if (code !== 0 && !options.allowFailure) {
          reject(new Error(`${[command, ...args].join(' ')} failed (${error?.signal ?? `exit ${code}`}):\n${stderr}${stdout}`.trimEnd()));
        } else {
          resolve({ code, stdout, stderr });
        }
      },
    );
    // A child that exits before reading its stdin (ldd, a quick failure) must not raise EPIPE here.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The command name of a live process (comm), or undefined. */
export function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** SIGTERM, wait up to graceMs, then SIGKILL; resolves when the pid is gone (or a zombie). */
export async function terminate(pid: number, graceMs = 10_000): Promise<void> {
  const send = (signal: NodeJS.Signals): void => {
    try {
      process.kill(pid, signal);
    } catch (error: unknown) {
      if (!isErrnoException(error) || error.code !== 'ESRCH') throw error;
    }
  };
  send('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && !isZombie(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid) && !isZombie(pid)) send('SIGKILL');
  while (isAlive(pid) && !isZombie(pid)) await sleep(50);
}

export function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
