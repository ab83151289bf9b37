// A thin Kubernetes REST client: KubeConfig from @kubernetes/client-node for authentication and
// TLS, and node:https for the requests. Thin on purpose: server-side apply to the main and the
// status subresource, raw list/watch with resourceVersion, and 410 Gone must be exact and
// visible here, and every request is counted for the API-cost benchmarks.
import { KubeConfig } from '@kubernetes/client-node';
import { Agent, request, type RequestOptions } from 'node:https';
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { createInterface } from 'node:readline';

/** An error answer of the API server, with its HTTP status and Status reason. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
  get notFound(): boolean {
    return this.status === 404;
  }
  get conflict(): boolean {
    return this.status === 409;
  }
  get gone(): boolean {
    return this.status === 410;
  }
}

export interface WatchEvent<T> {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: T;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestCounter {
  (verb: string, code: number): void;
}

export interface KubeClientOptions {
  readonly kubeConfig: KubeConfig;
  /** Called once per request with the verb and HTTP status (0 for network errors). */
  readonly onRequest?: RequestCounter;
  /** Per-request timeout for non-watch requests. Default 30 000 ms. */
  readonly requestTimeoutMs?: number;
}

export class KubeClient {
  readonly #server: URL;
  readonly #kubeConfig: KubeConfig;
  readonly #onRequest: RequestCounter | undefined;
  readonly #timeoutMs: number;
  #prepared: Promise<{ agent: Agent | HttpAgent; headers: Record<string, string> }> | undefined;
  #preparedAt = 0;

  constructor(options: KubeClientOptions) {
    const cluster = options.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.#server = new URL(cluster.server);
    this.#kubeConfig = options.kubeConfig;
    this.#onRequest = options.onRequest;
    this.#timeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  /** Loads ~/.kube/config, $KUBECONFIG, the in-cluster service account, or the given file. */
  static fromKubeconfig(path?: string, options: Omit<KubeClientOptions, 'kubeConfig'> = {}): KubeClient {
    const kubeConfig = new KubeConfig();
    if (path) kubeConfig.loadFromFile(path);
    else kubeConfig.loadFromDefault();
    return new KubeClient({ ...options, kubeConfig });
  }

  get server(): string {
    return this.#server.toString();
  }

  async get<T>(path: string): Promise<T> {
    return this.#json<T>('GET', path);
  }

  /** GET that answers undefined for 404. */
  async getOrUndefined<T>(path: string): Promise<T | undefined> {
    try {
      return await this.get<T>(path);
    } catch (error: unknown) {
      if (error instanceof ApiError && error.notFound) return undefined;
      throw error;
    }
  }

  async list<T>(path: string, query: Query = {}): Promise<{ items: T[]; metadata: { resourceVersion?: string; continue?: string } }> {
    return this.#json('LIST', path, { query });
  }

  async create<T>(path: string, body: unknown): Promise<T> {
    return this.#json<T>('POST', path, { body });
  }

  async delete(path: string, query: Query = {}): Promise<void> {
    try {
      await this.#json('DELETE', path, { query });
    } catch (error: unknown) {
      if (!(error instanceof ApiError && error.notFound)) throw error;
    }
  }

  /** Server-side apply: the object as this field manager wants it; fields it omits are released. */
  async apply<T>(path: string, body: unknown, fieldManager: string, force = true): Promise<T> {
    return this.#json<T>('PATCH', path, { body, query: { fieldManager, force }, contentType: 'application/apply-patch+yaml' });
  }

  async mergePatch<T>(path: string, body: unknown, query: Query = {}): Promise<T> {
    return this.#json<T>('PATCH', path, { body, query, contentType: 'application/merge-patch+json' });
  }

  async jsonPatch<T>(path: string, operations: unknown[]): Promise<T> {
    return this.#json<T>('PATCH', path, { body: operations, contentType: 'application/json-patch+json' });
  }

  async put<T>(path: string, body: unknown): Promise<T> {
    return this.#json<T>('PUT', path, { body });
  }

  /**
   * Streams watch events until the server closes the stream (resolves) or the signal aborts
   * (resolves too). A non-200 answer rejects with ApiError; an ERROR event is passed on.
   */
  async watch<T>(path: string, query: Query, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    const { agent, headers } = await this.#prepare();
    const url = this.#url(path, { ...query, watch: true });
    return new Promise((resolve, reject) => {
      const req = this.#send(url, { method: 'GET', agent, headers: { ...headers, Accept: 'application/json' }, signal }, (res) => {
        this.#onRequest?.('WATCH', res.statusCode ?? 0);
        if (res.statusCode !== 200) {
          collect(res).then((text) => reject(toApiError(res.statusCode ?? 0, text)), reject);
          return;
        }
        const lines = createInterface({ input: res, crlfDelay: Infinity });
        lines.on('error', () => undefined); // the response's own error handler below decides
        lines.on('line', (line) => {
          if (line.trim() === '') return;
          try {
            onEvent(JSON.parse(line) as WatchEvent<T>);
          } catch (error: unknown) {
            req.destroy(error instanceof Error ? error : new Error(String(error)));
          }
        });
        res.on('close', () => resolve());
        res.on('error', (error) => (signal.aborted ? resolve() : reject(error)));
      });
      req.on('error', (error) => (signal.aborted ? resolve() : reject(error)));
      req.end();
    });
  }

  async #json<T>(verb: string, path: string, options: { query?: Query; body?: unknown; contentType?: string } = {}): Promise<T> {
    const { agent, headers } = await this.#prepare();
    const method = verb === 'LIST' ? 'GET' : verb;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const url = this.#url(path, options.query ?? {});
    const requestHeaders: Record<string, string> = { ...headers, Accept: 'application/json' };
    if (body !== undefined) {
      requestHeaders['Content-Type'] = options.contentType ?? 'application/json';
      requestHeaders['Content-Length'] = String(Buffer.byteLength(body));
    }
    // A timer cleared when the request ends (AbortSignal.timeout's would fire for every request,
    // long after it finished: a burst of requests leaves a burst of wake-ups behind).
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`${verb} ${path}: no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    return new Promise<T>((resolve, reject) => {
      const req = this.#send(url, { method, agent, headers: requestHeaders, signal: abort.signal }, (res) => {
        collect(res).then((text) => {
          const status = res.statusCode ?? 0;
          this.#onRequest?.(verb, status);
          if (status >= 200 && status < 300) resolve((text ? JSON.parse(text) : {}) as T);
          else reject(toApiError(status, text));
        }, reject);
      });
      req.on('error', (error) => {
        this.#onRequest?.(verb, 0);
        reject(error);
      });
      if (body !== undefined) req.write(body);
      req.end();
    }).finally(() => clearTimeout(timer));
  }

  #send(url: URL, options: RequestOptions, onResponse: Parameters<typeof request>[2]) {
    return url.protocol === 'http:' ? httpRequest(url, options, onResponse as never) : request(url, options, onResponse);
  }

  #url(path: string, query: Query): URL {
    const url = new URL(this.#server.pathname.replace(/\/$/, '') + path, this.#server);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
    return url;
  }

  /**
   * The agent (TLS material) is made once; auth headers are re-read from the kubeconfig at most
   * a minute apart, because in-cluster service-account tokens are projected files the kubelet
   * rotates (client-node's KubeConfig reads the current token when asked).
   */
  async #prepare(): Promise<{ agent: Agent | HttpAgent; headers: Record<string, string> }> {
    const now = Date.now();
    if (!this.#prepared || now - this.#preparedAt > HEADER_REFRESH_MS) {
      this.#preparedAt = now;
      const previous = this.#prepared;
      this.#prepared = (async () => {
        const options: { headers?: Record<string, string>; agent?: Agent; auth?: string } = {};
        await this.#kubeConfig.applyToHTTPSOptions(options as never);
        const agentOptions = (options.agent as unknown as { options?: object } | undefined)?.options ?? {};
        const agent =
          (await previous?.catch(() => undefined))?.agent ??
          (this.#server.protocol === 'http:' ? new HttpAgent({ keepAlive: true }) : new Agent({ ...agentOptions, keepAlive: true, maxSockets: 64 }));
        const headers: Record<string, string> = { ...(options.headers ?? {}) };
        if (options.auth) headers.Authorization = `Basic ${Buffer.from(options.auth).toString('base64')}`;
        return { agent, headers };
      })();
    }
    return this.#prepared;
  }
}

const HEADER_REFRESH_MS = 60_000;

function collect(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.on('error', reject);
  });
}

function toApiError(status: number, text: string): ApiError {
  try {
    const parsed = JSON.parse(text) as { reason?: string; message?: string; details?: unknown };
    return new ApiError(status, parsed.reason ?? 'Unknown', parsed.message ?? text, parsed.details);
  } catch {
    return new ApiError(status, 'Unknown', text.slice(0, 500) || `HTTP ${status}`);
  }
}
