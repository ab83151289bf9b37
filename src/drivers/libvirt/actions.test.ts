import { describe, expect, it } from 'vitest';
import { applyDeviceAction, DeviceRemovalPendingError, type DeviceClient } from './actions.js';
import { AffectFlags, type DomainRef } from './client.js';

const domain: DomainRef = { name: 'g', uuid: Buffer.alloc(16), id: 3 };
const cdrom = (target: string) => `<disk type='file' device='cdrom'><target dev='${target}' bus='scsi'/></disk>`;

/** A client whose domain still shows `sdc` for the first `lingers` reads after the detach call. */
function fakeClient(options: { lingers: number; detachFails?: boolean }) {
  const calls: string[] = [];
  let reads = 0;
  let detached = false;
  const client: DeviceClient = {
    updateDevice: async (_d, xml, flags) => void calls.push(`update ${flags} ${xml}`),
    attachDevice: async (_d, xml, flags) => void calls.push(`attach ${flags} ${xml}`),
    detachDevice: async (_d, xml) => {
      calls.push(`detach ${xml}`);
      detached = true;
      if (options.detachFails) throw new Error('no device found for sdc');
    },
    domainXml: async () => {
      calls.push('read');
      const gone = detached && reads++ >= options.lingers;
      return `<domain><devices>${cdrom('sdb')}${gone ? '' : cdrom('sdc')}</devices></domain>`;
    },
  };
  return { client, calls };
}

describe('applyDeviceAction', () => {
  it('changes media and hot-plugs live, never forced', async () => {
    const { client, calls } = fakeClient({ lingers: 0 });
    await applyDeviceAction(client, domain, { kind: 'change-media', layer: 'l', target: 'sda', bus: 'sata', source: '/a.iso' });
    await applyDeviceAction(client, domain, { kind: 'eject', layer: 'l', target: 'sda', bus: 'sata' });
    await applyDeviceAction(client, domain, { kind: 'attach', layer: 'l', target: 'sdd', bus: 'scsi', source: '/b.iso', controller: 0, unit: 4 });
    expect(calls).toEqual([
      `update ${AffectFlags.LIVE} <disk type="file" device="cdrom"><driver name="qemu" type="raw"/><source file="/a.iso"/><target dev="sda" bus="sata"/><readonly/></disk>`,
      `update ${AffectFlags.LIVE} <disk type="file" device="cdrom"><driver name="qemu" type="raw"/><target dev="sda" bus="sata"/><readonly/></disk>`,
      `attach ${AffectFlags.LIVE} <disk type="file" device="cdrom"><driver name="qemu" type="raw"/><source file="/b.iso"/><target dev="sdd" bus="scsi"/><readonly/><address type="drive" controller="0" bus="0" target="0" unit="4"/></disk>`,
    ]);
  });

  it('reports a detach done only once the drive has left the live XML', async () => {
    const { client, calls } = fakeClient({ lingers: 2 });
    await applyDeviceAction(client, domain, { kind: 'detach', layer: 'l', target: 'sdc', bus: 'scsi' }, { pollMs: 1 });
    expect(calls.filter((c) => c === 'read')).toHaveLength(3);
  });

  it('fails when the drive stays, so the next converge tries again', async () => {
    const { client } = fakeClient({ lingers: Infinity });
    await expect(applyDeviceAction(client, domain, { kind: 'detach', layer: 'l', target: 'sdc', bus: 'scsi' }, { removalTimeoutMs: 20, pollMs: 5 })).rejects.toThrow(DeviceRemovalPendingError);
  });

  it('takes a failed detach of a drive that is gone anyway (an earlier request finished) as done', async () => {
    await applyDeviceAction(fakeClient({ lingers: 0, detachFails: true }).client, domain, { kind: 'detach', layer: 'l', target: 'sdc', bus: 'scsi' });
    await expect(applyDeviceAction(fakeClient({ lingers: Infinity, detachFails: true }).client, domain, { kind: 'detach', layer: 'l', target: 'sdc', bus: 'scsi' })).rejects.toThrow('no device found');
  });
});
