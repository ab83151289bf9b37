// What reconcilers read and write, whatever holds the objects: a Kubernetes API server (informer
// caches, server-side apply, Events) or a directory of manifests (standalone mode). Reconcilers
// see only these ports, so both modes run the very same reconciliation.
import { isDeepStrictEqual } from 'node:util';
import type { KubeClient } from '../kube/client.js';
import { apiVersionOf, objectPath, type ResourceRef } from '../kube/resources.js';
import type { SourceLookup } from '../reconcile/render.js';
import type { Regarding } from './events.js';

export const FIELD_MANAGER = 'recontext-operator';

export interface Cache<T> {
  get(key: string): T | undefined;
  list(): T[];
}

/** ConfigMaps and Secrets of one namespace, decoded, as the renderer reads them. */
export type SourcesOf = (namespace: string) => SourceLookup;

export interface Named {
  metadata: { name: string; namespace?: string };
  status?: unknown;
}

export interface ObjectWriter {
  /** Writes `status` if it differs from the cached object's; returns whether it wrote. */
  applyStatus(resource: ResourceRef, current: Named, status: object): Promise<boolean>;
  /** Replaces the finalizers this operator owns on the object. */
  setFinalizers(resource: ResourceRef, current: Named, finalizers: readonly string[]): Promise<void>;
}

export interface EventSink {
  /** Fire and forget: recording an event never fails a reconciliation. */
  record(regarding: Regarding, type: 'Normal' | 'Warning', reason: string, note: string): void;
}

export function statusChanged(current: Named, status: object): boolean {
  return !isDeepStrictEqual(normalize(current.status), normalize(status));
}

/** Status through the status subresource and finalizers, by server-side apply under one field manager. */
export function kubeWriter(client: KubeClient): ObjectWriter {
  const identity = (resource: ResourceRef, current: Named) => {
    const { name, namespace } = current.metadata;
    return { apiVersion: apiVersionOf(resource), kind: resource.kind, metadata: { name, ...(namespace ? { namespace } : {}) } };
  };
  return {
    async applyStatus(resource, current, status) {
      if (!statusChanged(current, status)) return false; // resyncs cost no writes
      await client.apply(objectPath(resource, current.metadata.namespace, current.metadata.name, 'status'), { ...identity(resource, current), status }, FIELD_MANAGER);
      return true;
    },
    async setFinalizers(resource, current, finalizers) {
      const base = identity(resource, current);
      await client.apply(objectPath(resource, current.metadata.namespace, current.metadata.name), { ...base, metadata: { ...base.metadata, finalizers: [...finalizers] } }, FIELD_MANAGER);
    },
  };
}

// JSON round trip: drop undefined members so {a: undefined} equals {}.
function normalize(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}
