// A loopback TCP proxy between a client under test and a server, for network faults: cut()
// drops every connection and refuses new ones (a partition), stall() keeps connections open but
// forwards nothing (a hung peer), heal() restores normal forwarding.
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly #server: Server;
  readonly #pairs = new Set<{ client: Socket; upstream: Socket }>();
  #mode: 'open' | 'cut' | 'stalled' = 'open';
  port = 0;

  private constructor(targetHost: string, targetPort: number) {
    this.#server = createServer((client) => {
      if (this.#mode === 'cut') return void client.destroy();
      const upstream = connect(targetPort, targetHost);
      const pair = { client, upstream };
      this.#pairs.add(pair);
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk) => {
          if (this.#mode === 'open') to.write(chunk);
        });
      forward(client, upstream);
      forward(upstream, client);
      const close = () => {
        this.#pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
  }

  static async start(target: string): Promise<TcpProxy> {
    const url = new URL(target);
    const proxy = new TcpProxy(url.hostname, Number(url.port));
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.#server.address() as { port: number }).port;
    return proxy;
  }

  /** The target URL with the proxy's port instead. */
  url(target: string): string {
    const url = new URL(target);
    url.port = String(this.port);
    return url.toString().replace(/\/$/, '');
  }

  cut(): void {
    this.#mode = 'cut';
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  stall(): void {
    this.#mode = 'stalled';
  }

  heal(): void {
    this.#mode = 'open';
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
