// /healthz (the process serves), /readyz (caches synced), /metrics (Prometheus text format).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthServerOptions {
  /** host:port; ":8080" listens on all addresses, "127.0.0.1:0" on a free loopback port. */
  readonly address: string;
  readonly registry: Registry;
  readonly ready: () => boolean;
  /**
   * POST /v1/reports: metric values reported for VMs (MigrationPolicy metric.reported), JSON
   * body as parseReports reads it. Off unless given: the port must then be trusted.
   */
  readonly reports?: (body: string) => number;
}

const MAX_REPORT_BYTES = 64 * 1024;

export async function startHealthServer(options: HealthServerOptions): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return void res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
    if (path === '/readyz') {
      const ready = options.ready();
      return void res.writeHead(ready ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ready ? 'ok\n' : 'caches not synced\n');
    }
    if (path === '/v1/reports' && options.reports) {
      if (req.method !== 'POST') return void res.writeHead(405, { Allow: 'POST' }).end();
      let body = '';
      let tooBig = false;
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > MAX_REPORT_BYTES) tooBig = true;
      });
      req.on('end', () => {
        if (tooBig) return void res.writeHead(413, { 'Content-Type': 'text/plain' }).end(`a report body holds at most ${MAX_REPORT_BYTES} bytes\n`);
        try {
          const accepted = options.reports!(body);
          res.writeHead(200, { 'Content-Type': 'application/json' }).end(`${JSON.stringify({ accepted })}\n`);
        } catch (error: unknown) {
          res.writeHead(400, { 'Content-Type': 'text/plain' }).end(`${error instanceof Error ? error.message : String(error)}\n`);
        }
      });
      return;
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': options.registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
      return;
    }
    res.writeHead(404).end('not found\n');
  });
  const url = await listenOn(server, options.address);
  return { server, url };
}

/** Listens on host:port (":8080" = all addresses, port 0 = any free one); the URL it answers on. */
export async function listenOn(server: Server, address: string, scheme: 'http' | 'https' = 'http'): Promise<string> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '') || undefined;
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid listen address ${address}: expected host:port or :port`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return `${scheme}://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
}
