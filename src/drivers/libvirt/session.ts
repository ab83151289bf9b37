// The one place that keeps a connection to ONE host's libvirtd up: connects lazily, reconnects
// with jittered exponential backoff when the daemon restarts or dies, registers the domain events
// after every (re)connect and hands them on tagged with the host. Events during an outage are
// lost, so every connect is announced (onConnected): the owner re-lists domains and re-converges.
import { PlatformUnavailableError } from '../driver.js';
import { backoffDelay } from './backoff.js';
import { ConnectionClosedError, EventId, LibvirtClient, type DomainEvent } from './client.js';
import type { KeepaliveOptions } from './connection.js';

/** The events a session registers on every connection. */
export const SESSION_EVENTS: readonly number[] = [
  EventId.LIFECYCLE,
  EventId.TRAY_CHANGE,
  EventId.DEVICE_REMOVED,
  EventId.DEVICE_ADDED,
  EventId.MIGRATION_ITERATION,
  EventId.JOB_COMPLETED,
];

export type HostDomainEvent = DomainEvent & { readonly host: string };

export type SessionLogLevel = 'debug' | 'info' | 'warn' | 'error';
export type SessionLog = (level: SessionLogLevel, message: string, fields: Record<string, string | number | boolean>) => void;

export interface SessionOptions {
  /** Host name, as events and errors report it. */
  readonly name: string;
  /** libvirtd's unix socket. */
  readonly socketPath: string;
  /** Driver URI. Default qemu:///system. */
  readonly uri?: string;
  /** First reconnect delay (jittered). Default 100 ms. */
  readonly backoffBaseMs?: number;
  /** Longest reconnect delay. Default 5000 ms. */
  readonly backoffMaxMs?: number;
  /** Bound on one connect + handshake (a stopped daemon accepts but never answers). Default 5000 ms. */
  readonly connectTimeoutMs?: number;
  /** Our own keepalive pings; `false` to rely on call timeouts. Default 5 s × 3: a hung daemon is noticed within ~20 s. */
  readonly keepalive?: KeepaliveOptions | false;
  readonly log?: SessionLog;
}

/** The host's libvirtd cannot be reached now; the session keeps trying in the background. */
export class HostUnavailableError extends PlatformUnavailableError {
  override readonly name = 'HostUnavailableError';
  constructor(
    readonly host: string,
    readonly socketPath: string,
    cause: unknown,
  ) {
    super(`libvirt host ${host} is unavailable (socket ${socketPath}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

export class LibvirtSession {
  readonly name: string;
  readonly socketPath: string;
  readonly #options: SessionOptions;
  readonly #log: SessionLog;
  readonly #eventListeners = new Set<(event: HostDomainEvent) => void>();
  readonly #connectedListeners = new Set<(info: { host: string; reconnected: boolean }) => void>();
  #client: LibvirtClient | undefined;
  #callbackIds: number[] = [];
  #connecting: Promise<LibvirtClient> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #everConnected = false;
  #keepUp = false;
  #closed = false;

  constructor(options: SessionOptions) {
    this.name = options.name;
    this.socketPath = options.socketPath;
    this.#options = options;
    this.#log = options.log ?? (() => undefined);
  }

  get connected(): boolean {
    return this.#client !== undefined;
  }

  /** Connects now and keeps the connection up until close(). */
  start(): void {
    if (this.#closed) throw new ConnectionClosedError(`libvirt session to ${this.name} is closed`);
    this.#keepUp = true;
    if (!this.#client) this.#connect().catch(() => undefined); // failures are logged and retried
  }

  /**
   * The connected client. While the daemon is down this fails fast with HostUnavailableError
   * (one immediate attempt, shared by concurrent callers) instead of waiting for the next retry.
   * Also start()s the session.
   */
  client(): Promise<LibvirtClient> {
    if (this.#closed) return Promise.reject(new ConnectionClosedError(`libvirt session to ${this.name} is closed`));
    this.#keepUp = true;
    return this.#client ? Promise.resolve(this.#client) : this.#connect();
  }

  onEvent(listener: (event: HostDomainEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /**
   * After every connect, once events are registered: `reconnected` is true when an earlier
   * connection was lost — events of the outage are gone, so re-list and re-converge.
   */
  onConnected(listener: (info: { host: string; reconnected: boolean }) => void): () => void {
    this.#connectedListeners.add(listener);
    return () => this.#connectedListeners.delete(listener);
  }

  /** Stops reconnecting, deregisters the events and closes the connection politely. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    await this.#connecting?.catch(() => undefined); // an attempt in flight sees #closed and drops its client
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    await Promise.all(this.#callbackIds.map((id) => client.deregisterEvent(id, 2000).catch(() => undefined)));
    await client.close();
  }

  #connect(): Promise<LibvirtClient> {
    this.#connecting ??= this.#attempt().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #attempt(): Promise<LibvirtClient> {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    let client: LibvirtClient | undefined;
    const callbackIds: number[] = [];
    try {
      const keepalive = this.#options.keepalive ?? { intervalMs: 5000, count: 3 };
      client = await LibvirtClient.connect({
        socketPath: this.socketPath,
        ...(this.#options.uri ? { uri: this.#options.uri } : {}),
        openTimeoutMs: this.#options.connectTimeoutMs ?? 5000,
        ...(keepalive ? { keepalive } : {}),
      });
      // Listen before registering, and without filtering by callback id: an event can arrive in
      // the same read as its registration's reply, before the id is known here. The connection
      // is this session's alone, so every event on it is one we registered.
      client.onEvent((_callbackId, event) => this.#emit(event));
      for (const eventId of SESSION_EVENTS) callbackIds.push(await client.registerEvent(eventId));
      if (this.#closed) throw new ConnectionClosedError(`libvirt session to ${this.name} closed while connecting`);
    } catch (error: unknown) {
      client?.connection.close();
      if (this.#closed) throw new ConnectionClosedError(`libvirt session to ${this.name} is closed`);
      const failure = new HostUnavailableError(this.name, this.socketPath, error);
      this.#scheduleRetry(failure.message);
      throw failure;
    }
    const connected = client;
    this.#client = connected;
    this.#callbackIds = callbackIds;
    this.#failures = 0;
    const reconnected = this.#everConnected;
    this.#everConnected = true;
    connected.connection.onClose((error) => this.#lost(connected, error));
    this.#log('info', reconnected ? 'libvirt host reconnected' : 'libvirt host connected', { host: this.name, socket: this.socketPath });
    for (const listener of this.#connectedListeners) this.#safely(() => listener({ host: this.name, reconnected }), 'connected listener');
    return connected;
  }

  #lost(client: LibvirtClient, error: Error): void {
    if (this.#client !== client) return; // closed by close(), or already replaced
    this.#client = undefined;
    this.#callbackIds = [];
    if (this.#closed) return;
    this.#log('warn', 'libvirt host connection lost; reconnecting', { host: this.name, error: error.message });
    this.#scheduleRetry(error.message);
  }

  #scheduleRetry(reason: string): void {
    if (this.#closed || !this.#keepUp || this.#retryTimer) return;
    const delayMs = backoffDelay(this.#failures++, this.#options.backoffBaseMs ?? 100, this.#options.backoffMaxMs ?? 5000);
    this.#log('debug', 'libvirt host reconnect scheduled', { host: this.name, delayMs, attempt: this.#failures, reason });
    // unref: a session waiting to retry never keeps the process alive on its own.
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect().catch(() => undefined); // a failure schedules the next retry
    }, delayMs).unref();
  }

  #emit(event: DomainEvent): void {
    const tagged: HostDomainEvent = { ...event, host: this.name };
    for (const listener of this.#eventListeners) this.#safely(() => listener(tagged), 'event listener');
  }

  /** A throwing listener must not break the connection's packet loop or the other listeners. */
  #safely(call: () => void, what: string): void {
    try {
      call();
    } catch (error: unknown) {
      this.#log('error', `libvirt session ${what} threw`, { host: this.name, error: error instanceof Error ? error.message : String(error) });
    }
  }
}
