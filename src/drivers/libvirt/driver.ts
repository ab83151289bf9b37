// The libvirt driver: a VM is a domain on one of the configured hosts. observe() finds it and
// tells where it runs; converge() reads the live domain, plans the drive changes (devices.ts,
// pure) and applies them with non-forced media changes — the guest agent releases the medium
// when asked (DESIGN.md §4), so no tray-lock timeout and no forced I/O errors — then records the
// layer → drive assignment in the domain's metadata.
import type { AttachedLayer, ConvergeResult, DesiredLayer, Driver, ObservedVM, VMTarget } from '../driver.js';
import { applyDeviceAction } from './actions.js';
import { LibvirtClient, type DomainRef } from './client.js';
import { assignmentsOf, assignmentsXml, cdromsOf, METADATA_NAMESPACE, METADATA_PREFIX, planDevices, scsiRoomOf } from './devices.js';
import { DomainState, RunningReason } from './protocol.js';

export interface LibvirtHost {
  /** Host name as the operator reports it (status.node) and templates see it (node.name). */
  readonly name: string;
  /** libvirtd's unix socket on this machine. */
  readonly socketPath: string;
  /** Labels for templates and variants (zone, region …), from the hosts file. */
  readonly labels: Readonly<Record<string, string>>;
}

export class LibvirtDriver implements Driver {
  readonly name = 'libvirt';
  readonly #hosts: readonly LibvirtHost[];
  readonly #clients = new Map<string, Promise<LibvirtClient>>();

  constructor(hosts: readonly LibvirtHost[]) {
    if (hosts.length === 0) throw new TypeError('the libvirt driver needs at least one host');
    this.#hosts = hosts;
  }

  async observe(target: VMTarget): Promise<ObservedVM | undefined> {
    const found = await this.#find(target);
    if (!found) return undefined;
    const { state, reason } = await found.client.domainState(found.domain);
    const running = state === DomainState.RUNNING || state === DomainState.PAUSED;
    return {
      running,
      node: found.host.name,
      nodeLabels: found.host.labels,
      // Level-based: a domain running because it migrated in has a new QEMU (id) on this host.
      ...(running && reason === RunningReason.MIGRATED ? { migrationId: `${found.host.name}/${found.domain.id}` } : {}),
    };
  }

  async converge(target: VMTarget, desired: readonly DesiredLayer[]): Promise<ConvergeResult> {
    const started = performance.now();
    const found = await this.#find(target);
    if (!found) throw new Error(`domain ${domainName(target)} is on none of the hosts ${this.#hosts.map((h) => h.name).join(', ')}`);
    const xml = await found.client.domainXml(found.domain);
    const plan = planDevices(cdromsOf(xml), assignmentsOf(xml), desired.map((d) => ({ name: d.name, digest: d.digest, image: d.image })), scsiRoomOf(xml));
    const detachMs = performance.now() - started;
    const attachStarted = performance.now();
    const recorded = assignmentsXml(assignmentsOf(xml));
    const record = async (assignments: Parameters<typeof assignmentsXml>[0]) => {
      if (assignmentsXml(assignments) !== recorded) await found.client.setMetadata(found.domain, assignmentsXml(assignments), METADATA_PREFIX, METADATA_NAMESPACE);
    };
    // Claim first, act, then record the outcome: a crash in between is healed by the next converge.
    await record(plan.intent);
    for (const action of plan.actions) await applyDeviceAction(found.client, found.domain, action);
    if (plan.intent.length !== plan.assignments.length) await record(plan.assignments);
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const changed = new Set(plan.actions.map((a) => a.layer));
    const layers: AttachedLayer[] = plan.assignments.map((a) => ({ name: a.layer, digest: a.digest, device: a.target, ...(changed.has(a.layer) ? { attachedAt: now } : {}) }));
    return { layers, detachMs, attachMs: performance.now() - attachStarted };
  }

  async release(target: VMTarget): Promise<void> {
    const found = await this.#find(target);
    if (!found) return; // the domain is gone: nothing holds our images
    const xml = await found.client.domainXml(found.domain);
    const plan = planDevices(cdromsOf(xml), assignmentsOf(xml), []);
    for (const action of plan.actions) await applyDeviceAction(found.client, found.domain, action);
    if (assignmentsOf(xml).length > 0) await found.client.setMetadata(found.domain, undefined, METADATA_PREFIX, METADATA_NAMESPACE);
  }

  async close(): Promise<void> {
    for (const client of this.#clients.values()) await (await client.catch(() => undefined))?.close();
    this.#clients.clear();
  }

  async #find(target: VMTarget): Promise<{ host: LibvirtHost; client: LibvirtClient; domain: DomainRef } | undefined> {
    const name = domainName(target);
    for (const host of this.#hosts) {
      const client = await this.#client(host);
      const domain = await client.lookupDomain(name);
      if (domain && domain.id >= 0) return { host, client, domain };
    }
    return undefined;
  }

  /** One connection per host, opened on first use and again after libvirtd went away. */
  #client(host: LibvirtHost): Promise<LibvirtClient> {
    const existing = this.#clients.get(host.name);
    const open = () => {
      const connecting = LibvirtClient.connect({ socketPath: host.socketPath });
      this.#clients.set(host.name, connecting);
      connecting.then(
        (client) => client.connection.onClose(() => this.#clients.get(host.name) === connecting && this.#clients.delete(host.name)),
        () => this.#clients.delete(host.name),
      );
      return connecting;
    };
    return existing ?? open();
  }
}

function domainName(target: VMTarget): string {
  if (!target.libvirt) throw new TypeError(`VMContext ${target.namespace}/${target.vmContext} does not target a libvirt domain`);
  return target.libvirt.domain;
}
