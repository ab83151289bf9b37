import { describe, expect, it } from 'vitest';
import { changeOfEvent } from './events.js';
import { Lifecycle } from './protocol.js';
import type { HostDomainEvent } from './session.js';

const domain = { name: 'vm1', uuid: Buffer.alloc(16), id: 3 };
const labels = { zone: 'b' };
const lifecycle = (host: string, event: number, detail: number): HostDomainEvent => ({ kind: 'lifecycle', domain, event, detail, host });

describe('changeOfEvent', () => {
  it('turns a migration into "prepare on the destination" at its start and "look again" at its end', () => {
    expect(changeOfEvent(lifecycle('host-b', Lifecycle.STARTED, Lifecycle.STARTED_MIGRATED), labels)).toEqual({ libvirtDomain: 'vm1', reason: 'incoming-migration', incoming: { node: 'host-b', labels } });
    expect(changeOfEvent(lifecycle('host-b', Lifecycle.RESUMED, Lifecycle.RESUMED_MIGRATED), labels)).toEqual({ libvirtDomain: 'vm1', reason: 'migrated' });
  });

  it("ignores the source's side of a migration and our own tray openings", () => {
    expect(changeOfEvent(lifecycle('host-a', Lifecycle.SUSPENDED, 1), labels)).toBeUndefined();
    expect(changeOfEvent(lifecycle('host-a', Lifecycle.STOPPED, Lifecycle.STOPPED_MIGRATED), labels)).toBeUndefined();
    expect(changeOfEvent({ kind: 'tray-change', domain, devAlias: 'sata0-0-0', reason: 'open', host: 'host-a' }, labels)).toBeUndefined();
    expect(changeOfEvent({ kind: 'job-completed', domain, stats: {}, host: 'host-a' }, labels)).toBeUndefined();
  });

  it('has every other change looked at again', () => {
    expect(changeOfEvent(lifecycle('host-a', Lifecycle.STARTED, 0), labels)?.reason).toBe('started');
    expect(changeOfEvent(lifecycle('host-a', Lifecycle.STOPPED, 2), labels)?.reason).toBe('stopped');
    expect(changeOfEvent({ kind: 'device-removed', domain, devAlias: 'scsi0-0-0-1', host: 'host-a' }, labels)).toEqual({ libvirtDomain: 'vm1', reason: 'device-removed' });
    expect(changeOfEvent({ kind: 'tray-change', domain, devAlias: 'sata0-0-0', reason: 'close', host: 'host-a' }, labels)?.reason).toBe('tray-closed');
  });
});
