// Installs the Debian packages the tests talk to (real ISO readers, later QEMU/libvirt) when they
// are missing. Tests never rely on what a developer installed by hand: a fresh machine gets the
// same tools through this one function, used by the vitest global setup and by .ci/run.
import { execFileSync, spawnSync } from 'node:child_process';

/** A command the tests need, and the Debian package that provides it. */
export interface RequiredTool {
  readonly command: string;
  readonly debianPackage: string;
}

export const ISO_TOOLS: readonly RequiredTool[] = [
  { command: 'genisoimage', debianPackage: 'genisoimage' },
  { command: 'isoinfo', debianPackage: 'genisoimage' },
  { command: 'xorriso', debianPackage: 'xorriso' },
  { command: '7z', debianPackage: 'p7zip-full' },
];

/** What the benchmarks spawn or measure with, besides the ISO tools. */
export const BENCH_TOOLS: readonly RequiredTool[] = [{ command: '/usr/bin/time', debianPackage: 'time' }];

/** bench:ffs's contenders besides the guest agent and the kernel's overlayfs, and its C client. */
export const UNION_BENCH_TOOLS: readonly RequiredTool[] = [
  { command: 'mergerfs', debianPackage: 'mergerfs' },
  { command: 'unionfs', debianPackage: 'unionfs-fuse' },
  { command: 'gcc', debianPackage: 'gcc' },
];

/** Linters the tests run over files of the repository (test/lint). */
export const LINT_TOOLS: readonly RequiredTool[] = [{ command: 'shellcheck', debianPackage: 'shellcheck' }];

/**
 * A real Prometheus server for the metric-source tests (test/support/prometheus.ts starts a private
 * one per test file). Its postinst would start the Debian service where an init system runs: see
 * ensurePrometheus() there.
 */
export const PROMETHEUS_TOOLS: readonly RequiredTool[] = [{ command: 'prometheus', debianPackage: 'prometheus' }];

export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Installs the packages of the missing tools with apt-get. Returns the tools still missing
 * afterwards (with the reason), so callers can skip the tests that need them out loud.
 */
export function ensureTools(tools: readonly RequiredTool[], log: (line: string) => void): string[] {
  const missing = tools.filter((t) => !hasCommand(t.command));
  if (missing.length === 0) return [];
  const packages = [...new Set(missing.map((t) => t.debianPackage))];
  const canInstall = process.getuid?.() === 0 && hasCommand('apt-get');
  if (canInstall) {
    log(`test setup: installing ${packages.join(' ')} with apt-get`);
    // Test files may ask at once (several workers): wait for the dpkg lock instead of failing.
    const lockWait = ['-o', 'DPkg::Lock::Timeout=300'];
    try {
      execFileSync('apt-get', [...lockWait, 'update', '-qq'], { stdio: 'ignore', env: aptEnv() });
      execFileSync('apt-get', [...lockWait, 'install', '-y', '-qq', '--no-install-recommends', ...packages], {
        stdio: 'ignore',
        env: aptEnv(),
      });
    } catch (error: unknown) {
      log(`test setup: apt-get failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return tools
    .filter((t) => !hasCommand(t.command))
    .map((t) => `${t.command} (Debian package ${t.debianPackage}) is not installed${canInstall ? '' : ' and this user cannot apt-get install it'}`);
}

function aptEnv(): NodeJS.ProcessEnv {
  return { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
}
