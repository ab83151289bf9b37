// A deduplicating, rate-limited work queue with the semantics of client-go's workqueue:
// - a key is queued at most once however often it is added (dirty set);
// - a key being processed is never handed to a second worker; adds during processing re-queue it
//   once processing is done;
// - addRateLimited delays by an exponential per-key backoff until forget(key), further limited by
//   an overall token bucket, so a storm of failures cannot hot-loop the API server.
import { realClock, type Clock } from './clock.js';

export interface QueueOptions {
  /** First retry delay of a failing key. Default 5 ms. */
  readonly baseDelayMs?: number;
  /** Longest per-key retry delay. Default 1000 s (client-go's). */
  readonly maxDelayMs?: number;
  /** Overall retry rate, tokens per second. Default 10. */
  readonly retriesPerSecond?: number;
  /** Token bucket size. Default 100. */
  readonly retryBurst?: number;
  readonly clock?: Clock;
  readonly metrics?: QueueMetrics;
}

/** Hooks for Prometheus metrics (runtime/metrics.ts), named like client-go's workqueue metrics. */
export interface QueueMetrics {
  depth(value: number): void;
  added(): void;
  retried(): void;
  /** Time a key waited in the queue before a worker took it. */
  queued(seconds: number): void;
  /** Time a worker held the key. */
  worked(seconds: number): void;
}

export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #dirty = new Set<string>();
  readonly #processing = new Map<string, number>();
  readonly #enqueuedAt = new Map<string, number>();
  readonly #failures = new Map<string, number>();
  readonly #delayed = new Map<string, { at: number; cancel(): void }>();
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  readonly #clock: Clock;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #retriesPerSecond: number;
  readonly #retryBurst: number;
  readonly #metrics: QueueMetrics | undefined;
  #tokens: number;
  #tokensAt: number;
  #shuttingDown = false;

  constructor(options: QueueOptions = {}) {
    this.#clock = options.clock ?? realClock;
    this.#baseDelayMs = options.baseDelayMs ?? 5;
    this.#maxDelayMs = options.maxDelayMs ?? 1_000_000;
    this.#retriesPerSecond = options.retriesPerSecond ?? 10;
    this.#retryBurst = options.retryBurst ?? 100;
    if (this.#baseDelayMs <= 0 || this.#maxDelayMs < this.#baseDelayMs) throw new RangeError('need 0 < baseDelayMs <= maxDelayMs');
    if (this.#retriesPerSecond <= 0 || this.#retryBurst < 1) throw new RangeError('need retriesPerSecond > 0 and retryBurst >= 1');
    this.#metrics = options.metrics;
    this.#tokens = this.#retryBurst;
    this.#tokensAt = this.#clock.now();
  }

  get length(): number {
    return this.#queue.length;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#metrics?.added();
    this.#dirty.add(key);
    if (!this.#enqueuedAt.has(key)) this.#enqueuedAt.set(key, this.#clock.now());
    if (this.#processing.has(key)) return; // re-queued by done()
    this.#push(key);
  }

  /** Adds the key after `ms`; an earlier pending addAfter for the same key wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = this.#clock.now() + ms;
    const pending = this.#delayed.get(key);
    if (pending && pending.at <= at) return;
    pending?.cancel();
    const timer = this.#clock.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { at, cancel: timer.cancel });
  }

  /** Re-adds a failed key after its backoff (per key, exponential) and the overall rate limit. */
  addRateLimited(key: string): void {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    this.#metrics?.retried();
    const perKey = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** Math.min(failures, 40));
    this.addAfter(key, Math.max(perKey, this.#bucketDelayMs()));
  }

  /** How often the key has failed since it was last forgotten. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Stops the backoff of a key (call after it succeeded). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** The next key to work on; undefined once the queue is shut down. Call done(key) afterwards. */
  get(): Promise<string | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) return Promise.resolve(this.#take(key));
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  done(key: string): void {
    const startedAt = this.#processing.get(key);
    if (startedAt === undefined) return;
    this.#processing.delete(key);
    this.#metrics?.worked((this.#clock.now() - startedAt) / 1000);
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#push(key);
  }

  shutdown(): void {
    this.#shuttingDown = true;
    for (const pending of this.#delayed.values()) pending.cancel();
    this.#delayed.clear();
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }

  #push(key: string): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(this.#take(key));
    else {
      this.#queue.push(key);
      this.#metrics?.depth(this.#queue.length);
    }
  }

  #take(key: string): string {
    this.#dirty.delete(key);
    this.#processing.set(key, this.#clock.now());
    const enqueued = this.#enqueuedAt.get(key);
    this.#enqueuedAt.delete(key);
    if (enqueued !== undefined) this.#metrics?.queued((this.#clock.now() - enqueued) / 1000);
    this.#metrics?.depth(this.#queue.length);
    return key;
  }

  /** Token bucket: 0 while tokens last, then the time until the next token. */
  #bucketDelayMs(): number {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#retryBurst, this.#tokens + ((now - this.#tokensAt) / 1000) * this.#retriesPerSecond);
    this.#tokensAt = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#retriesPerSecond) * 1000);
  }
}
