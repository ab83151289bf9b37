import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../test/support/manual-clock.js';
import { WorkQueue } from './queue.js';

const drain = async (queue: WorkQueue) => {
  const keys: string[] = [];
  while (queue.length > 0) {
    const key = (await queue.get())!;
    keys.push(key);
    queue.done(key);
  }
  return keys;
};

describe('WorkQueue', () => {
  it('deduplicates keys that are waiting', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.add('a');
    expect(await drain(queue)).toEqual(['a', 'b']);
  });

  it('never hands a key to two workers; an add during processing re-queues it once after done', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    const key = await queue.get();
    queue.add('a');
    queue.add('a');
    expect(queue.length).toBe(0);
    queue.done(key!);
    expect(queue.length).toBe(1);
    expect(await drain(queue)).toEqual(['a']);
  });

  it('wakes a waiting worker', async () => {
    const queue = new WorkQueue();
    const next = queue.get();
    queue.add('x');
    expect(await next).toBe('x');
  });

  it('backs off exponentially per key until forgotten', async () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ clock, baseDelayMs: 10, maxDelayMs: 100 });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = clock.now();
      queue.addRateLimited('k');
      for (let waited = 0; queue.length === 0 && waited < 1000; waited++) clock.advance(1);
      delays.push(clock.now() - before);
      queue.done((await queue.get())!);
    }
    expect(delays).toEqual([10, 20, 40, 80, 100, 100]);
    expect(queue.failures('k')).toBe(6);
    queue.forget('k');
    expect(queue.failures('k')).toBe(0);
  });

  it('limits the overall retry rate with a token bucket', () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ clock, baseDelayMs: 1, retriesPerSecond: 10, retryBurst: 2 });
    for (const key of ['a', 'b', 'c', 'd']) queue.addRateLimited(key);
    clock.advance(1);
    expect(queue.length).toBe(2); // the burst
    clock.advance(100);
    expect(queue.length).toBe(3);
    clock.advance(100);
    expect(queue.length).toBe(4);
  });

  it('keeps the earliest of several addAfter calls', () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ clock });
    queue.addAfter('k', 1000);
    queue.addAfter('k', 100);
    queue.addAfter('k', 5000);
    clock.advance(100);
    expect(queue.length).toBe(1);
    clock.advance(10_000);
    expect(queue.length).toBe(1);
  });

  it('releases waiting workers on shutdown and drops later adds', async () => {
    const clock = new ManualClock();
    const queue = new WorkQueue({ clock });
    const waiting = queue.get();
    queue.addAfter('later', 50);
    queue.shutdown();
    expect(await waiting).toBeUndefined();
    queue.add('x');
    expect(queue.length).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('rejects nonsensical options', () => {
    expect(() => new WorkQueue({ baseDelayMs: 0 })).toThrow(RangeError);
    expect(() => new WorkQueue({ retriesPerSecond: 0 })).toThrow(RangeError);
  });
});
