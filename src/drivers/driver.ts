// The one small interface between the core and a hypervisor platform. The core decides which
// image each layer of a VM should have; a driver observes where the VM runs and converges its
// devices to that desired state (level-based: called again and again, it must be idempotent).
// What the core needs to know of a platform (what a VM is, what converging did, and the reasons a
// delivery can wait) is defined by the core, in src/reconcile/platform.ts and reasons.ts.
import type { ConvergeResult, ObservedVM } from '../reconcile/platform.js';
import type { ConfigurationReason, MigrationImpossibleReason, PendingReason } from '../reconcile/reasons.js';
import { BlockedError, PendingError, RetryError } from '../runtime/errors.js';

export type { AttachedLayer, ConvergeResult, ObservedVM } from '../reconcile/platform.js';

// A driver's errors are kinds of the one error vocabulary (src/runtime/errors.ts), each with a
// reason of src/reconcile/reasons.ts: the reconciler writes the reason as the condition and the
// controller's queue acts by the kind. Anything else a driver throws is retried with backoff.

/** The platform (a libvirt host, the cluster's API) cannot be reached now; the driver keeps trying. */
export class PlatformUnavailableError extends RetryError<'HostUnavailable'> {
  override readonly name: string = 'PlatformUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super('HostUnavailable', message, options);
  }
}

/**
 * The VM or its platform must change before the layers can be delivered: someone has to act
 * (add a drive, restart the VM, install CDI, enable a feature gate …). Looked at again slowly.
 */
export class VMConfigurationError extends BlockedError<ConfigurationReason> {
  override readonly name: string = 'VMConfigurationError';
}

/** The driver did its part; the platform is still at work (importing an image, plugging a volume). */
export class ConvergePendingError extends PendingError<PendingReason> {
  override readonly name: string = 'ConvergePendingError';
}

/** The VM went away while the driver worked on it (deleted, or moved off every known host). */
export class VMNotFoundError extends PendingError<'VMNotFound'> {
  override readonly name: string = 'VMNotFoundError';
  constructor(message: string) {
    super('VMNotFound', message);
  }
}

/** A migration cannot be asked for: no node of the target array, or the VM cannot move live. */
export class MigrationImpossibleError extends BlockedError<MigrationImpossibleReason> {
  override readonly name: string = 'MigrationImpossibleError';
}

/** Move the VM, live, to a node (or libvirt host) whose labels include `nodeSelector`. */
export interface MigrationRequest {
  readonly nodeSelector: Readonly<Record<string, string>>;
  /** Who asks (e.g. MigrationPolicy ns/name), for labels and logs. */
  readonly requester: string;
}

export interface MigrationResult {
  /** The platform's handle: a VirtualMachineInstanceMigration's name, a libvirt host pair. */
  readonly id: string;
  /** Requested: the platform took the request and migrates on its own time (KubeVirt). */
  readonly state: 'Requested' | 'Succeeded' | 'Failed';
  readonly node?: string;
  readonly message?: string;
}

/** The VM a VMContext targets. */
export interface VMTarget {
  readonly namespace: string;
  readonly vmContext: string;
  /** The VMContext's uid: owner of what a driver creates for it (KubeVirt DataVolumes). */
  readonly uid?: string;
  readonly kubevirt?: { readonly name: string };
  readonly libvirt?: { readonly domain: string };
}

export interface DesiredLayer {
  readonly name: string;
  readonly class: string;
  readonly priority: number;
  readonly digest: string;
  /** Path of the image in the operator's content-addressed store. */
  readonly image: string;
  readonly bytes: number;
}

/** Something the platform reported about a VM, for the core to look at it again. */
export interface VMChange {
  readonly libvirtDomain?: string;
  readonly kubevirt?: { readonly namespace: string; readonly name: string };
  /** Every VM may have changed unseen (e.g. the connection to a host was lost and is back). */
  readonly all?: boolean;
  /** For logs: migrated, stopped, device-removed, reconnected … */
  readonly reason: string;
  /**
   * A live migration to this node has begun: the core may build the VM's images for it while
   * the memory is still being copied, so that only the device swap remains when it arrives.
   */
  readonly incoming?: { readonly node: string; readonly labels: Readonly<Record<string, string>> };
}

export interface Driver {
  /** Short name for logs and metrics (none, libvirt, kubevirt). */
  readonly name: string;
  /** False for a driver that builds images but puts none on the VM: Ready means "images built". */
  readonly attaches: boolean;
  /** undefined when the VM does not exist. */
  observe(target: VMTarget, signal: AbortSignal): Promise<ObservedVM | undefined>;
  converge(target: VMTarget, desired: readonly DesiredLayer[], signal: AbortSignal): Promise<ConvergeResult>;
  /**
   * A migration toward another node has begun and the images for it are built: a driver whose
   * platform needs time to take them in (KubeVirt's CDI imports) may start on it now. Optional;
   * converge must not rely on it having run.
   */
  prepare?(target: VMTarget, desired: readonly DesiredLayer[], signal: AbortSignal): Promise<void>;
  /**
   * The VM exists but does not run, so node-dependent layers cannot be rendered yet: make room
   * for `layers` now if the VM cannot gain devices while it runs (KubeVirt: empty CD-ROM drives,
   * since SATA has no hotplug). Optional, idempotent.
   */
  reserve?(target: VMTarget, layers: readonly string[], signal: AbortSignal): Promise<void>;
  /** Live-migrate the VM (MigrationPolicy). Throws MigrationImpossibleError when it cannot be asked for. */
  migrate?(target: VMTarget, request: MigrationRequest, signal: AbortSignal): Promise<MigrationResult>;
  /** Where a migration `migrate` answered Requested for stands now; undefined if the platform forgot it. */
  migrationStatus?(target: VMTarget, id: string): Promise<MigrationResult | undefined>;
  /**
   * The VMContext is going away: remove its devices. Idempotent; a vanished VM is not an error.
   * A driver that delivers nothing has none, and its VMContexts get no finalizer: nothing to take
   * back, one write less per VM, and deleting them never waits for a running operator.
   */
  release?(target: VMTarget, signal: AbortSignal): Promise<void>;
  /** Platform events about VMs (optional: without it, changes are seen on resync only). */
  watch?(listener: (change: VMChange) => void): () => void;
  close?(): Promise<void>;
}

export function targetOf(vmContext: { metadata: { name: string; namespace?: string; uid?: string }; spec: { target: { kubevirt?: { name: string }; libvirt?: { domain: string } } } }): VMTarget {
  return {
    namespace: vmContext.metadata.namespace ?? 'default',
    vmContext: vmContext.metadata.name,
    ...(vmContext.metadata.uid ? { uid: vmContext.metadata.uid } : {}),
    ...(vmContext.spec.target.kubevirt ? { kubevirt: vmContext.spec.target.kubevirt } : {}),
    ...(vmContext.spec.target.libvirt ? { libvirt: vmContext.spec.target.libvirt } : {}),
  };
}

/** Whether `labels` has every key/value of `selector`. */
export function matchesSelector(labels: Readonly<Record<string, string>>, selector: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

export function describeTarget(target: VMTarget): string {
  return target.kubevirt ? `${target.namespace}/${target.kubevirt.name}` : `libvirt:${target.libvirt?.domain ?? '?'}`;
}
