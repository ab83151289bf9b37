// Where a KubeVirt VM runs, read from its VirtualMachineInstance and the Node: status.nodeName,
// status.migrationState (completed, not failed → its migrationUid), and the node's labels.
import type { V1VirtualMachineInstance } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { ApiError, type KubeClient } from '../../kube/client.js';
import { NODES, objectPath } from '../../kube/resources.js';
import type { ObservedVM, VMTarget } from '../driver.js';

export const KUBEVIRT_GROUP = 'kubevirt.io';
export const KUBEVIRT_VERSION = 'v1';

/** The KubeVirt API is not installed in the cluster. */
export class KubeVirtMissingError extends Error {
  override readonly name = 'KubeVirtMissingError';
}

export function vmiPath(namespace: string, name: string): string {
  return `/apis/${KUBEVIRT_GROUP}/${KUBEVIRT_VERSION}/namespaces/${namespace}/virtualmachineinstances/${encodeURIComponent(name)}`;
}

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

export async function observeKubeVirt(client: KubeClient, target: VMTarget): Promise<ObservedVM | undefined> {
  if (!target.kubevirt) throw new TypeError('not a KubeVirt target');
  const vmi = await client.getOrUndefined<V1VirtualMachineInstance>(vmiPath(target.namespace, target.kubevirt.name));
  if (!vmi) {
    // 404 for the object or for the whole API: tell them apart, the second is a setup problem.
    const group = await client.getOrUndefined(`/apis/${KUBEVIRT_GROUP}/${KUBEVIRT_VERSION}`).catch((error: unknown) => {
      if (error instanceof ApiError) return undefined;
      throw error;
    });
    if (!group) throw new KubeVirtMissingError(`the ${KUBEVIRT_GROUP}/${KUBEVIRT_VERSION} API is not served: install KubeVirt (see docs/kubevirt.md)`);
    return undefined;
  }
  return observationOf(vmi, await nodeLabels(client, vmi.status?.nodeName));
}

/** The labels of a node (zone, region …); undefined when there is no such node or no name. */
export async function nodeLabels(client: KubeClient, nodeName: string | undefined): Promise<Record<string, string> | undefined> {
  if (!nodeName) return undefined;
  const node = await client.getOrUndefined<{ metadata: { labels?: Record<string, string> } }>(objectPath(NODES, undefined, nodeName));
  return node ? (node.metadata.labels ?? {}) : undefined;
}
