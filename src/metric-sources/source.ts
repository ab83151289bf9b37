// The contract of a metric source (re-exported by metrics.ts, which most callers import).
import type { Static } from '@sinclair/typebox';
import type { Metric as MetricSchema } from '../crds/migrationpolicy.js';

export type Metric = Static<typeof MetricSchema>;

export interface VMIdentity {
  readonly name: string;
  readonly namespace: string;
}

export interface MetricReading {
  /** When the value was taken, epoch ms. Prometheus: the evaluation time of the instant query. */
  readonly at: number;
  readonly value: number;
}

export type MetricErrorReason =
  /** Connection refused/reset, DNS, an HTTP error without a Prometheus error body. Transient. */
  | 'Unreachable'
  /** No answer within timeoutMs. Transient. */
  | 'Timeout'
  /** An answer that is not the Prometheus API (not JSON, unexpected shape). */
  | 'BadResponse'
  /** Prometheus answered status "error" (bad PromQL, execution error); errorType in the message. */
  | 'QueryError'
  /** The query template cannot be used ({{ vm.uid }}, a placeholder outside quotes). */
  | 'InvalidQuery'
  /** No Prometheus address (neither metric.prometheus.address nor the operator's default), or a metric of the other kind. */
  | 'NotConfigured'
  /** No series / nothing reported for the VM, or the report is stale. */
  | 'NoData'
  /** More than one series: the query does not single out the VM. */
  | 'Ambiguous'
  /** NaN, ±Inf, a string or a histogram where a number was expected. */
  | 'NotANumber';

export class MetricError extends Error {
  override readonly name = 'MetricError';
  constructor(
    readonly reason: MetricErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Worth retrying unchanged at the next sample (the source, not the policy, is at fault). */
  get transient(): boolean {
    return this.reason === 'Unreachable' || this.reason === 'Timeout' || this.reason === 'BadResponse';
  }
}

export interface MetricSource {
  read(metric: Metric, vm: VMIdentity, signal: AbortSignal): Promise<MetricReading>;
}
