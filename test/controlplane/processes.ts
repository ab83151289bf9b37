// The control plane's processes: each in its own process group with its output in a log file,
// signalled and terminated as a group, waited for with the log's tail in the error, cleaned up
// when this process exits; and free ports for them.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { formatElapsed, isAlive, isErrnoException } from './build.js';

/** True while the recorded pid is still the recorded binary (pids get reused). */
export function ownsPid(pid: number, binary: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    return argv0 === binary;
  } catch {
    return false;
  }
}

/** One child process in its own process group, with output in <dir>/logs/<name>.log. */
export class ManagedProcess {
  private constructor(
    readonly name: string,
    readonly pid: number,
    readonly logPath: string,
    private readonly child: ChildProcess,
    readonly exited: Promise<string>,
  ) {}

  static spawn(name: string, binary: string, args: readonly string[], dir: string, detached: boolean): ManagedProcess {
    const logPath = join(dir, 'logs', `${name}.log`);
    const fd = openSync(logPath, 'a');
    try {
      const child = spawn(binary, args, {
        // Own process group, so stop() can signal the group and terminal signals do not race us.
        detached: true,
        stdio: ['ignore', fd, fd],
        // Read by the Go mains: exit when our process dies, however it dies (not for testenv:up).
        env: { ...process.env, ...(detached ? {} : { RECONTEXT_EXIT_WITH_PARENT: '1' }) },
      });
      if (child.pid === undefined) throw new Error(`could not start ${binary}`);
      if (detached) child.unref();
      const exited = new Promise<string>((resolve) => {
        child.on('exit', (code, signal) => resolve(signal ?? `exit code ${code}`));
        child.on('error', (error) => resolve(error.message));
      });
      return new ManagedProcess(name, child.pid, logPath, child, exited);
    } finally {
      closeSync(fd);
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch (error: unknown) {
      if (!isErrnoException(error) || error.code !== 'ESRCH') throw error;
    }
  }

  async terminate(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
    if ((await Promise.race([this.exited, timeout])) === 'timeout') {
      this.signal('SIGKILL');
      await this.exited;
    }
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

/** Signals a process group recorded by pid (no ChildProcess handle) and waits for it to go. */
export async function terminateGroup(pid: number, graceMs = 15_000): Promise<void> {
  const send = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pid, signal);
    } catch (error: unknown) {
      if (!isErrnoException(error) || error.code !== 'ESRCH') throw error;
    }
  };
  send('SIGCONT');
  send('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) send('SIGKILL');
  while (isAlive(pid) && !isZombie(pid)) await sleep(50);
}

function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

export async function waitFor(what: string, check: () => Promise<boolean>, process: ManagedProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (!process.running) {
      throw new Error(`${process.name} exited (${await process.exited}) before ${what} was ok; log ${process.logPath}:\n${process.logTail()}`);
    }
    try {
      if (await check()) return;
    } catch (error: unknown) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${formatElapsed(timeoutMs)} waiting for ${what} (${last}); log ${process.logPath}:\n${process.logTail()}`);
    }
    await sleep(200);
  }
}

const exitHooks = new Set<() => void>();
let exitHookInstalled = false;

/**
 * Runs hook synchronously when this process exits normally. A death by signal skips 'exit'
 * handlers; the Go mains cover that case by exiting when their parent goes away.
 */
export function onProcessExit(hook: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const h of exitHooks) h();
    });
  }
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
