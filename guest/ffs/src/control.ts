// The control socket of a running `recontext-ffs mount`: one JSON request per line, one JSON
// answer per line. `recontext-ffs set` replaces the directory layers through it; the socket path
// is in the mount's status file, so commands find it from the mountpoint. Mode 0600: only the
// user who mounted (root in a guest) may change the stack.
import { createHash } from 'node:crypto';
import { mkdir, rm, chmod } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export type ControlRequest = { readonly op: 'set'; readonly layers: readonly { name: string; dir: string; priority: number }[] } | { readonly op: 'status' };
export type ControlAnswer = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly error: string };

/** /run/recontext-ffs/<hash of the mountpoint>.sock for root, else under the temp directory. */
export function defaultControlPath(mountpoint: string): string {
  const id = createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
  const dir = process.getuid?.() === 0 ? '/run/recontext-ffs' : join(tmpdir(), `recontext-ffs-${process.getuid?.() ?? 'user'}`);
  return join(dir, `${id}.sock`);
}

export async function serveControl(path: string, handle: (request: ControlRequest) => Promise<unknown>): Promise<{ close(): Promise<void> }> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await rm(path, { force: true });
  const server: Server = createServer((socket) => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      const line = buffered.slice(0, newline);
      buffered = '';
      void answer(line).then((a) => socket.end(JSON.stringify(a) + '\n'));
    });
  });
  const answer = async (line: string): Promise<ControlAnswer> => {
    try {
      const request = JSON.parse(line) as ControlRequest;
      if (request.op !== 'set' && request.op !== 'status') return { ok: false, error: `unknown op ${JSON.stringify((request as { op?: unknown }).op)}` };
      return { ok: true, result: await handle(request) };
    } catch (error: unknown) {
      return { ok: false, error: error instanceof Error ? error.message : String(error) };
    }
  };
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, () => resolve()));
  await chmod(path, 0o600);
  return {
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(path, { force: true });
    },
  };
}

export function controlRequest(path: string, request: ControlRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      try {
        const answer = JSON.parse(text) as ControlAnswer;
        if (answer.ok) resolve(answer.result);
        else reject(new Error(answer.error));
      } catch {
        reject(new Error(`control socket ${path} answered ${JSON.stringify(text)}`));
      }
    });
  });
}
