// FUSE test support. The process serving a mount must never touch it (not even with async fs:
// libuv's few pool threads would wait on FUSE requests that need the same pool to be answered),
// so tests read the mount through child processes, started asynchronously (a spawnSync would
// block the loop that serves the mount: deadlock).
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { ensureFuse } from '../../../test/setup/system-packages.js';
import { skipReason } from '../../../test/support/skip.js';

/** Why FUSE tests cannot run here (empty when they can); installs libfuse2 + fuse when missing. */
export const fuseUnavailable: string[] = ensureFuse((line) => console.log(line));
skipReason('guest/ffs FUSE mount tests', fuseUnavailable.length > 0 ? fuseUnavailable.join('; ') : undefined, 'the test setup installs fuse and libfuse2 with apt-get as root; the kernel needs /dev/fuse');

export interface ShResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a shell command in a child process. */
export function sh(command: string, options: { input?: string; timeoutMs?: number } = {}): Promise<ShResult> {
  return new Promise((resolve) => {
    const child = execFile('/bin/sh', ['-c', command], { timeout: options.timeoutMs ?? 20_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1;
      resolve({ code, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

export async function isMounted(mountpoint: string): Promise<boolean> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  return mounts.split('\n').some((line) => line.split(' ')[1] === mountpoint);
}

/** Last resort in afterAll: lazy-unmount whatever is still mounted there. */
export async function forceUnmount(mountpoint: string): Promise<void> {
  if (!(await isMounted(mountpoint))) return;
  await sh(`fusermount -uz '${mountpoint}' || umount -l '${mountpoint}'`);
}

/** Runs `node -e SCRIPT ARGS…` (CommonJS, sync fs is fine there: that process does not serve the mount). */
export function nodeScript(script: string, args: readonly string[]): { child: ReturnType<typeof spawn>; done: Promise<ShResult> } {
  const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<ShResult>((resolve) => child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr })));
  return { child, done };
}
