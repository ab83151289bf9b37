// A controller: a work queue of object keys and workers that call one Reconciler. Everything
// about retries lives here, in one outcome switch — reconcilers never sleep, loop or retry.
import { realClock, type Clock } from './clock.js';
import { DelayedError, TerminalError } from './errors.js';
import { errorMessage, type Logger } from './log.js';
import type { OperatorMetrics } from './metrics.js';
import { WorkQueue, type QueueOptions } from './queue.js';

export interface Result {
  /** Reconcile this key again after this long even if nothing changes (e.g. a cooldown ends). */
  readonly requeueAfterMs?: number;
}

/**
 * Level-based: given a key (namespace/name), read the current state and converge it. Called
 * again for any change, so it must not depend on which event caused the call. How it ends short
 * of success is one of the kinds of errors.ts: PendingError and BlockedError are called again
 * after their delay, TerminalError not until the object changes; RetryError and any other error
 * are retried with backoff.
 */
export type Reconciler = (key: string, signal: AbortSignal) => Promise<Result | void>;

export interface ControllerOptions {
  readonly name: string;
  readonly reconcile: Reconciler;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  /** Workers reconciling different keys at once. Default DEFAULT_CONCURRENCY. */
  readonly concurrency?: number;
  /** A reconciliation taking longer is aborted and retried. Default 60 000 ms. */
  readonly timeoutMs?: number;
  readonly queue?: Omit<QueueOptions, 'clock' | 'metrics'>;
  readonly clock?: Clock;
}

/** Workers per controller unless told otherwise: the one default of the operator, the CLI and the chart's docs. */
export const DEFAULT_CONCURRENCY = 4;

export class Controller {
  readonly name: string;
  readonly #queue: WorkQueue;
  readonly #reconcile: Reconciler;
  readonly #logger: Logger;
  readonly #metrics: OperatorMetrics;
  readonly #concurrency: number;
  readonly #timeoutMs: number;
  #workers: Promise<void>[] = [];

  constructor(options: ControllerOptions) {
    if (!options.name) throw new TypeError('controller needs a name');
    this.name = options.name;
    this.#concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) throw new RangeError('concurrency must be a positive integer');
    if (this.#timeoutMs <= 0) throw new RangeError('timeoutMs must be positive');
    this.#reconcile = options.reconcile;
    this.#logger = options.logger.child({ controller: options.name });
    this.#metrics = options.metrics;
    this.#queue = new WorkQueue({ ...options.queue, clock: options.clock ?? realClock, metrics: options.metrics.queue(options.name) });
  }

  /** Queue a key for reconciliation (deduplicated). */
  enqueue(key: string): void {
    this.#queue.add(key);
  }

  enqueueAfter(key: string, ms: number): void {
    this.#queue.addAfter(key, ms);
  }

  start(): void {
    if (this.#workers.length > 0) return;
    for (let i = 0; i < this.#concurrency; i++) this.#workers.push(this.#work());
  }

  /** Stops taking keys and waits for running reconciliations to finish. */
  async stop(): Promise<void> {
    this.#queue.shutdown();
    await Promise.all(this.#workers);
    this.#workers = [];
  }

  get queueLength(): number {
    return this.#queue.length;
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.#queue.get();
      if (key === undefined) return;
      try {
        await this.#reconcileOnce(key);
      } finally {
        this.#queue.done(key);
      }
    }
  }

  async #reconcileOnce(key: string): Promise<void> {
    // The deadline cancels: it aborts the signal, and the key stays taken until the reconciler has
    // returned (one key is never reconciled twice at once), however late that is.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new DeadlineError(`reconcile timed out after ${this.#timeoutMs} ms`)), this.#timeoutMs);
    let nagging: NodeJS.Timeout | undefined;
    abort.signal.addEventListener('abort', () => {
      nagging = setInterval(() => this.#logger.warn('a reconcile past its deadline has not returned yet; its key waits for it', { key, timeoutMs: this.#timeoutMs }), this.#timeoutMs);
      nagging.unref();
    });
    const stopTimer = this.#metrics.reconcileDuration.startTimer({ controller: this.name });
    let result: string;
    try {
      const outcome = await this.#reconcile(key, abort.signal);
      // Returning after the deadline is not success: whatever it skipped on abort is done again.
      if (abort.signal.aborted) throw abort.signal.reason;
      this.#queue.forget(key);
      if (outcome?.requeueAfterMs !== undefined) {
        this.#queue.addAfter(key, outcome.requeueAfterMs);
        result = 'requeue';
      } else result = 'success';
    } catch (error: unknown) {
      if (error instanceof DelayedError) {
        // Not a failure of ours: the same delay every time, and the backoff starts over.
        this.#queue.forget(key);
        this.#queue.addAfter(key, error.retryAfterMs);
        this.#logger.debug(error.kind, { key, reason: error.reason, message: error.message, retryAfterMs: error.retryAfterMs });
        result = error.kind;
      } else if (error instanceof TerminalError) {
        this.#queue.forget(key);
        this.#logger.warn('reconcile cannot succeed; not retrying until the object changes', { key, reason: error.reason, error: error.message });
        result = 'terminal';
      } else {
        this.#queue.addRateLimited(key);
        this.#logger.warn('reconcile failed; will retry', { key, error: errorMessage(error), failures: this.#queue.failures(key) });
        result = 'error';
      }
    } finally {
      clearTimeout(timer);
      clearInterval(nagging);
      stopTimer();
    }
    this.#metrics.reconcileTotal.inc({ controller: this.name, result });
  }
}

/** The reason a reconcile's signal aborts when it runs past its deadline. */
export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
}
