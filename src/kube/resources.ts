// API paths of the resources the operator reads and writes.
import { GROUP, VERSION } from '../crds/index.js';

export interface ResourceRef {
  readonly group: string; // '' for the core group
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export const CONTEXT_LAYERS: ResourceRef = { group: GROUP, version: VERSION, plural: 'contextlayers', kind: 'ContextLayer', namespaced: true };
export const VM_CONTEXTS: ResourceRef = { group: GROUP, version: VERSION, plural: 'vmcontexts', kind: 'VMContext', namespaced: true };
export const MIGRATION_POLICIES: ResourceRef = { group: GROUP, version: VERSION, plural: 'migrationpolicies', kind: 'MigrationPolicy', namespaced: true };
export const CONFIG_MAPS: ResourceRef = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };
export const SECRETS: ResourceRef = { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true };
export const NODES: ResourceRef = { group: '', version: 'v1', plural: 'nodes', kind: 'Node', namespaced: false };
export const PODS: ResourceRef = { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true };
export const EVENTS: ResourceRef = { group: 'events.k8s.io', version: 'v1', plural: 'events', kind: 'Event', namespaced: true };
export const LEASES: ResourceRef = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true };

export function apiVersionOf(resource: ResourceRef): string {
  return resource.group ? `${resource.group}/${resource.version}` : resource.version;
}

/** Collection path; all namespaces when namespace is undefined for a namespaced resource. */
export function collectionPath(resource: ResourceRef, namespace?: string): string {
  const base = resource.group ? `/apis/${resource.group}/${resource.version}` : `/api/${resource.version}`;
  return resource.namespaced && namespace !== undefined ? `${base}/namespaces/${namespace}/${resource.plural}` : `${base}/${resource.plural}`;
}

export function objectPath(resource: ResourceRef, namespace: string | undefined, name: string, subresource?: 'status'): string {
  return `${collectionPath(resource, namespace)}/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}`;
}

/** namespace/name, the work-queue key of a namespaced object (just name for cluster-scoped ones). */
export function keyOf(object: { metadata?: { namespace?: string; name?: string } }): string {
  const { namespace, name } = object.metadata ?? {};
  return namespace ? `${namespace}/${name}` : String(name);
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
