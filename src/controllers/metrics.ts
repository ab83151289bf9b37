// The operator's Prometheus metrics, in one registry. Names follow Prometheus conventions:
// recontext_ prefix, base units (seconds, bytes), _total for counters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueMetrics } from './queue.js';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: 'recontext_controller_reconcile_total',
    help: 'Reconciliations by controller and result (success, requeue, waiting, error, terminal).',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'recontext_controller_reconcile_duration_seconds',
    help: 'Time spent in one reconciliation.',
    labelNames: ['controller'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'recontext_workqueue_depth', help: 'Keys waiting in the work queue.', labelNames: ['name'] as const, registers: [this.registry] });
  readonly queueAdds = new Counter({ name: 'recontext_workqueue_adds_total', help: 'Keys added to the work queue.', labelNames: ['name'] as const, registers: [this.registry] });
  readonly queueRetries = new Counter({ name: 'recontext_workqueue_retries_total', help: 'Rate-limited re-adds after failures.', labelNames: ['name'] as const, registers: [this.registry] });
  readonly queueLatency = new Histogram({
    name: 'recontext_workqueue_queue_duration_seconds',
    help: 'Time a key waited in the queue before a worker took it.',
    labelNames: ['name'] as const,
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
    registers: [this.registry],
  });
  readonly queueWork = new Histogram({
    name: 'recontext_workqueue_work_duration_seconds',
    help: 'Time a worker held a key.',
    labelNames: ['name'] as const,
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 60],
    registers: [this.registry],
  });
  readonly watchRestarts = new Counter({
    name: 'recontext_watch_restarts_total',
    help: 'Watch restarts by resource and reason (error, gone, silent, closed).',
    labelNames: ['resource', 'reason'] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({ name: 'recontext_leader', help: '1 while this replica holds the leader lease.', registers: [this.registry] });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'recontext_' });
  }

  queue(name: string): QueueMetrics {
    return {
      depth: (value) => this.queueDepth.set({ name }, value),
      added: () => this.queueAdds.inc({ name }),
      retried: () => this.queueRetries.inc({ name }),
      queued: (seconds) => this.queueLatency.observe({ name }, seconds),
      worked: (seconds) => this.queueWork.observe({ name }, seconds),
    };
  }
}
