// The libvirt driver: a VM is a domain on one of the configured hosts. observe() finds it and
// tells where it runs; converge() reads the live domain, plans the drive changes (devices.ts,
// pure) and applies them make-before-break: new images into spare empty drives (or hot-plugged
// SCSI drives) first, then the old drives emptied or unplugged — by non-forced media changes the
// guest agent answers (docs/cdrom-swap.md), so no tray-lock timeout and no forced I/O errors. The
// layer → drive assignment is recorded in the domain's metadata before and after acting. watch() turns the hosts' domain events into
// VM changes for the core; each host's connection is kept up (and its events re-registered) by a
// LibvirtSession.
import { matchesSelector, MigrationImpossibleError, VMNotFoundError, type AttachedLayer, type ConvergeResult, type DesiredLayer, type Driver, type MigrationRequest, type MigrationResult, type ObservedVM, type VMChange, type VMTarget } from '../driver.js';
import { applyDeviceAction } from './actions.js';
import type { LibvirtClient, DomainRef } from './client.js';
import { changeOfEvent } from './events.js';
import { LibvirtSession, type SessionLog } from './session.js';
import { attachLayers } from './converge.js';
import { assignmentsOf, cdromsOf, isMaking, METADATA_NAMESPACE, METADATA_PREFIX, planDevices } from './devices.js';
import { DomainState, PausedReason, RunningReason } from './protocol.js';

export interface LibvirtHost {
  /** Host name as the operator reports it (status.node) and templates see it (node.name). */
  readonly name: string;
  /** libvirtd's unix socket on this machine. */
  readonly socketPath: string;
  /** Driver URI opened on that daemon. Default qemu:///system. */
  readonly uri?: string;
  /** Labels for templates and variants (zone, region …), from the hosts file. */
  readonly labels: Readonly<Record<string, string>>;
}

export class LibvirtDriver implements Driver {
  readonly name = 'libvirt';
  readonly attaches = true;
  readonly #hosts: readonly LibvirtHost[];
  readonly #sessions: ReadonlyMap<string, LibvirtSession>;
  readonly #migrateUri: string;

  constructor(hosts: readonly LibvirtHost[], options: { log?: SessionLog; migrateUri?: string } = {}) {
    this.#migrateUri = options.migrateUri ?? 'tcp://127.0.0.1';
    if (hosts.length === 0) throw new TypeError('the libvirt driver needs at least one host');
    this.#hosts = hosts;
    this.#sessions = new Map(
      hosts.map((h) => [h.name, new LibvirtSession({ name: h.name, socketPath: h.socketPath, ...(h.uri ? { uri: h.uri } : {}), ...(options.log ? { log: options.log } : {}) })]),
    );
  }

  /**
   * Domain events of every host as VM changes; a (re)connect to a host is reported as "look at
   * every VM again" (events of an outage are lost). Connects to every host and keeps them up.
   */
  watch(listener: (change: VMChange) => void): () => void {
    const stops = this.#hosts.flatMap((host) => {
      const session = this.#sessions.get(host.name)!;
      const offEvent = session.onEvent((event) => {
        const change = changeOfEvent(event, host.labels);
        if (change) listener(change);
      });
      const offConnected = session.onConnected(({ reconnected }) => listener({ all: true, reason: reconnected ? `reconnected to ${host.name}` : `connected to ${host.name}` }));
      session.start();
      return [offEvent, offConnected];
    });
    return () => stops.forEach((stop) => stop());
  }

  async observe(target: VMTarget): Promise<ObservedVM | undefined> {
    const found = await this.#find(target);
    if (!found) return undefined;
    const { state, reason } = found;
    const running = state === DomainState.RUNNING || state === DomainState.PAUSED;
    const migrating = state === DomainState.PAUSED && (reason === PausedReason.MIGRATION || reason === PausedReason.POSTCOPY);
    return {
      running,
      node: found.host.name,
      nodeLabels: found.host.labels,
      ...(migrating ? { migrating } : {}),
      // Level-based: a domain running because it migrated in has a new QEMU (id) on this host.
      ...(state === DomainState.RUNNING && reason === RunningReason.MIGRATED ? { migrationId: `${found.host.name}/${found.domain.id}` } : {}),
    };
  }

  async converge(target: VMTarget, desired: readonly DesiredLayer[], signal?: AbortSignal): Promise<ConvergeResult> {
    signal?.throwIfAborted();
    const found = await this.#find(target);
    if (!found) throw new VMNotFoundError(`domain ${domainName(target)} is on none of the hosts ${this.#hosts.map((h) => h.name).join(', ')}`);
    const wanted = desired.map((d) => ({ name: d.name, digest: d.digest, image: d.image }));
    const attached = await attachLayers(found.client, found.domain, wanted, signal);
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const releaseMs = await attached.release();
    const changed = new Set(attached.plan.actions.filter(isMaking).map((a) => a.layer));
    const layers: AttachedLayer[] = attached.plan.assignments.map((a) => ({ name: a.layer, digest: a.digest, device: a.target, ...(changed.has(a.layer) ? { attachedAt: now } : {}) }));
    return { layers, detachMs: attached.detachMs, attachMs: attached.attachMs, releaseMs };
  }

  /**
   * Live migration to the first other host whose labels match. Peer to peer: the source daemon
   * connects to the destination's socket (hosts are local daemons) and copies memory over
   * `migrateUri` (default tcp://127.0.0.1, for hosts on one machine).
   *
   * Aborting (`signal`: the reconcile's deadline) cancels the migration
   * job on the source daemon and waits for it to end: the VM keeps running on the source and the
   * result is Failed, saying so. The destination's incoming domain goes away (its Stopped event
   * makes the core look at the VM again, and find it where it was). A migration that had already
   * switched over when the abort came stands: Succeeded.
   */
  async migrate(target: VMTarget, request: MigrationRequest, signal?: AbortSignal): Promise<MigrationResult> {
    signal?.throwIfAborted();
    const found = await this.#find(target);
    if (!found) throw new MigrationImpossibleError('NotRunning', `domain ${domainName(target)} runs on none of the hosts`);
    const destination = this.#hosts.find((h) => h.name !== found.host.name && matchesSelector(h.labels, request.nodeSelector));
    if (!destination) {
      throw new MigrationImpossibleError('NoTargetNode', `no host other than ${found.host.name} has the labels ${JSON.stringify(request.nodeSelector)} (hosts: ${this.#hosts.map((h) => h.name).join(', ')})`);
    }
    const id = `${found.host.name}->${destination.name}`;
    try {
      await found.client.migrate(found.domain, peerUri(destination), { migrateUri: this.#migrateUri, ...(signal ? { signal } : {}) });
      return { id, state: 'Succeeded', node: destination.name };
    } catch (error: unknown) {
      const message = error instanceof Error ? error.message : String(error);
      if (!signal?.aborted) return { id, state: 'Failed', message };
      const why = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
      return { id, state: 'Failed', node: found.host.name, message: `aborted (${why}): ${message}; the VM stays on ${found.host.name}` };
    }
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
    await Promise.all([...this.#sessions.values()].map((s) => s.close()));
  }

  /**
   * The host running the domain. While a live migration is under way the domain exists on both
   * hosts — running on the source, paused (incoming) on the destination: the running one counts.
   * A host that cannot be reached is skipped, but then "not found" is not a safe answer.
   */
  #find(target: VMTarget): Promise<Found | undefined> {
    const name = domainName(target);
    const found: Found[] = [];
    const unreachable: Error[] = [];
    // Answer as soon as one host runs it: the source of a migration that just ended can keep its
    // domain locked for another second or two, and that host's answer would change nothing.
    return new Promise<Found | undefined>((resolve, reject) => {
      let pending = this.#hosts.length;
      const settle = () => {
        if (--pending > 0) return;
        if (found[0]) resolve(found[0]);
        else if (unreachable[0]) reject(unreachable[0]);
        else resolve(undefined);
      };
      for (const host of this.#hosts) {
        (async () => {
          const client = await this.#client(host);
          const domain = await client.lookupDomain(name);
          if (!domain || domain.id < 0) return; // not here, or defined but not running here
          const probe: Found = { host, client, domain, ...(await client.domainState(domain)) };
          if (probe.state === DomainState.RUNNING) resolve(probe);
          else found.push(probe);
        })().then(settle, (error: unknown) => {
          unreachable.push(error instanceof Error ? error : new Error(String(error)));
          settle();
        });
      }
    });
  }

  #client(host: LibvirtHost): Promise<LibvirtClient> {
    return this.#sessions.get(host.name)!.client();
  }
}

/** A running domain on one host, with its virDomainState and reason. */
interface Found {
  readonly host: LibvirtHost;
  readonly client: LibvirtClient;
  readonly domain: DomainRef;
  readonly state: number;
  readonly reason: number;
}

function domainName(target: VMTarget): string {
  if (!target.libvirt) throw new TypeError(`VMContext ${target.namespace}/${target.vmContext} does not target a libvirt domain`);
  return target.libvirt.domain;
}

/** The URI a source daemon opens to reach `host` for a peer-to-peer migration. */
export function peerUri(host: LibvirtHost): string {
  const driver = new URL(host.uri ?? 'qemu:///system');
  return `${driver.protocol.replace(/:$/, '')}+unix://${driver.pathname || '/system'}?socket=${host.socketPath}`;
}
