// Where a KubeVirt VM runs, read from its VirtualMachineInstance and the Node: status.nodeName,
// status.migrationState (completed, not failed → its migrationUid), and the node's labels. Both
// drivers that look at KubeVirt VMs (kubevirt, none) keep the VMIs in an informer and the nodes'
// labels in a NodeLabelCache: observing a VM costs no request.
import type { V1VirtualMachineInstance } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { ObjectMeta } from '../../runtime/informer.js';
import { ApiError, type KubeClient } from '../../kube/client.js';
import { NODES, objectPath, type ResourceRef } from '../../kube/resources.js';
import { PlatformUnavailableError, VMConfigurationError, type ObservedVM } from '../driver.js';
import { realClock, type Clock } from '../../runtime/clock.js';

export const KUBEVIRT_GROUP = 'kubevirt.io';
export const KUBEVIRT_VERSION = 'v1';
export const VIRTUAL_MACHINE_INSTANCES: ResourceRef = { group: KUBEVIRT_GROUP, version: KUBEVIRT_VERSION, plural: 'virtualmachineinstances', kind: 'VirtualMachineInstance', namespaced: true };

export type Vmi = V1VirtualMachineInstance & ObjectMeta;

/** Pure: the observation a VMI (and its node's labels) amounts to. */
export function observationOf(vmi: V1VirtualMachineInstance, nodeLabels: Record<string, string> | undefined): ObservedVM {
  const status = vmi.status ?? {};
  const running = status.phase === 'Running' && Boolean(status.nodeName);
  const migration = status.migrationState;
  const migrationId = migration?.completed && !migration.failed ? migration.migrationUid : undefined;
  // Started and not finished: the VM still runs on the source; the node it will run on is about to change.
  const migrating = Boolean(migration?.targetNode && migration.startTimestamp && !migration.completed);
  return {
    running,
    ...(migrating ? { migrating } : {}),
    ...(status.nodeName ? { node: status.nodeName } : {}),
    ...(migrationId ? { migrationId } : {}),
    ...(nodeLabels ? { nodeLabels } : {}),
  };
}

/** KubeVirt's label on a migration's target virt-launcher pod: the migration's uid. */
export const MIGRATION_JOB_LABEL = 'kubevirt.io/migrationJobUID';
/** KubeVirt's label on a virt-launcher pod: the uid of the VMI it runs. */
export const CREATED_BY_LABEL = 'kubevirt.io/created-by';

/** What of a virt-launcher pod tells where a migration is headed. */
export interface LauncherPod {
  readonly metadata: { readonly namespace?: string; readonly labels?: Readonly<Record<string, string>>; readonly creationTimestamp?: string | Date; readonly deletionTimestamp?: string | Date };
  readonly spec?: { readonly nodeName?: string };
  readonly status?: { readonly phase?: string };
}

/**
 * Pure: the node a migration of `vmi` is headed for, as soon as it is known, else undefined.
 * KubeVirt writes status.migrationState.targetNode only once the target virt-launcher pod is
 * Ready — under emulation 2–4 s before the migration ends — while the scheduler placed that pod
 * 11–13 s earlier: its node is the earliest word of the target. A migration's target pod keeps its
 * label after the migration: it then runs the VM (its node is the VMI's), or — the source of a
 * later migration — shuts down on the node the VM left; only a pod made after the VMI's last
 * migration ended belongs to a migration under way.
 */
export function incomingNode(vmi: V1VirtualMachineInstance, launcherPods: readonly LauncherPod[]): string | undefined {
  const migration = vmi.status?.migrationState;
  if (migration?.targetNode && !migration.completed && !migration.failed) return migration.targetNode;
  const ended = migration?.completed || migration?.failed ? migration.migrationUid : undefined;
  // RFC 3339 in seconds: a pod made in the second the last migration ended still counts.
  const endedAt = migration?.completed || migration?.failed ? seconds(migration.endTimestamp) : undefined;
  for (const pod of launcherPods) {
    const labels = pod.metadata.labels ?? {};
    const job = labels[MIGRATION_JOB_LABEL];
    if (!job || job === ended || labels[CREATED_BY_LABEL] !== vmi.metadata?.uid) continue;
    if (pod.metadata.deletionTimestamp || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
    const created = seconds(pod.metadata.creationTimestamp);
    if (endedAt !== undefined && created !== undefined && created < endedAt) continue;
    const node = pod.spec?.nodeName;
    if (node && node !== vmi.status?.nodeName) return node;
  }
  return undefined;
}

/** A Kubernetes time (RFC 3339 text or a Date) in whole seconds since the epoch; undefined when absent or unreadable. */
function seconds(time: string | Date | undefined): number | undefined {
  if (time === undefined) return undefined;
  const ms = time instanceof Date ? time.getTime() : Date.parse(time);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

/** Pure: what of a VMI matters to recontext; a VMI event that leaves it unchanged is noise (guest agent, timestamps …). */
export function vmiSummary(vmi: Vmi): string {
  const s = vmi.status ?? {};
  const m = s.migrationState;
  return JSON.stringify([s.phase, s.nodeName, m?.migrationUid, m?.completed, m?.failed, m?.targetNode, (s.volumeStatus ?? []).map((v) => [v.name, v.phase, v.persistentVolumeClaimInfo?.claimName])]);
}

/** Throws VMConfigurationError('KubeVirtMissing') when the KubeVirt API is not served. */
export async function requireKubeVirtApi(client: KubeClient): Promise<void> {
  if (!(await apiServed(client, `/apis/${KUBEVIRT_GROUP}/${KUBEVIRT_VERSION}`))) {
    throw new VMConfigurationError('KubeVirtMissing', `the ${KUBEVIRT_GROUP}/${KUBEVIRT_VERSION} API is not served: install KubeVirt ≥ 1.6 (docs/kubevirt.md)`);
  }
}

/** Whether the API server serves an API group version (a discovery GET: 404 = no). */
export async function apiServed(client: KubeClient, path: string): Promise<boolean> {
  try {
    await client.get(path);
    return true;
  } catch (error: unknown) {
    if (error instanceof ApiError && error.notFound) return false;
    throw new PlatformUnavailableError(`cannot reach the API server: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export interface NodeLabelCacheOptions {
  /** How long a node's labels are reused. Default 30 000 ms. */
  readonly ttlMs?: number;
  readonly clock?: Clock;
}

/**
 * The labels of nodes (zone, region …) by name, read once and reused for ttlMs; concurrent reads
 * of one node share one GET, and a failed read is not kept. Thousands of VMs run on a few nodes
 * whose labels hardly ever change, so a GET per observation was most of the operator's reads at
 * scale (docs/benchmarks/scale.md). A relabelled node is seen within ttlMs; nothing re-renders on
 * a label change by itself (no node watch: that would need list/watch on every node's full object).
 */
export class NodeLabelCache {
  readonly #client: KubeClient;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { readonly at: number; readonly labels: Promise<Record<string, string> | undefined> }>();

  constructor(client: KubeClient, options: NodeLabelCacheOptions = {}) {
    this.#client = client;
    this.#ttlMs = options.ttlMs ?? 30_000;
    const clock = options.clock ?? realClock;
    this.#now = () => clock.now();
  }

  /** The node's labels; undefined when there is no such node or no name. */
  get(nodeName: string | undefined): Promise<Record<string, string> | undefined> {
    if (!nodeName) return Promise.resolve(undefined);
    const now = this.#now();
    const hit = this.#entries.get(nodeName);
    if (hit && now - hit.at < this.#ttlMs) return hit.labels;
    const labels = this.#client
      .getOrUndefined<{ metadata: { labels?: Record<string, string> } }>(objectPath(NODES, undefined, nodeName))
      .then((node) => (node ? (node.metadata.labels ?? {}) : undefined));
    this.#entries.set(nodeName, { at: now, labels });
    labels.catch(() => {
      if (this.#entries.get(nodeName)?.labels === labels) this.#entries.delete(nodeName);
    });
    return labels;
  }
}

/**
 * A platform check (an API served, a feature turned on) that, once failed, answers with the same
 * error for intervalMs before it asks the server again: installing KubeVirt (or CDI), or turning
 * a feature gate on, heals without a restart, and a cluster without it is not asked on every
 * reconciliation.
 */
export class ApiPresence {
  readonly #check: () => Promise<void>;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #passMs: number;
  #failed: { readonly at: number; readonly error: unknown } | undefined;
  #passedAt: number | undefined;

  /**
   * passMs: how long a pass is kept (default 0: every call asks). A check made on every
   * reconciliation keeps it, so that a thousand VMs do not cost a thousand reads.
   */
  constructor(check: () => Promise<void>, options: { readonly clock?: Clock; readonly intervalMs?: number; readonly passMs?: number } = {}) {
    this.#check = check;
    const clock = options.clock ?? realClock;
    this.#now = () => clock.now();
    this.#intervalMs = options.intervalMs ?? 30_000;
    this.#passMs = options.passMs ?? 0;
  }

  async require(): Promise<void> {
    if (this.#failed && this.#now() - this.#failed.at < this.#intervalMs) throw this.#failed.error;
    if (this.#passedAt !== undefined && this.#now() - this.#passedAt < this.#passMs) return;
    try {
      await this.#check();
      this.#failed = undefined;
      this.#passedAt = this.#now();
    } catch (error: unknown) {
      this.#passedAt = undefined;
      // Unreachable is not absent: only an answer that the API is missing is kept.
      if (error instanceof VMConfigurationError) this.#failed = { at: this.#now(), error };
      throw error;
    }
  }
}
