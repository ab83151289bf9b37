// What a libvirt domain event means to the core (pure): which VM to look at again, and whether
// a live migration toward a host has just begun — then the destination's images can be built
// while memory is still being copied, and only the device swap is left when the VM arrives.
import type { VMChange } from '../driver.js';
import { Lifecycle } from './protocol.js';
import type { HostDomainEvent } from './session.js';

const LIFECYCLE_NAMES: Record<number, string> = {
  [Lifecycle.DEFINED]: 'defined',
  [Lifecycle.UNDEFINED]: 'undefined',
  [Lifecycle.STARTED]: 'started',
  [Lifecycle.SUSPENDED]: 'suspended',
  [Lifecycle.RESUMED]: 'resumed',
  [Lifecycle.STOPPED]: 'stopped',
  [Lifecycle.SHUTDOWN]: 'shutdown',
  [Lifecycle.CRASHED]: 'crashed',
};

export function changeOfEvent(event: HostDomainEvent, hostLabels: Readonly<Record<string, string>>): VMChange | undefined {
  const libvirtDomain = event.domain.name;
  switch (event.kind) {
    case 'lifecycle':
      // Started(Migrated) on the destination: the incoming QEMU is up, the memory copy begins.
      if (event.event === Lifecycle.STARTED && event.detail === Lifecycle.STARTED_MIGRATED) {
        return { libvirtDomain, reason: 'incoming-migration', incoming: { node: event.host, labels: hostLabels } };
      }
      // Resumed(Migrated) on the destination: the migration is complete, the guest runs there.
      if (event.event === Lifecycle.RESUMED && event.detail === Lifecycle.RESUMED_MIGRATED) return { libvirtDomain, reason: 'migrated' };
      // The source's Suspended/Stopped(Migrated) say nothing the destination's events do not.
      if ((event.event === Lifecycle.STOPPED && event.detail === Lifecycle.STOPPED_MIGRATED) || event.event === Lifecycle.SUSPENDED) return undefined;
      return { libvirtDomain, reason: LIFECYCLE_NAMES[event.event] ?? `lifecycle-${event.event}` };
    case 'device-removed':
    case 'device-added':
      return { libvirtDomain, reason: event.kind };
    case 'tray-change':
      // Our own swaps open and close trays; a tray someone else opened must be looked at again.
      return event.reason === 'open' ? undefined : { libvirtDomain, reason: 'tray-closed' };
    case 'migration-iteration':
    case 'job-completed':
      return undefined;
  }
}
