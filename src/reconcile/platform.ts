// What the core knows of the platform a VM runs on, whatever the driver: where the VM is and what a
// convergence did (why a delivery may have to wait: reasons.ts). Drivers produce these; the pure
// decisions of src/reconcile consume them (and import no driver).

export interface ObservedVM {
  /** False while the VM exists but does not run (no node to render for, no device to swap). */
  readonly running: boolean;
  /** Node (KubeVirt) or libvirt host the VM runs on. */
  readonly node?: string;
  /** A live migration is in its last phase: where the VM runs is about to change; look again soon. */
  readonly migrating?: boolean;
  /** Identifier of the last completed migration, if the platform reports one. */
  readonly migrationId?: string;
  /** Labels of that node or host (zone, region …), for templates and variants. */
  readonly nodeLabels?: Readonly<Record<string, string>>;
}

export interface AttachedLayer {
  readonly name: string;
  readonly digest: string;
  /** Device or volume carrying it; undefined when the driver does not attach (images only). */
  readonly device?: string;
  readonly attachedAt?: string;
}

export interface ConvergeResult {
  readonly layers: readonly AttachedLayer[];
  /** Finding the devices to replace, and putting the new images on the VM (the paper's phases 2 and 4). */
  readonly detachMs: number;
  readonly attachMs: number;
  /** Releasing the replaced images once the new ones were in place (after phase 4; not in the total). */
  readonly releaseMs?: number;
  /** The attach phase in steps, for drivers that have several (KubeVirt: import, apply, ready). */
  readonly attachStepsMs?: Readonly<Record<'import' | 'apply' | 'ready', number>>;
  /** The platform reported when the VM's last migration completed: how long after it the new volumes were in place. */
  readonly sinceMigrationMs?: { readonly migrationId: string; readonly volumeInSpec: number; readonly volumeReady: number };
}
