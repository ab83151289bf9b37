// List+watch of one resource into a cache, with the robustness client-node's informer lacks (it
// stops on any error but 410 and can stall silently): resourceVersion bookkeeping, relist on 410 Gone (with deletes for objects that
// vanished meanwhile), restart with jittered backoff on any error, a watchdog that restarts a
// watch that went silent (bookmarks are requested, so silence means a stalled connection), and a
// periodic resync that re-announces every cached object.
import { ApiError, type KubeClient, type WatchEvent } from '../kube/client.js';
import { collectionPath, keyOf, type ResourceRef } from '../kube/resources.js';
import { jitteredBackoffMs, realClock, sleep, type Clock } from './clock.js';
import { errorMessage, type Logger } from './log.js';
import type { OperatorMetrics } from './metrics.js';

export interface ObjectMeta {
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; generation?: number; labels?: Record<string, string> };
}

export type InformerEvent = 'add' | 'update' | 'delete' | 'resync';
/** `previous` is the cached object an update replaces (undefined for add, delete and resync). */
export type InformerHandler<T> = (event: InformerEvent, object: T, previous?: T) => void;

export interface InformerOptions {
  readonly client: KubeClient;
  readonly resource: ResourceRef;
  /** Watch one namespace; all namespaces when unset. */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  /** Re-announce every cached object this often. Default 600 000 ms. */
  readonly resyncMs?: number;
  /** Ask the server to end each watch after about this long (jittered). Default 300 s. */
  readonly watchTimeoutSec?: number;
  /** Restart a watch that delivered nothing (not even a bookmark) for this long. Default DEFAULT_WATCHDOG_MS (90 s). */
  readonly watchdogMs?: number;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  readonly clock?: Clock;
}

export const DEFAULT_WATCHDOG_MS = 90_000;

export class Informer<T extends ObjectMeta> {
  readonly resource: ResourceRef;
  readonly #options: InformerOptions;
  readonly #cache = new Map<string, T>();
  readonly #handlers: InformerHandler<T>[] = [];
  readonly #clock: Clock;
  readonly #logger: Logger;
  #resourceVersion: string | undefined;
  #synced = false;
  #syncWaiters: (() => void)[] = [];
  #loop: Promise<void> | undefined;

  constructor(options: InformerOptions) {
    this.resource = options.resource;
    this.#options = options;
    this.#clock = options.clock ?? realClock;
    this.#logger = options.logger.child({ resource: options.resource.plural });
  }

  onEvent(handler: InformerHandler<T>): void {
    this.#handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** Resolves once the first list has filled the cache. */
  waitForSync(): Promise<void> {
    return this.#synced ? Promise.resolve() : new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  start(signal: AbortSignal): void {
    this.#loop ??= this.#run(signal);
  }

  /** Resolves when the loop has ended after its signal aborted. */
  async stopped(): Promise<void> {
    await this.#loop;
  }

  async #run(signal: AbortSignal): Promise<void> {
    const resync = this.#scheduleResync(signal);
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (this.#resourceVersion === undefined) await this.#relist();
        const outcome = await this.#watchOnce(signal);
        failures = 0;
        if (outcome !== 'closed') this.#options.metrics.watchRestarts.inc({ resource: this.resource.plural, reason: outcome });
      } catch (error: unknown) {
        if (signal.aborted) break;
        if (error instanceof ApiError && error.gone) {
          this.#resourceVersion = undefined;
          this.#options.metrics.watchRestarts.inc({ resource: this.resource.plural, reason: 'gone' });
          continue;
        }
        failures++;
        const delay = jitteredBackoffMs(failures, this.#options.backoffBaseMs ?? 500, this.#options.backoffMaxMs ?? 30_000);
        this.#options.metrics.watchRestarts.inc({ resource: this.resource.plural, reason: 'error' });
        this.#logger.warn('list/watch failed; retrying', { error: errorMessage(error), failures, retryInMs: delay });
        await sleep(this.#clock, delay, signal).catch(() => undefined);
      }
    }
    resync.cancel();
  }

  /** Full list: replaces the cache and announces the differences, deletions included. */
  async #relist(): Promise<void> {
    const items: T[] = [];
    let resourceVersion: string | undefined;
    let continueToken: string | undefined;
    do {
      const page = await this.#options.client.list<T>(collectionPath(this.resource, this.#options.namespace), {
        labelSelector: this.#options.labelSelector,
        limit: 500,
        continue: continueToken,
      });
      items.push(...page.items.map((item) => this.#withTypeMeta(item)));
      resourceVersion = page.metadata.resourceVersion;
      continueToken = page.metadata.continue || undefined;
    } while (continueToken);
    const seen = new Set<string>();
    for (const item of items) {
      const key = keyOf(item);
      seen.add(key);
      const old = this.#cache.get(key);
      this.#cache.set(key, item);
      if (!old) this.#emit('add', item);
      else if (old.metadata.resourceVersion !== item.metadata.resourceVersion) this.#emit('update', item, old);
    }
    for (const [key, old] of this.#cache) {
      if (!seen.has(key)) {
        this.#cache.delete(key);
        this.#emit('delete', old);
      }
    }
    this.#resourceVersion = resourceVersion;
    if (!this.#synced) {
      this.#synced = true;
      for (const waiter of this.#syncWaiters.splice(0)) waiter();
    }
  }

  /** One watch request; how it ended: closed by the server, went silent, or asked us to relist. */
  async #watchOnce(signal: AbortSignal): Promise<'closed' | 'silent' | 'gone'> {
    const watchAbort = new AbortController();
    const onOuterAbort = () => watchAbort.abort();
    signal.addEventListener('abort', onOuterAbort, { once: true });
    let ending: 'closed' | 'silent' | 'gone' = 'closed';
    const watchdogMs = this.#options.watchdogMs ?? DEFAULT_WATCHDOG_MS;
    let watchdog = this.#clock.setTimeout(() => bark(), watchdogMs);
    const bark = () => {
      ending = 'silent';
      this.#logger.warn('watch went silent; restarting it', { silentForMs: watchdogMs });
      watchAbort.abort();
    };
    const timeoutSec = Math.round((this.#options.watchTimeoutSec ?? 300) * (1 + Math.random()));
    try {
      await this.#options.client.watch<T>(
        collectionPath(this.resource, this.#options.namespace),
        { resourceVersion: this.#resourceVersion, allowWatchBookmarks: true, timeoutSeconds: timeoutSec, labelSelector: this.#options.labelSelector },
        (event) => {
          watchdog.cancel();
          watchdog = this.#clock.setTimeout(() => bark(), watchdogMs);
          if (this.#apply(event) === 'gone') {
            ending = 'gone';
            watchAbort.abort();
          }
        },
        watchAbort.signal,
      );
    } finally {
      watchdog.cancel();
      signal.removeEventListener('abort', onOuterAbort);
    }
    return ending;
  }

  #apply(event: WatchEvent<T>): 'gone' | undefined {
    if (event.type === 'ERROR') {
      // 410 Gone is the usual one; others exist too (a 500 "PrevKv=nil" when resuming right at
      // the compaction point). Resuming from the same resourceVersion would fail the same way,
      // so any error event relists, as client-go's reflector does.
      const status = event.object as unknown as { code?: number; message?: string };
      if (status.code !== 410) this.#logger.warn('watch ended with an error event; relisting', { code: status.code, error: status.message });
      this.#resourceVersion = undefined;
      return 'gone';
    }
    const object = this.#withTypeMeta(event.object);
    if (object.metadata?.resourceVersion) this.#resourceVersion = object.metadata.resourceVersion;
    if (event.type === 'BOOKMARK') return undefined;
    const key = keyOf(object);
    if (event.type === 'DELETED') {
      this.#cache.delete(key);
      this.#emit('delete', object);
    } else {
      const previous = this.#cache.get(key);
      this.#cache.set(key, object);
      this.#emit(previous ? 'update' : 'add', object, previous);
    }
    return undefined;
  }

  /** List items come without apiVersion/kind; put them back so objects look the same from both paths. */
  #withTypeMeta(object: T): T {
    const typed = object as T & { apiVersion?: string; kind?: string };
    if (typed.kind) return object;
    return { apiVersion: this.resource.group ? `${this.resource.group}/${this.resource.version}` : this.resource.version, kind: this.resource.kind, ...object };
  }

  #emit(event: InformerEvent, object: T, previous?: T): void {
    for (const handler of this.#handlers) {
      try {
        handler(event, object, previous);
      } catch (error: unknown) {
        this.#logger.error('event handler failed', { event, key: keyOf(object), error: errorMessage(error) });
      }
    }
  }

  #scheduleResync(signal: AbortSignal): { cancel(): void } {
    const every = this.#options.resyncMs ?? 600_000;
    let timer: { cancel(): void } | undefined;
    const tick = () => {
      if (signal.aborted) return;
      for (const object of this.#cache.values()) this.#emit('resync', object);
      timer = this.#clock.setTimeout(tick, every);
    };
    timer = this.#clock.setTimeout(tick, every);
    return { cancel: () => timer?.cancel() };
  }
}
