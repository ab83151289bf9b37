// One connection to a libvirt daemon over its unix socket: packet framing, calls matched to
// replies by serial number, event messages passed to listeners, keepalive pings answered (and,
// when asked, sent: a daemon that stops answering is declared dead).
// It does not reconnect: a closed connection stays closed, and the owner (LibvirtSession, one
// per host) opens a new one and re-registers its events — reconnection policy lives in one place.
import { connect, type Socket } from 'node:net';
import {
  AffectFlags,
  decodeEvent,
  decodePacket,
  encodePacket,
  KEEPALIVE_PING,
  KEEPALIVE_PONG,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_VERSION,
  MESSAGE_MAX,
  MessageStatus,
  MessageType,
  Procedure,
  readRemoteError,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
  type DomainEvent,
} from './protocol.js';
import { XdrReader, XdrWriter } from './xdr.js';

/** An error libvirt reported for a call (virErrorNumber in `code`). */
export class LibvirtError extends Error {
  override readonly name = 'LibvirtError';
  constructor(
    readonly code: number,
    readonly domain: number,
    message: string,
    readonly procedure: number,
  ) {
    super(message);
  }
  /** VIR_ERR_NO_DOMAIN */
  get noDomain(): boolean {
    return this.code === 42;
  }
  /** VIR_ERR_OPERATION_INVALID (e.g. the domain is not running) */
  get operationInvalid(): boolean {
    return this.code === 55;
  }
}

/** The connection is gone (daemon restarted, socket closed); open a new one. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
}

export interface ConnectionOptions {
  /** Path of libvirtd's unix socket, e.g. /run/libvirt/libvirt-sock. */
  readonly socketPath: string;
  /** Driver URI to open on the daemon. Default qemu:///system. */
  readonly uri?: string;
  /** A call without a reply after this long fails (the connection stays usable). Default 60 000 ms. */
  readonly callTimeoutMs?: number;
  /**
   * Bound on connecting and the AUTH_LIST/CONNECT_OPEN handshake. Default callTimeoutMs. A
   * SIGSTOPped daemon still accepts connections (the kernel's listen backlog) but never answers.
   */
  readonly openTimeoutMs?: number;
  /**
   * Send keepalive PINGs (libvirt's virKeepAlive) after `intervalMs` of silence; after `count`
   * unanswered ones the daemon is dead and the connection closes, failing pending calls. A hung
   * daemon is otherwise only noticed when a call times out. Default: off.
   */
  readonly keepalive?: KeepaliveOptions;
}

export interface KeepaliveOptions {
  readonly intervalMs: number;
  readonly count: number;
}

type Pending = { resolve(body: Buffer): void; reject(error: Error): void; procedure: number; timer: NodeJS.Timeout };

export class LibvirtConnection {
  readonly socketPath: string;
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  readonly #eventListeners = new Set<(callbackId: number, event: DomainEvent) => void>();
  readonly #closeListeners = new Set<(error: Error) => void>();
  readonly #callTimeoutMs: number;
  #serial = 1;
  #buffered: Buffer[] = [];
  #bufferedBytes = 0;
  #closed: Error | undefined;
  #keepaliveTimer: NodeJS.Timeout | undefined;
  #lastHeard = performance.now();
  #unansweredPings = 0;

  private constructor(socket: Socket, options: ConnectionOptions) {
    this.socketPath = options.socketPath;
    this.#socket = socket;
    this.#callTimeoutMs = options.callTimeoutMs ?? 60_000;
    const keepalive = options.keepalive;
    if (keepalive) this.#keepaliveTimer = setInterval(() => this.#keepaliveTick(keepalive), keepalive.intervalMs).unref();
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', (error) => this.#shutdown(new ConnectionClosedError(`libvirt connection to ${this.socketPath} failed: ${error.message}`)));
    socket.on('close', () => this.#shutdown(new ConnectionClosedError(`libvirt connection to ${this.socketPath} closed`)));
  }

  /** Connects, authenticates (no auth on a root unix socket) and opens the driver URI. */
  static async open(options: ConnectionOptions): Promise<LibvirtConnection> {
    const openTimeoutMs = options.openTimeoutMs ?? options.callTimeoutMs ?? 60_000;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(options.socketPath);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        s.destroy();
        reject(error);
      };
      const timer = setTimeout(() => fail(new ConnectionClosedError(`connecting to libvirtd at ${options.socketPath} took longer than ${openTimeoutMs} ms`)), openTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.off('error', fail);
        resolve(s);
      });
      s.once('error', fail);
    });
    const connection = new LibvirtConnection(socket, options);
    try {
      const auth = new XdrReader(await connection.call(Procedure.AUTH_LIST, Buffer.alloc(0), openTimeoutMs)).array(20, (r) => r.int());
      if (auth.length > 0 && !auth.includes(0)) throw new Error(`libvirtd at ${options.socketPath} requires authentication (types ${auth.join(', ')}); recontext supports none`);
      await connection.call(Procedure.CONNECT_OPEN, new XdrWriter().optional(options.uri ?? 'qemu:///system', (w, v) => w.string(v)).uint(0).toBuffer(), openTimeoutMs);
      return connection;
    } catch (error: unknown) {
      connection.close();
      throw error;
    }
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  onEvent(listener: (callbackId: number, event: DomainEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  onClose(listener: (error: Error) => void): void {
    if (this.#closed) listener(this.#closed);
    else this.#closeListeners.add(listener);
  }

  /** Calls a procedure of the remote program; resolves with the reply body. */
  call(procedure: number, body: Buffer = Buffer.alloc(0), timeoutMs = this.#callTimeoutMs): Promise<Buffer> {
    if (this.#closed) return Promise.reject(this.#closed);
    const serial = this.#serial++;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(serial);
        reject(new Error(`libvirt call ${procedure} to ${this.socketPath} got no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(serial, { resolve, reject, procedure, timer });
      this.#socket.write(encodePacket({ program: REMOTE_PROGRAM, version: REMOTE_PROTOCOL_VERSION, procedure, type: MessageType.Call, serial, status: MessageStatus.Ok }, body));
    });
  }

  /** Closes the driver connection politely, then the socket. */
  async closeGracefully(): Promise<void> {
    if (this.#closed) return;
    await this.call(Procedure.CONNECT_CLOSE, Buffer.alloc(0), 5000).catch(() => undefined);
    this.close();
  }

  close(): void {
    this.#socket.destroy();
    this.#shutdown(new ConnectionClosedError(`libvirt connection to ${this.socketPath} closed by us`));
  }

  #receive(chunk: Buffer): void {
    this.#lastHeard = performance.now();
    this.#unansweredPings = 0;
    this.#buffered.push(chunk);
    this.#bufferedBytes += chunk.length;
    while (this.#bufferedBytes >= 4) {
      const head = this.#buffered.length === 1 ? this.#buffered[0]! : Buffer.concat(this.#buffered);
      this.#buffered = [head];
      const length = head.readUInt32BE(0);
      if (length < 28 || length > MESSAGE_MAX) {
        this.#socket.destroy();
        this.#shutdown(new ConnectionClosedError(`libvirt sent a packet of ${length} bytes; dropping the connection`));
        return;
      }
      if (head.length < length) return;
      const packet = head.subarray(4, length);
      const rest = head.subarray(length);
      this.#buffered = rest.length > 0 ? [rest] : [];
      this.#bufferedBytes = rest.length;
      try {
        this.#dispatch(packet);
      } catch (error: unknown) {
        this.#socket.destroy();
        this.#shutdown(new ConnectionClosedError(`undecodable packet from libvirt: ${error instanceof Error ? error.message : String(error)}`));
        return;
      }
    }
  }

  #dispatch(packet: Buffer): void {
    const { header, body } = decodePacket(packet);
    if (header.program === KEEPALIVE_PROGRAM) {
      if (header.procedure === KEEPALIVE_PING) {
        this.#socket.write(encodePacket({ program: KEEPALIVE_PROGRAM, version: KEEPALIVE_VERSION, procedure: KEEPALIVE_PONG, type: MessageType.Message, serial: 0, status: MessageStatus.Ok }));
      }
      return;
    }
    if (header.program !== REMOTE_PROGRAM) return;
    if (header.type === MessageType.Reply) {
      const pending = this.#pending.get(header.serial);
      if (!pending) return; // a reply after its call timed out
      this.#pending.delete(header.serial);
      clearTimeout(pending.timer);
      if (header.status === MessageStatus.Ok) pending.resolve(body);
      else {
        const error = readRemoteError(new XdrReader(body));
        pending.reject(new LibvirtError(error.code, error.domain, error.message || `libvirt error ${error.code}`, pending.procedure));
      }
    } else if (header.type === MessageType.Message) {
      const decoded = decodeEvent(header.procedure, body);
      if (decoded) for (const listener of this.#eventListeners) listener(decoded.callbackId, decoded.event);
    }
  }

  /** Any bytes from the daemon count as a sign of life; only silence earns a PING. */
  #keepaliveTick({ intervalMs, count }: KeepaliveOptions): void {
    if (performance.now() - this.#lastHeard < intervalMs) return;
    if (this.#unansweredPings >= count) {
      this.#socket.destroy();
      this.#shutdown(new ConnectionClosedError(`libvirtd at ${this.socketPath} answered none of ${count} keepalive pings (silent for ${Math.round(performance.now() - this.#lastHeard)} ms); dropping the connection`));
      return;
    }
    this.#unansweredPings++;
    this.#socket.write(encodePacket({ program: KEEPALIVE_PROGRAM, version: KEEPALIVE_VERSION, procedure: KEEPALIVE_PING, type: MessageType.Message, serial: 0, status: MessageStatus.Ok }));
  }

  #shutdown(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    clearInterval(this.#keepaliveTimer);
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.#pending.clear();
    for (const listener of this.#closeListeners) listener(error);
    this.#closeListeners.clear();
  }
}

export { AffectFlags };
