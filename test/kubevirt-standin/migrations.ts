// Test-only stand-in for KubeVirt's migration controller + virt-handler's migration: a
// VirtualMachineInstanceMigration becomes a real libvirt live migration between the test bed
// hosts, and the VMI's status.migrationState / status.nodeName and the migration's phases are
// written the way (and in the order) KubeVirt writes them. Not KubeVirt: no target pod (the target is picked from
// the stand-in's nodes), no migration policies, no post-copy, no abort, no decentralized migration.
import type { LibvirtClient } from '../../src/drivers/libvirt/client.js';
import type { KubeClient } from '../../src/kube/client.js';
import { objectPath } from '../../src/kube/resources.js';
import { VMIMS, VMIS, VMS, domainName, matches, now, patchStatus, type Condition, type KeyedLock, type Log, type Meta, type StandInNode } from './common.js';
import type { VirtualMachineInstance } from './virt.js';

export interface VirtualMachineInstanceMigration {
  metadata: Meta;
  spec?: { vmiName?: string; addedNodeSelector?: Record<string, string> };
  status?: Record<string, unknown> & {
    phase?: string;
    conditions?: Condition[];
    phaseTransitionTimestamps?: { phase: string; phaseTransitionTimestamp: string }[];
    migrationState?: Record<string, unknown>;
  };
}

export interface MigrationOptions {
  readonly client: KubeClient;
  readonly nodes: readonly StandInNode[];
  readonly libvirt: (node: string) => Promise<LibvirtClient>;
  readonly locks: KeyedLock;
  readonly log: Log;
  /** Called after a migration ended (the VM is reconciled again: changes held back meanwhile). */
  readonly migrated: (namespace: string, vmiName: string) => void;
}

const FINAL = new Set(['Succeeded', 'Failed']);

export class MigrationController {
  readonly #o: MigrationOptions;

  constructor(options: MigrationOptions) {
    this.#o = options;
  }

  /** Level-based; returns a requeue delay while the VMI is not there (or not running) yet. */
  async reconcile(namespace: string, name: string): Promise<number | undefined> {
    const path = objectPath(VMIMS, namespace, name);
    const vmim = await this.#o.client.getOrUndefined<VirtualMachineInstanceMigration>(path);
    if (!vmim || vmim.metadata.deletionTimestamp || FINAL.has(vmim.status?.phase ?? '')) return undefined;
    const vmiName = vmim.spec?.vmiName;
    if (!vmiName) return this.#fail(vmim, 'InvalidMigration', 'spec.vmiName is empty');
    // The VMI's lock: no media change runs during the migration; they wait and run on the target.
    return this.#o.locks.run(`${namespace}/${vmiName}`, () => this.#migrate(vmim, vmiName));
  }

  async #migrate(vmim: VirtualMachineInstanceMigration, vmiName: string): Promise<number | undefined> {
    const { client, log } = this.#o;
    const namespace = vmim.metadata.namespace!;
    const vmiPath = objectPath(VMIS, namespace, vmiName);
    const uid = vmim.metadata.uid!;
    await this.#phase(vmim, 'Pending');
    const vmi = await client.getOrUndefined<VirtualMachineInstance>(vmiPath);
    if (!vmi || vmi.status?.phase !== 'Running' || !vmi.status.nodeName) return 1000; // KubeVirt keeps it Pending until the VMI runs
    const state = vmi.status.migrationState;
    if (state?.['migrationUid'] === uid && state['completed'] === true) {
      // A restart of the stand-in between the VMI and the VMIM writes: finish the record.
      return state['failed'] ? this.#fail(vmim, 'MigrationFailed', String(state['failureReason'] ?? 'migration failed')) : void (await this.#phase(vmim, 'Succeeded', { migrationState: state }));
    }
    const source = this.#o.nodes.find((node) => node.name === vmi.status!.nodeName);
    const selector = { ...(vmi.spec.nodeSelector ?? {}), ...(vmim.spec?.addedNodeSelector ?? {}) };
    const target = this.#o.nodes.find((node) => node.name !== source?.name && matches(node.labels, selector));
    if (!source || !target) {
      return this.#fail(vmim, 'TargetPodUnschedulable', `no node other than ${vmi.status.nodeName} matches the node selector ${JSON.stringify(selector)}`);
    }
    // KubeVirt's VMIM webhook refuses a migration of a VMI that cannot migrate live; the stand-in
    // has no webhook, so the migration fails with the webhook's words.
    const migratable = vmi.status.conditions?.find((c) => c.type === 'LiveMigratable');
    if (migratable?.status === 'False') return this.#fail(vmim, 'NotMigratable', `Cannot migrate VMI, Reason: ${migratable.reason ?? ''}, Message: ${migratable.message ?? ''}`);
    await this.#phase(vmim, 'Scheduling');
    await this.#phase(vmim, 'Scheduled');
    // In KubeVirt's order: the handoff names the target, the migration's start comes after.
    const handoff = { migrationUid: uid, sourceNode: source.name, targetNode: target.name, targetPod: `virt-launcher-${vmiName}-standin` };
    await patchStatus(client, vmiPath, vmi.status, { migrationState: handoff });
    await this.#phase(vmim, 'PreparingTarget', { migrationState: handoff });
    await this.#phase(vmim, 'TargetReady');
    const startState = { ...handoff, startTimestamp: now(), mode: 'PreCopy' };
    await patchStatus(client, vmiPath, (await client.get<VirtualMachineInstance>(vmiPath)).status, { migrationState: startState });
    log(`migration ${namespace}/${vmim.metadata.name}: VMI ${vmiName} ${source.name} -> ${target.name} started`);
    await this.#phase(vmim, 'Running');
    // The VM shows Migrating until its next reconcile (after this, under the same lock) says Running.
    await client.mergePatch(`${objectPath(VMS, namespace, vmiName)}/status`, { status: { printableStatus: 'Migrating' } }).catch(() => undefined);
    const dom = domainName(namespace, vmiName);
    const sourceClient = await this.#o.libvirt(source.name);
    const started = Date.now();
    let failure: string | undefined;
    try {
      const domain = await sourceClient.lookupDomain(dom);
      if (!domain) throw new Error(`domain ${dom} not found on ${source.name}`);
      await sourceClient.migrate(domain, target.host.uri, { migrateUri: 'tcp://127.0.0.1' });
    } catch (error: unknown) {
      failure = error instanceof Error ? error.message : String(error);
    }
    // Two status writes, as KubeVirt makes them: the new node and the end time, then completed.
    const ended = { ...startState, endTimestamp: now() };
    await patchStatus(client, vmiPath, (await client.get<VirtualMachineInstance>(vmiPath)).status, { migrationState: ended, ...(failure ? {} : { nodeName: target.name }) });
    const endState = { ...ended, completed: true, failed: failure !== undefined, ...(failure ? { failureReason: `Live migration failed ${failure}` } : {}) };
    await patchStatus(client, vmiPath, (await client.get<VirtualMachineInstance>(vmiPath)).status, { migrationState: endState });
    if (!failure) await client.mergePatch(vmiPath, { metadata: { labels: { 'kubevirt.io/nodeName': target.name } } });
    this.#o.migrated(namespace, vmiName);
    if (failure) {
      log(`migration ${namespace}/${vmim.metadata.name}: failed after ${Date.now() - started} ms: ${failure}`);
      return this.#fail(vmim, 'MigrationFailed', failure, endState);
    }
    log(`migration ${namespace}/${vmim.metadata.name}: VMI ${vmiName} now on ${target.name} (libvirt migration ${Date.now() - started} ms)`);
    await this.#phase(vmim, 'Succeeded', { migrationState: endState });
    return undefined;
  }

  async #fail(vmim: VirtualMachineInstanceMigration, reason: string, message: string, migrationState?: Record<string, unknown>): Promise<undefined> {
    const conditions: Condition[] = [{ type: 'Failed', status: 'True', reason, message, lastTransitionTime: now() }];
    await this.#phase(vmim, 'Failed', { conditions, ...(migrationState ? { migrationState } : {}) });
    this.#o.log(`migration ${vmim.metadata.namespace}/${vmim.metadata.name}: Failed (${reason}: ${message})`);
    return undefined;
  }

  /** A phase (once) with its transition timestamp, plus other status fields. */
  async #phase(vmim: VirtualMachineInstanceMigration, phase: string, extra: Record<string, unknown> = {}): Promise<void> {
    const path = objectPath(VMIMS, vmim.metadata.namespace!, vmim.metadata.name);
    const current = (await this.#o.client.get<VirtualMachineInstanceMigration>(path)).status ?? {};
    const timestamps = current.phaseTransitionTimestamps ?? [];
    const wanted: Record<string, unknown> = { phase, ...extra };
    if (current.phase !== phase) wanted['phaseTransitionTimestamps'] = [...timestamps, { phase, phaseTransitionTimestamp: now() }];
    await patchStatus(this.#o.client, path, current, wanted);
  }
}
