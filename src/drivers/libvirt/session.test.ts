import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';
import { decodePacket, encodePacket, KEEPALIVE_PROGRAM, MessageType, Procedure, writeDomain, XdrWriter } from './protocol.js';
import { HostUnavailableError, LibvirtSession, SESSION_EVENTS, type HostDomainEvent } from './session.js';

describe('backoffDelay', () => {
  it('doubles from the base up to the cap, half fixed and half jitter', () => {
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, 100, 5000, () => 1))).toEqual([100, 200, 400, 800]);
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, 100, 5000, () => 0))).toEqual([50, 100, 200, 400]);
    expect(backoffDelay(6, 100, 5000, () => 1)).toBe(5000);
    expect(backoffDelay(1000, 100, 5000, () => 0.5)).toBe(3750);
  });
});

/**
 * A fake libvirtd: answers the handshake, event (de)registration and CONNECT_CLOSE, records the
 * calls, sends events to every client, and can go down and come back on the same socket path.
 */
class FakeDaemon {
  readonly path = join(mkdtempSync(join(tmpdir(), 'lv-session-')), 'sock');
  readonly calls: number[] = [];
  readonly sockets = new Set<Socket>();
  answerPings = true;
  connections = 0;
  #server: Server | undefined;
  #nextCallbackId = 1;

  async up(): Promise<void> {
    const server = createServer((socket) => this.#serve(socket));
    await new Promise<void>((resolve) => server.listen(this.path, resolve));
    this.#server = server;
  }

  /** Like a daemon that exits: the socket file goes away, clients see their connection close. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  count(procedure: number): number {
    return this.calls.filter((p) => p === procedure).length;
  }

  lifecycle(name: string, event: number, detail: number): void {
    const body = new XdrWriter().int(1);
    writeDomain(body, { name, uuid: Buffer.alloc(16, 1), id: 1 });
    body.int(event).int(detail);
    for (const socket of this.sockets) {
      socket.write(encodePacket({ program: 0x20008086, version: 1, procedure: Procedure.DOMAIN_EVENT_CALLBACK_LIFECYCLE, type: MessageType.Message, serial: 0, status: 0 }, body.toBuffer()));
    }
  }

  #serve(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4 && buffered.length >= buffered.readUInt32BE(0)) {
        const { header } = decodePacket(buffered.subarray(4, buffered.readUInt32BE(0)));
        buffered = buffered.subarray(buffered.readUInt32BE(0));
        if (header.program === KEEPALIVE_PROGRAM) {
          if (this.answerPings) socket.write(encodePacket({ ...header, procedure: 2 }));
          continue;
        }
        this.calls.push(header.procedure);
        const reply = (body: Buffer = Buffer.alloc(0)) => socket.write(encodePacket({ ...header, type: MessageType.Reply }, body));
        if (header.procedure === Procedure.AUTH_LIST) reply(new XdrWriter().uint(1).int(0).toBuffer());
        else if (header.procedure === Procedure.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY) reply(new XdrWriter().int(this.#nextCallbackId++).toBuffer());
        else reply();
      }
    });
  }
}

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('LibvirtSession against a fake daemon', () => {
  let daemon: FakeDaemon;
  let session: LibvirtSession | undefined;
  afterEach(async () => {
    await session?.close();
    await daemon.down();
  });

  async function open(options: Partial<ConstructorParameters<typeof LibvirtSession>[0]> = {}) {
    daemon = new FakeDaemon();
    await daemon.up();
    session = new LibvirtSession({ name: 'node-a', socketPath: daemon.path, backoffBaseMs: 20, backoffMaxMs: 100, ...options });
    const events: HostDomainEvent[] = [];
    const connects: boolean[] = [];
    session.onEvent((event) => events.push(event));
    session.onConnected(({ reconnected }) => connects.push(reconnected));
    return { session, events, connects };
  }

  it('connects once for concurrent callers, registers every event and tags events with the host', async () => {
    const { session, events, connects } = await open();
    const [first, second] = await Promise.all([session.client(), session.client()]);
    expect(first).toBe(second);
    expect(daemon.connections).toBe(1);
    expect(daemon.count(Procedure.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY)).toBe(SESSION_EVENTS.length);
    expect(connects).toEqual([false]);
    expect(session.connected).toBe(true);
    daemon.lifecycle('vm1', 2, 0);
    await until(() => events.length === 1);
    expect(events[0]).toMatchObject({ kind: 'lifecycle', host: 'node-a', event: 2, detail: 0, domain: { name: 'vm1' } });
  });

  it('reconnects by itself after the daemon restarts, re-registers and announces the reconnect', async () => {
    const { session, events, connects } = await open();
    await session.client();
    await daemon.down();
    await until(() => !session.connected);
    await new Promise((resolve) => setTimeout(resolve, 150)); // a few retries fail meanwhile
    expect(connects).toEqual([false]);
    await daemon.up();
    await until(() => connects.length === 2);
    expect(connects).toEqual([false, true]);
    expect(session.connected).toBe(true);
    expect(daemon.count(Procedure.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY)).toBe(2 * SESSION_EVENTS.length);
    daemon.lifecycle('vm1', 4, 0);
    await until(() => events.length === 1);
    expect(events[0]).toMatchObject({ kind: 'lifecycle', host: 'node-a', event: 4 });
  });

  it('fails fast with HostUnavailableError naming host and socket while the daemon is down', async () => {
    const { session } = await open();
    await daemon.down();
    const started = performance.now();
    const failure = await session.client().catch((error: unknown) => error);
    expect(performance.now() - started).toBeLessThan(500);
    expect(failure).toBeInstanceOf(HostUnavailableError);
    expect((failure as HostUnavailableError).message).toContain('node-a');
    expect((failure as HostUnavailableError).message).toContain(daemon.path);
  });

  it('close() deregisters, says goodbye and never reconnects', async () => {
    const { session } = await open();
    await session.client();
    await session.close();
    expect(daemon.count(Procedure.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY)).toBe(SESSION_EVENTS.length);
    expect(daemon.count(Procedure.CONNECT_CLOSE)).toBe(1);
    expect(session.connected).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(daemon.connections).toBe(1);
    await expect(session.client()).rejects.toThrow(/closed/);
  });

  it('drops a daemon that stops answering keepalive pings and reconnects', async () => {
    const { session, connects } = await open({ keepalive: { intervalMs: 50, count: 2 } });
    await session.client();
    await new Promise((resolve) => setTimeout(resolve, 300)); // pings answered: stays up
    expect(daemon.connections).toBe(1);
    daemon.answerPings = false;
    const silent = performance.now();
    await until(() => daemon.connections === 2, 2000);
    const detectedMs = performance.now() - silent;
    expect(detectedMs).toBeLessThan(1000);
    daemon.answerPings = true;
    await until(() => connects.length === 2);
    expect(connects).toEqual([false, true]);
  });

  it('reports a connect that hangs (a stopped daemon accepts but never answers) within connectTimeoutMs', async () => {
    daemon = new FakeDaemon();
    const mute = createServer((socket) => socket.resume()); // accepts and reads, never replies
    await new Promise<void>((resolve) => mute.listen(daemon.path, resolve));
    try {
      session = new LibvirtSession({ name: 'node-a', socketPath: daemon.path, connectTimeoutMs: 200 });
      const started = performance.now();
      await expect(session.client()).rejects.toThrow(/node-a is unavailable.*no reply in 200 ms/);
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      await session?.close();
      await new Promise<void>((resolve) => mute.close(() => resolve()));
    }
  });
});
