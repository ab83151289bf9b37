// Writing what the operator owns: status through the status subresource with server-side apply
// under one field manager, skipped when nothing changed (so resyncs cost no writes).
import { isDeepStrictEqual } from 'node:util';
import type { KubeClient } from '../kube/client.js';
import { apiVersionOf, objectPath, type ResourceRef } from '../kube/resources.js';

export const FIELD_MANAGER = 'recontext-operator';

export interface Named {
  metadata: { name: string; namespace?: string };
  status?: unknown;
}

/** Applies `status` if it differs from the cached object's; returns whether it wrote. */
export async function applyStatus(client: KubeClient, resource: ResourceRef, current: Named, status: object): Promise<boolean> {
  if (isDeepStrictEqual(normalize(current.status), normalize(status))) return false;
  const { name, namespace } = current.metadata;
  await client.apply(
    objectPath(resource, namespace, name, 'status'),
    { apiVersion: apiVersionOf(resource), kind: resource.kind, metadata: { name, ...(namespace ? { namespace } : {}) }, status },
    FIELD_MANAGER,
  );
  return true;
}

// JSON round trip: drop undefined members so {a: undefined} equals {}.
function normalize(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}
