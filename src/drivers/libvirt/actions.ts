// Carries out one planned device action (devices.ts) on a running domain. Media changes are
// never forced: the guest agent releases the medium on the eject request (docs/cdrom-swap.md).
//
// Unplugging can be asynchronous: libvirt's virDomainDetachDeviceFlags waits a while (5 s in the
// QEMU driver) for QEMU to report the device gone and may return success before it is; the
// device leaves the live XML (and DEVICE_REMOVED fires) only when it really is. So a detach is
// done when the live XML no longer shows the drive. (A virtio-scsi CD-ROM goes at once: QEMU
// unplugs SCSI devices without waiting for the guest; ~80 ms on the test bed.)
import { ConvergePendingError } from '../driver.js';
import { AffectFlags, type DomainRef, type LibvirtClient } from './client.js';
import { cdromsOf, cdromXml, type DeviceAction } from './devices.js';

export type DeviceClient = Pick<LibvirtClient, 'updateDevice' | 'attachDevice' | 'detachDevice' | 'domainXml'>;

export interface ActionOptions {
  /** How long a detached drive may stay in the live XML after libvirt returned; default 10 s. */
  readonly removalTimeoutMs?: number;
  /** Poll interval of that wait; default 50 ms. */
  readonly pollMs?: number;
}

/** libvirt accepted the unplug but the drive is still there: pending, converging again checks again. */
export class DeviceRemovalPendingError extends ConvergePendingError {
  override readonly name = 'DeviceRemovalPendingError';
  constructor(
    readonly target: string,
    waitedMs: number,
  ) {
    super('DeviceRemovalPending', `drive ${target} was asked to unplug but is still in the domain after ${waitedMs} ms`);
  }
}

export async function applyDeviceAction(client: DeviceClient, domain: DomainRef, action: DeviceAction, options: ActionOptions = {}): Promise<void> {
  switch (action.kind) {
    case 'change-media':
      return client.updateDevice(domain, cdromXml(action.target, action.bus, action.source), AffectFlags.LIVE);
    case 'eject':
      return client.updateDevice(domain, cdromXml(action.target, action.bus), AffectFlags.LIVE);
    case 'attach':
      return client.attachDevice(domain, cdromXml(action.target, action.bus, action.source, { controller: action.controller, unit: action.unit }), AffectFlags.LIVE);
    case 'detach':
      return detach(client, domain, action.target, action.bus, options);
  }
}

async function detach(client: DeviceClient, domain: DomainRef, target: string, bus: string, options: ActionOptions): Promise<void> {
  const present = async () => cdromsOf(await client.domainXml(domain)).some((d) => d.target === target);
  try {
    await client.detachDevice(domain, cdromXml(target, bus), AffectFlags.LIVE);
  } catch (error: unknown) {
    // An earlier unplug request (before a crash, or one that timed out) may have finished meanwhile.
    if (await present()) throw error;
    return;
  }
  const timeoutMs = options.removalTimeoutMs ?? 10_000;
  const started = Date.now();
  while (await present()) {
    if (Date.now() - started >= timeoutMs) throw new DeviceRemovalPendingError(target, Date.now() - started);
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 50));
  }
}
