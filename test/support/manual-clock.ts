// A manual clock for unit tests of time-dependent code (not exported from the package).
import type { Clock } from '../../src/runtime/clock.js';

export class ManualClock implements Clock {
  #now = 0;
  #timers: { at: number; callback: () => void; cancelled: boolean }[] = [];

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): { cancel(): void } {
    const timer = { at: this.#now + ms, callback, cancelled: false };
    this.#timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => !t.cancelled && t.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#now = due.at;
      due.cancelled = true;
      due.callback();
    }
    this.#now = target;
    this.#timers = this.#timers.filter((t) => !t.cancelled);
  }

  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }
}
