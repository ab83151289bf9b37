// Shared bits of the KubeVirt/CDI stand-in (test-only; see README.md): resource references,
// KubeVirt-style timestamps and conditions, the libvirt calls the project's LibvirtClient has no
// method for (create/destroy/undefine), a status patch that writes only when something changed.
import { XdrWriter, readDomain, writeDomain, type DomainRef } from '../../src/drivers/libvirt/protocol.js';
import { XdrReader } from '../../src/drivers/libvirt/xdr.js';
import type { LibvirtClient } from '../../src/drivers/libvirt/client.js';
import { LibvirtError } from '../../src/drivers/libvirt/client.js';
import type { KubeClient } from '../../src/kube/client.js';
import type { ResourceRef } from '../../src/kube/resources.js';

export const VMS: ResourceRef = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachines', kind: 'VirtualMachine', namespaced: true };
export const VMIS: ResourceRef = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstances', kind: 'VirtualMachineInstance', namespaced: true };
export const VMIMS: ResourceRef = { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachineinstancemigrations', kind: 'VirtualMachineInstanceMigration', namespaced: true };
export const KUBEVIRTS: ResourceRef = { group: 'kubevirt.io', version: 'v1', plural: 'kubevirts', kind: 'KubeVirt', namespaced: true };
export const DATA_VOLUMES: ResourceRef = { group: 'cdi.kubevirt.io', version: 'v1beta1', plural: 'datavolumes', kind: 'DataVolume', namespaced: true };

/** A node of the stand-in: a Kubernetes Node backed by one libvirt host of the test bed. */
export interface StandInNode {
  readonly name: string;
  /** The test bed host (its libvirtd socket and URI). */
  readonly host: { readonly name: string; readonly socket: string; readonly uri: string };
  readonly labels?: Readonly<Record<string, string>>;
}

export interface Meta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  creationTimestamp?: string;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string | null;
  lastProbeTime?: string | null;
  lastHeartbeatTime?: string | null;
}

/** metav1.Time as KubeVirt's objects carry it: RFC 3339, UTC, second precision. */
export function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Conditions as KubeVirt/CDI condition managers keep them: lastTransitionTime only moves when the
 * status flips; an unchanged condition keeps its timestamps.
 */
export function mergeConditions(old: readonly Condition[] | undefined, wanted: readonly Condition[], timeField: 'lastTransitionTime' | 'lastHeartbeatTime' = 'lastTransitionTime'): Condition[] {
  return wanted.map((want) => {
    const before = old?.find((c) => c.type === want.type);
    const same = before && before.status === want.status;
    const at = same ? (before.lastTransitionTime ?? now()) : now();
    const out: Condition = { ...want, lastTransitionTime: at };
    if (timeField === 'lastHeartbeatTime') out.lastHeartbeatTime = same ? (before.lastHeartbeatTime ?? at) : at;
    return out;
  });
}

/** Does a label set satisfy a selector (every key equal)? */
export function matches(labels: Readonly<Record<string, string>> | undefined, selector: Readonly<Record<string, string>> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([key, value]) => labels?.[key] === value);
}

/** Stable JSON (sorted keys) to compare desired and current status parts. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/**
 * Merge-patches `status` fields of an object's status subresource, but only those that differ
 * from `current` (so a reconcile that changes nothing writes nothing, and its own watch event
 * does not start another round). Returns whether it wrote.
 */
export async function patchStatus(client: KubeClient, path: string, current: Record<string, unknown> | undefined, wanted: Record<string, unknown>): Promise<boolean> {
  const changed: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(wanted)) if (canonical(current?.[key] ?? null) !== canonical(value ?? null)) changed[key] = value ?? null;
  if (Object.keys(changed).length === 0) return false;
  await client.mergePatch(`${path}/status`, { status: changed });
  return true;
}

// Procedures of libvirt's remote protocol (src/remote/remote_protocol.x) that LibvirtClient
// does not wrap: the stand-in creates and destroys whole domains, the operator never does.
const DOMAIN_CREATE_XML = 10;
const DOMAIN_DESTROY = 12;
const DOMAIN_UNDEFINE_FLAGS = 231;

/** virDomainCreateXML: a transient, running domain. */
export async function createDomain(client: LibvirtClient, xml: string): Promise<DomainRef> {
  return readDomain(new XdrReader(await client.connection.call(DOMAIN_CREATE_XML, new XdrWriter().string(xml).uint(0).toBuffer())));
}

/**
 * Destroys the domain and removes its definition (a migrated domain is persistent on its new
 * host: PERSIST_DEST). No error when it is already gone.
 */
export async function destroyDomain(client: LibvirtClient, name: string): Promise<boolean> {
  const domain = await client.lookupDomain(name);
  if (!domain) return false;
  await ignoreNoDomain(async () => {
    const writer = new XdrWriter();
    writeDomain(writer, domain);
    await client.connection.call(DOMAIN_DESTROY, writer.toBuffer());
  });
  await ignoreNoDomain(async () => {
    const writer = new XdrWriter();
    writeDomain(writer, domain);
    await client.connection.call(DOMAIN_UNDEFINE_FLAGS, writer.uint(0).toBuffer());
  });
  return true;
}

async function ignoreNoDomain(call: () => Promise<void>): Promise<void> {
  try {
    await call();
  } catch (error: unknown) {
    // Destroying a shut-off domain or undefining a transient one (VIR_ERR_OPERATION_INVALID), or
    // a domain that vanished with its destroy (VIR_ERR_NO_DOMAIN): all fine here.
    if (error instanceof LibvirtError && (error.noDomain || error.operationInvalid)) return;
    throw error;
  }
}

/** KubeVirt names the libvirt domain of a VMI `<namespace>_<name>`. */
export function domainName(namespace: string, name: string): string {
  return `${namespace}_${name}`;
}

export type Log = (line: string) => void;

/**
 * One operation at a time per key (a VM and its migration share the VM's key): a media change
 * never overlaps a live migration of the same domain, and changes that arrive meanwhile are
 * applied after it, on the target.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.catch(() => undefined).then(work);
    const tail = result.catch(() => undefined);
    this.#tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
