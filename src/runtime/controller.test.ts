import { describe, expect, it } from 'vitest';
import { Controller, type Reconciler } from './controller.js';
import { BlockedError, PendingError, RetryError, TerminalError } from './errors.js';
import { createLogger } from './log.js';
import { OperatorMetrics } from './metrics.js';

const quiet = createLogger({ write: () => {} });

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 2));
  }
}

function make(reconcile: Reconciler, options: { timeoutMs?: number; concurrency?: number } = {}) {
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const controller = new Controller({ name: 'test', reconcile, logger: quiet, metrics, queue: { baseDelayMs: 1, maxDelayMs: 20 }, ...options });
  const results = async () => Object.fromEntries((await metrics.reconcileTotal.get()).values.map((v) => [v.labels.result, v.value]));
  return { controller, metrics, results };
}

describe('Controller', () => {
  it('retries failures with backoff until they succeed, then forgets', async () => {
    let calls = 0;
    const { controller, results } = make(async () => {
      if (++calls < 3) throw new Error('flaky');
    });
    controller.start();
    controller.enqueue('ns/a');
    await until(() => calls === 3);
    await controller.stop();
    expect(await results()).toEqual({ error: 2, success: 1 });
  });

  it('does not retry terminal errors', async () => {
    let calls = 0;
    const { controller, results } = make(async () => {
      calls++;
      throw new TerminalError('TemplateError', 'bad spec');
    });
    controller.start();
    controller.enqueue('ns/a');
    await until(() => calls === 1);
    await new Promise((r) => setTimeout(r, 30));
    await controller.stop();
    expect(calls).toBe(1);
    expect(await results()).toEqual({ terminal: 1 });
  });

  it('treats pending and blocked as no failure: again after their delay every time, the backoff does not grow', async () => {
    for (const pendingOrBlocked of [(n: number) => new PendingError('VMNotRunning', `vm starting (${n})`, 15), (n: number) => new BlockedError('NoFreeDrive', `add a drive (${n})`, 15)]) {
      const seen: number[] = [];
      const { controller, results } = make(async () => {
        seen.push(performance.now());
        if (seen.length <= 4) throw pendingOrBlocked(seen.length);
      });
      controller.start();
      controller.enqueue('ns/a');
      await until(() => seen.length === 5);
      await controller.stop();
      const gaps = seen.slice(1).map((t, i) => t - seen[i]!);
      // A failure's backoff would double each time (1, 2, 4, 8 ms here); these stay at the delay.
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(13);
      expect(Math.max(...gaps)).toBeLessThan(15 * 4);
      const kind = pendingOrBlocked(0).kind;
      expect(await results()).toEqual({ [kind]: 4, success: 1 });
    }
  });

  it('retries a RetryError with the growing backoff, like any failure', async () => {
    const seen: number[] = [];
    const { controller, results } = make(async () => {
      seen.push(performance.now());
      if (seen.length <= 5) throw new RetryError('HostUnavailable', 'host h1 unreachable');
    });
    controller.start();
    controller.enqueue('ns/a');
    await until(() => seen.length === 6);
    await controller.stop();
    expect(await results()).toEqual({ error: 5, success: 1 });
    // Backoff 1, 2, 4, 8, 16 ms (timers may fire late, never early): the last wait is the longest.
    const gaps = seen.slice(1).map((t, i) => t - seen[i]!);
    expect(gaps.at(-1)!).toBeGreaterThanOrEqual(15);
  });

  it('requeues after the requested time', async () => {
    let calls = 0;
    const { controller, results } = make(async () => (++calls === 1 ? { requeueAfterMs: 10 } : {}));
    controller.start();
    controller.enqueue('ns/a');
    await until(() => calls === 2);
    await controller.stop();
    expect(await results()).toEqual({ requeue: 1, success: 1 });
  });

  it('aborts a reconciliation past its deadline, and does not reconcile its key again until it has returned', async () => {
    const events: string[] = [];
    let running = 0;
    let overlap = false;
    const { controller, results } = make(
      async (_key, signal) => {
        const call = events.filter((e) => e.startsWith('start')).length + 1;
        events.push(`start ${call}`);
        if (++running > 1) overlap = true;
        try {
          if (call > 1) return;
          // The first call notices the abort, then takes a while to wind down (as a driver call that
          // must finish cleanly does): the retry must wait for it, not run beside it.
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          events.push(`aborted 1: ${(signal.reason as Error).name}`);
          await new Promise((resolve) => setTimeout(resolve, 60));
          throw signal.reason;
        } finally {
          running--;
          events.push(`return ${call}`);
        }
      },
      { timeoutMs: 20 },
    );
    controller.start();
    controller.enqueue('ns/a');
    await until(() => events.includes('return 2'));
    await controller.stop();
    expect(overlap).toBe(false);
    expect(events).toEqual(['start 1', 'aborted 1: DeadlineError', 'return 1', 'start 2', 'return 2']);
    expect(await results()).toEqual({ error: 1, success: 1 });
  });

  it('counts a reconciliation that ignores the abort and returns late as failed, and retries it', async () => {
    let calls = 0;
    const { controller, results } = make(
      async () => {
        if (++calls === 1) await new Promise((resolve) => setTimeout(resolve, 50)); // past the 20 ms deadline
      },
      { timeoutMs: 20 },
    );
    controller.start();
    controller.enqueue('ns/a');
    await until(() => calls === 2);
    await controller.stop();
    expect(await results()).toEqual({ error: 1, success: 1 });
  });

  it('reconciles different keys concurrently but one key never twice at once', async () => {
    let running = 0;
    let maxRunning = 0;
    const perKey = new Map<string, number>();
    let overlapSameKey = false;
    const { controller } = make(
      async (key) => {
        running++;
        perKey.set(key, (perKey.get(key) ?? 0) + 1);
        if (perKey.get(key)! > 1) overlapSameKey = true;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 10));
        perKey.set(key, perKey.get(key)! - 1);
        running--;
      },
      { concurrency: 3 },
    );
    controller.start();
    for (let i = 0; i < 5; i++) for (const key of ['a', 'b', 'c']) controller.enqueue(key);
    await until(() => controller.queueLength === 0 && running === 0);
    await controller.stop();
    expect(maxRunning).toBe(3);
    expect(overlapSameKey).toBe(false);
  });
});
