// The operator's Prometheus metrics, in one registry. Names follow Prometheus conventions:
// recontext_ prefix, base units (seconds, bytes), _total for counters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueMetrics } from './queue.js';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: 'recontext_controller_reconcile_total',
    help: 'Reconciliations by controller and result (success, requeue, pending, blocked, error, terminal).',
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
  readonly recontextDuration = new Histogram({
    name: 'recontext_recontext_duration_seconds',
    help: 'Time from noticing a change (migration, node or layer change) to the new images being attached.',
    labelNames: ['trigger', 'driver'] as const,
    // Up to 2 min: on KubeVirt the attach phase waits for CDI imports and volume readiness.
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly recontextPhase = new Histogram({
    name: 'recontext_recontext_phase_duration_seconds',
    help: "Duration of each of the paper's four phases (resolve, detach, build, attach), and of releasing the replaced images afterwards (release).",
    labelNames: ['phase', 'driver'] as const,
    // Up to 60 s like attach steps: KubeVirt's attach phase is their sum and often exceeds 5 s.
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly attachStep = new Histogram({
    name: 'recontext_attach_step_duration_seconds',
    help: 'Steps of the attach phase for drivers that have several (KubeVirt: import, apply, ready).',
    labelNames: ['step', 'driver'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly sinceMigration = new Histogram({
    name: 'recontext_migration_to_volume_seconds',
    help: "From a migration's completion (the platform's timestamp) to the re-rendered volumes being in the VM's spec (stage=volumeInSpec) and reported ready (stage=volumeReady).",
    labelNames: ['stage', 'driver'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly policyDecisions = new Counter({
    name: 'recontext_policy_decisions_total',
    help: 'MigrationPolicy decisions by policy type and action (stay, migrate, hold, sleep).',
    labelNames: ['policy_type', 'action'] as const,
    registers: [this.registry],
  });
  readonly policyMigrations = new Counter({
    name: 'recontext_policy_migrations_total',
    help: 'Migrations MigrationPolicies asked for, by result (requested, succeeded, failed, impossible, dry_run).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly recontextFailures = new Counter({
    name: 'recontext_recontext_failures_total',
    help: 'VMContexts that could not be converged, by condition reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly imageBuilds = new Counter({ name: 'recontext_image_builds_total', help: 'Layer images built (not found in the store).', registers: [this.registry] });
  readonly imageBuildBytes = new Counter({ name: 'recontext_image_build_bytes_total', help: 'Bytes of layer images built.', registers: [this.registry] });
  readonly kubeRequests = new Counter({
    name: 'recontext_kube_requests_total',
    help: 'Requests to the Kubernetes API by verb and HTTP status code (0: no answer).',
    labelNames: ['verb', 'code'] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({ name: 'recontext_leader', help: 'Whether this replica reconciles (1: it holds the leader lease, or runs without leader election) or stands by (0).', registers: [this.registry] });

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
