// The image server: layer images leave the operator over HTTP(S) for platforms that fetch them
// (KubeVirt's CDI imports each into a volume). Every URL is signed: an HMAC over the namespace,
// the image digest and an expiry, so a URL in a DataVolume lets its holder read that one image
// until it expires, and nothing else. Images can carry Secret values; the signature is the
// credential, so URLs are never logged with their query.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { listenOn } from '../runtime/health.js';
import type { Logger } from '../runtime/log.js';
import { hexOf, type LayerImageStore } from './layer-image.js';
import { realClock, type Clock } from '../runtime/clock.js';

export const IMAGE_PATH_PREFIX = '/v1/images/';
/** A signed URL stays valid this long: CDI may retry an import for a while. */
export const DEFAULT_URL_TTL_MS = 7 * 24 * 3600 * 1000;

const HEX_DIGEST = /^[0-9a-f]{64}$/;

export type Verdict = { readonly ok: true; readonly hex: string } | { readonly ok: false; readonly status: 400 | 403 | 404; readonly reason: string };

export class ImageUrlSigner {
  readonly #key: Buffer;
  readonly #baseUrl: string;
  readonly #ttlMs: number;

  /** `baseUrl`: how the platform reaches this server, e.g. http://recontext-images.recontext.svc:8090 */
  constructor(key: Buffer, baseUrl: string, options: { ttlMs?: number } = {}) {
    if (key.length < 16) throw new Error('the image URL signing key must have at least 16 bytes');
    this.#key = key;
    this.#baseUrl = baseUrl.replace(/\/+$/, '');
    this.#ttlMs = options.ttlMs ?? DEFAULT_URL_TTL_MS;
  }

  static randomKey(): Buffer {
    return randomBytes(32);
  }

  url(namespace: string, digest: string, now = Date.now()): string {
    const hex = hexOf(digest);
    const expires = Math.floor((now + this.#ttlMs) / 1000);
    const query = new URLSearchParams({ ns: namespace, exp: String(expires), sig: this.#sign(namespace, hex, expires) });
    return `${this.#baseUrl}${IMAGE_PATH_PREFIX}${hex}.iso?${query.toString()}`;
  }

  /** Pure check of a request target (path + query) against the key and the clock. */
  verify(target: string, now = Date.now()): Verdict {
    const url = new URL(target, 'http://image.invalid');
    if (!url.pathname.startsWith(IMAGE_PATH_PREFIX) || !url.pathname.endsWith('.iso')) return { ok: false, status: 404, reason: 'not an image path' };
    const hex = url.pathname.slice(IMAGE_PATH_PREFIX.length, -'.iso'.length);
    if (!HEX_DIGEST.test(hex)) return { ok: false, status: 400, reason: 'malformed digest' };
    const namespace = url.searchParams.get('ns');
    const expires = Number(url.searchParams.get('exp'));
    const signature = url.searchParams.get('sig') ?? '';
    if (!namespace || !Number.isInteger(expires)) return { ok: false, status: 403, reason: 'unsigned' };
    const expected = Buffer.from(this.#sign(namespace, hex, expires));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, status: 403, reason: 'bad signature' };
    if (expires * 1000 < now) return { ok: false, status: 403, reason: 'expired' };
    return { ok: true, hex };
  }

  #sign(namespace: string, hex: string, expires: number): string {
    return createHmac('sha256', this.#key).update(`recontext-image-v1\n${namespace}\n${hex}\n${expires}`).digest('base64url');
  }
}

export interface ImageServerOptions {
  /** host:port to listen on (":8090" = all interfaces; port 0 picks one). */
  readonly address: string;
  readonly images: Pick<LayerImageStore, 'path'>;
  readonly signer: ImageUrlSigner;
  readonly logger: Logger;
  /** PEM certificate and key: serve HTTPS (CDI then needs the CA in a ConfigMap, see docs/kubevirt.md). */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  readonly clock?: Clock;
}

export interface ImageServer {
  readonly server: Server;
  /** Where it listens, e.g. http://127.0.0.1:8090 (the address, not the public base URL). */
  readonly url: string;
  close(): Promise<void>;
}

export async function startImageServer(options: ImageServerOptions): Promise<ImageServer> {
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    serve(options, request, response).catch((error: unknown) => {
      options.logger.warn('image request failed', { path: pathOnly(request.url), error: error instanceof Error ? error.message : String(error) });
      if (!response.headersSent) response.writeHead(500).end();
      else response.destroy();
    });
  };
  const server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createHttpServer(handler);
  const url = await listenOn(server, options.address, options.tls ? 'https' : 'http');
  return {
    server,
    url,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function serve(options: ImageServerOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  const verdict = options.signer.verify(request.url ?? '/', (options.clock ?? realClock).now());
  if (!verdict.ok) {
    options.logger.info('image request refused', { path: pathOnly(request.url), status: verdict.status, reason: verdict.reason });
    response.writeHead(verdict.status, { 'content-type': 'text/plain' }).end(`${verdict.reason}\n`);
    return;
  }
  const file = options.images.path(`sha256:${verdict.hex}`);
  const size = await stat(file).then(
    (s) => s.size,
    () => undefined,
  );
  if (size === undefined) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('no such image\n');
    return;
  }
  const headers = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: `"${verdict.hex}"`, 'cache-control': 'private, max-age=31536000, immutable' };
  const range = parseRange(request.headers.range, size);
  if (range === 'invalid') {
    response.writeHead(416, { 'content-range': `bytes */${size}` }).end();
    return;
  }
  const [start, end] = range ?? [0, size - 1];
  const length = size === 0 ? 0 : end - start + 1;
  response.writeHead(range ? 206 : 200, { ...headers, 'content-length': String(length), ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}) });
  if (request.method === 'HEAD' || length === 0) {
    response.end();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const stream = createReadStream(file, { start, end });
    stream.once('error', reject);
    response.once('close', () => {
      stream.destroy();
      resolve();
    });
    stream.pipe(response);
  });
}

/** One byte range (what importers such as nbdkit's curl plugin ask for); undefined = whole file. */
export function parseRange(header: string | undefined, size: number): [number, number] | undefined | 'invalid' {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (match[1] === '') {
    start = Math.max(0, size - Number(match[2]));
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return [start, end];
}

function pathOnly(target: string | undefined): string {
  return (target ?? '/').split('?')[0] ?? '/';
}
