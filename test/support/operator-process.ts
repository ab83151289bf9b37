// `recontext operator` as a real process (node --import tsx test/support/run-cli.ts operator …),
// for tests that kill it, read its logs or probe its health: its stderr (JSON log lines) is kept,
// its metrics port is a free loopback port, and kill() sends any signal (SIGKILL for failover).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const CLI = join(REPO, 'test', 'support', 'run-cli.ts');

export interface OperatorProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Every line it wrote to stderr so far (JSON log lines, or a crash's stack). */
  readonly lines: string[];
  readonly exited: Promise<number | null>;
  /** Whether the process has exited (by itself or killed). */
  readonly gone: () => boolean;
  metrics(): Promise<string>;
  /** GET /healthz answered 200. */
  healthy(): Promise<boolean>;
  /** recontext_leader is 1. */
  leading(): Promise<boolean>;
  kill(signal?: NodeJS.Signals): void;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts `recontext operator --metrics-address 127.0.0.1:<free port> …args`. */
export async function startOperatorProcess(args: readonly string[], options: { echo?: (line: string) => boolean } = {}): Promise<OperatorProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'operator', '--metrics-address', `127.0.0.1:${port}`, ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      if (options.echo?.(line)) process.stderr.write(`[operator ${port}] ${line}\n`);
    }
  });
  let done = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      done = true;
      if (partial) lines.push(partial);
      resolve(code);
    }),
  );
  const get = async (path: string) => fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return {
    child,
    port,
    lines,
    exited,
    gone: () => done,
    metrics: async () => (await get('/metrics')).text(),
    healthy: async () => (await get('/healthz').catch(() => undefined))?.status === 200,
    leading: async () => /^recontext_leader 1$/m.test(await get('/metrics').then((r) => r.text(), () => '')),
    kill: (signal = 'SIGKILL') => {
      if (!done) child.kill(signal);
    },
  };
}
