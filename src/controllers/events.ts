// Kubernetes Events (events.k8s.io/v1) for notable transitions. Repeats of the same event for the
// same object within the window are counted in a series on the first event, not re-created.
import type { KubeClient } from '../kube/client.js';
import { EVENTS, collectionPath, objectPath } from '../kube/resources.js';
import { realClock, type Clock } from '../runtime/clock.js';
import { errorMessage, type Logger } from '../runtime/log.js';

export interface Regarding {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string };
}

export interface EventRecorderOptions {
  readonly client: KubeClient;
  readonly controller: string;
  readonly instance: string;
  readonly logger: Logger;
  /** Identical events within this window are aggregated. Default 600 000 ms. */
  readonly windowMs?: number;
  readonly clock?: Clock;
}

export class EventRecorder {
  readonly #o: EventRecorderOptions;
  readonly #clock: Clock;
  readonly #recent = new Map<string, { name: string; namespace: string; first: number; count: number }>();

  constructor(options: EventRecorderOptions) {
    this.#o = options;
    this.#clock = options.clock ?? realClock;
  }

  /** Fire and forget: an event that cannot be written is logged, never fails a reconciliation. */
  record(regarding: Regarding, type: 'Normal' | 'Warning', reason: string, note: string, action = reason): void {
    void this.#record(regarding, type, reason, note.slice(0, 1024), action).catch((error: unknown) =>
      this.#o.logger.warn('could not record event', { reason, object: regarding.metadata.name, error: errorMessage(error) }),
    );
  }

  async #record(regarding: Regarding, type: 'Normal' | 'Warning', reason: string, note: string, action: string): Promise<void> {
    const namespace = regarding.metadata.namespace ?? 'default';
    const key = `${namespace}/${regarding.kind}/${regarding.metadata.name}/${type}/${reason}/${note}`;
    const now = this.#clock.now();
    const micro = new Date(now).toISOString().replace('Z', '000Z');
    const seen = this.#recent.get(key);
    if (seen && now - seen.first < (this.#o.windowMs ?? 600_000)) {
      seen.count++;
      await this.#o.client.mergePatch(objectPath(EVENTS, seen.namespace, seen.name), { series: { count: seen.count, lastObservedTime: micro } });
      return;
    }
    const name = `${regarding.metadata.name}.${now.toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
    await this.#o.client.create(collectionPath(EVENTS, namespace), {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name, namespace },
      eventTime: micro,
      reportingController: this.#o.controller,
      reportingInstance: this.#o.instance,
      action,
      reason,
      note,
      type,
      regarding: { apiVersion: regarding.apiVersion, kind: regarding.kind, name: regarding.metadata.name, namespace, ...(regarding.metadata.uid ? { uid: regarding.metadata.uid } : {}) },
    });
    this.#recent.set(key, { name, namespace, first: now, count: 1 });
    if (this.#recent.size > 10_000) this.#recent.delete(this.#recent.keys().next().value!);
  }
}
