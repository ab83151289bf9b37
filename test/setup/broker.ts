// A loopback HTTP broker through which test files (vitest worker processes) reach one resource
// the global setup owns: the first POST starts it, every POST answers its description as JSON,
// and close() stops it. The URL carries a random secret; it is passed by project.provide().
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { listenOn } from '../../src/runtime/health.js';

export interface LazyBroker {
  readonly url: string;
  /** Stops the broker and, if it was started, the resource. */
  close(): Promise<void>;
}

export async function startLazyBroker<T>(options: {
  start: () => Promise<T>;
  describe: (resource: T) => unknown;
  stop: (resource: T) => Promise<void>;
  /** The text a failed start answers with (HTTP 500). */
  errorText?: (error: unknown) => string;
}): Promise<LazyBroker> {
  let shared: Promise<T> | undefined;
  const secret = randomBytes(16).toString('hex');
  const errorText = options.errorText ?? ((error: unknown) => (error instanceof Error ? error.message : String(error)));
  const server = createServer((request, response) => {
    if (request.method !== 'POST' || request.url !== `/${secret}/shared`) {
      response.writeHead(404).end();
      return;
    }
    shared ??= options.start();
    shared.then(
      (resource) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(options.describe(resource))),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(errorText(error)),
    );
  });
  const port = new URL(await listenOn(server, '127.0.0.1:0')).port;
  return {
    url: `http://127.0.0.1:${port}/${secret}/shared`,
    close: async () => {
      server.close();
      const resource = await shared?.catch(() => undefined);
      if (resource !== undefined) await options.stop(resource);
    },
  };
}
