// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: optimistic updates
// (resourceVersion), expiry judged by when *we* last saw the record change (no trust in clock
// agreement between replicas), renew every retryPeriod, step down when renewing fails for
// renewDeadline, release the lease on a clean shutdown so the next replica need not wait.
import { ApiError, type KubeClient } from '../kube/client.js';
import { LEASES, collectionPath, objectPath } from '../kube/resources.js';
import { realClock, sleep, type Clock } from './clock.js';
import { errorMessage, type Logger } from './log.js';

export interface LeaderElectionOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly leaseName: string;
  /** Unique per replica, e.g. pod name + random suffix. */
  readonly identity: string;
  /** Default LEADER_ELECTION_DEFAULTS.leaseDurationMs (15 s). */
  readonly leaseDurationMs?: number;
  /** Default LEADER_ELECTION_DEFAULTS.renewDeadlineMs (10 s); must be < leaseDurationMs. */
  readonly renewDeadlineMs?: number;
  /** Default LEADER_ELECTION_DEFAULTS.retryPeriodMs (2 s); must be < renewDeadlineMs. */
  readonly retryPeriodMs?: number;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly onChange?: (leading: boolean) => void;
}

/** client-go's leader election defaults; the CLI's flags show and use these. */
export const LEADER_ELECTION_DEFAULTS = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 } as const;

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

export class LeaderElector {
  readonly #o: Required<Omit<LeaderElectionOptions, 'onChange' | 'clock'>> & Pick<LeaderElectionOptions, 'onChange'>;
  readonly #clock: Clock;
  #observed: { record: string; at: number } | undefined;
  #leading = false;
  #lastRenew = 0;

  constructor(options: LeaderElectionOptions) {
    this.#o = { ...LEADER_ELECTION_DEFAULTS, ...options };
    this.#clock = options.clock ?? realClock;
    if (!(this.#o.retryPeriodMs < this.#o.renewDeadlineMs && this.#o.renewDeadlineMs < this.#o.leaseDurationMs)) {
      throw new RangeError('need retryPeriodMs < renewDeadlineMs < leaseDurationMs');
    }
    if (!options.identity) throw new TypeError('leader election needs an identity');
  }

  get leading(): boolean {
    return this.#leading;
  }

  /**
   * Campaigns and renews until the signal aborts. Resolves after releasing the lease (if held).
   * Leadership changes are reported through onChange.
   */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let acquired = false;
      try {
        acquired = await this.#tryAcquireOrRenew();
      } catch (error: unknown) {
        this.#o.logger.warn('lease update failed', { lease: this.#o.leaseName, error: errorMessage(error) });
      }
      const now = this.#clock.now();
      if (acquired) {
        this.#lastRenew = now;
        this.#set(true);
      } else if (this.#leading && now - this.#lastRenew >= this.#o.renewDeadlineMs) {
        this.#o.logger.error('could not renew the lease in time; stepping down', { lease: this.#o.leaseName });
        this.#set(false);
      }
      await sleep(this.#clock, this.#o.retryPeriodMs, signal).catch(() => undefined);
    }
    if (this.#leading) await this.#release();
    this.#set(false);
  }

  #set(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    this.#o.logger.info(leading ? 'became leader' : 'stopped leading', { lease: this.#o.leaseName, identity: this.#o.identity });
    this.#o.onChange?.(leading);
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, leaseName, identity } = this.#o;
    const path = objectPath(LEASES, namespace, leaseName);
    const now = new Date(this.#clock.now()).toISOString().replace('Z', '000Z'); // MicroTime
    const durationSec = Math.ceil(this.#o.leaseDurationMs / 1000);
    const current = await client.getOrUndefined<Lease>(path);
    if (!current) {
      await client.create(collectionPath(LEASES, namespace), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: leaseName, namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds: durationSec, acquireTime: now, renewTime: now, leaseTransitions: 0 },
      });
      return true;
    }
    const record = `${current.spec.holderIdentity ?? ''}|${current.spec.renewTime ?? ''}`;
    if (this.#observed?.record !== record) this.#observed = { record, at: this.#clock.now() };
    const holder = current.spec.holderIdentity ?? '';
    const heldByOther = holder !== '' && holder !== identity;
    const expired = this.#clock.now() - this.#observed.at > (current.spec.leaseDurationSeconds ?? durationSec) * 1000;
    if (heldByOther && !expired) return false;
    const spec = {
      ...current.spec,
      holderIdentity: identity,
      leaseDurationSeconds: durationSec,
      renewTime: now,
      ...(holder === identity ? {} : { acquireTime: now, leaseTransitions: (current.spec.leaseTransitions ?? 0) + 1 }),
    };
    try {
      await client.put(path, { ...current, spec });
      return true;
    } catch (error: unknown) {
      if (error instanceof ApiError && error.conflict) return false; // someone else won this round
      throw error;
    }
  }

  async #release(): Promise<void> {
    const path = objectPath(LEASES, this.#o.namespace, this.#o.leaseName);
    try {
      const current = await this.#o.client.getOrUndefined<Lease>(path);
      if (current?.spec.holderIdentity !== this.#o.identity) return;
      await this.#o.client.put(path, { ...current, spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1 } });
      this.#o.logger.info('released the lease', { lease: this.#o.leaseName });
    } catch (error: unknown) {
      this.#o.logger.warn('could not release the lease', { error: errorMessage(error) });
    }
  }
}
