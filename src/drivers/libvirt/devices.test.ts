import { describe, expect, it } from 'vitest';
import { assignmentsOf, assignmentsXml, cdromsOf, cdromXml, NoFreeDriveError, planDevices, type Assignment } from './devices.js';

// Shaped like libvirt 9's live XML (virDomainGetXMLDesc) of a running test-bed guest.
const domainXml = (metadata = '', sdb = '') => `<domain type='qemu' id='3'>
  <name>g</name>
  <metadata>${metadata}</metadata>
  <devices>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/images/aaa.iso' index='2'/>
      <backingStore/>
      <target dev='sda' bus='sata'/>
      <readonly/>
      <alias name='sata0-0-0'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      ${sdb}
      <target dev='sdb' bus='sata'/>
      <readonly/>
      <alias name='sata0-0-1'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sdc' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='disk'><source file='/root.qcow2'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>`;

const recorded: Assignment[] = [{ layer: 'svc', target: 'sda', digest: 'sha256:aaa' }];
// As virDomainGetXMLDesc shows what virDomainSetMetadata stored under prefix and namespace.
const meta = `<recontext:layers xmlns:recontext="https://recontext.dev/libvirt/v1alpha1"><recontext:layer name="svc" target="sda" digest="sha256:aaa"/></recontext:layers>`;

describe('reading the live domain', () => {
  it('lists CD-ROM drives with their media, ignoring other disks', () => {
    expect(cdromsOf(domainXml('', "<source file='/other/cloud-init.iso'/>"))).toEqual([
      { target: 'sda', bus: 'sata', source: '/images/aaa.iso' },
      { target: 'sdb', bus: 'sata', source: '/other/cloud-init.iso' },
      { target: 'sdc', bus: 'sata' },
    ]);
  });

  it('writes the element libvirt wants (no prefix, no namespace declaration) and reads what it shows', () => {
    expect(assignmentsXml(recorded)).toBe('<layers><layer name="svc" target="sda" digest="sha256:aaa"/></layers>');
  });

  it('reads the assignment from the domain metadata, whatever the prefix', () => {
    expect(assignmentsOf(domainXml(meta))).toEqual(recorded);
    expect(assignmentsOf(domainXml(meta.replaceAll('recontext:', 'rc:').replace('xmlns:recontext', 'xmlns:rc')))).toEqual(recorded);
    expect(assignmentsOf(domainXml('<other:x xmlns:other="urn:x"/>'))).toEqual([]);
    expect(assignmentsOf(domainXml())).toEqual([]);
  });

  it('writes device XML that escapes paths', () => {
    expect(cdromXml('sda', 'sata', '/img/a&b.iso')).toBe('<disk type="file" device="cdrom"><driver name="qemu" type="raw"/><source file="/img/a&amp;b.iso"/><target dev="sda" bus="sata"/><readonly/></disk>');
    expect(cdromXml('sda', 'sata')).not.toContain('<source');
  });
});

describe('planDevices', () => {
  const observed = cdromsOf(domainXml());

  it('is empty when the drives already hold the wanted images (idempotent)', () => {
    expect(planDevices(observed, recorded, [{ name: 'svc', digest: 'sha256:aaa', image: '/images/aaa.iso' }])).toEqual({ actions: [], intent: recorded, assignments: recorded });
  });

  it('changes the medium of a layer in its own drive, and puts a new layer in the first empty drive', () => {
    const plan = planDevices(observed, recorded, [
      { name: 'svc', digest: 'sha256:bbb', image: '/images/bbb.iso' },
      { name: 'cache', digest: 'sha256:ccc', image: '/images/ccc.iso' },
    ]);
    expect(plan.actions).toEqual([
      { kind: 'change-media', layer: 'svc', target: 'sda', bus: 'sata', source: '/images/bbb.iso' },
      { kind: 'change-media', layer: 'cache', target: 'sdb', bus: 'sata', source: '/images/ccc.iso' },
    ]);
    expect(plan.assignments).toEqual([
      { layer: 'svc', target: 'sda', digest: 'sha256:bbb' },
      { layer: 'cache', target: 'sdb', digest: 'sha256:ccc' },
    ]);
  });

  it('empties the drive of a removed layer, and reuses a freed drive without ejecting first', () => {
    const removed = planDevices(observed, recorded, []);
    expect(removed.actions).toEqual([{ kind: 'eject', layer: 'svc', target: 'sda', bus: 'sata' }]);
    expect(removed.intent).toEqual(recorded); // still claimed until the eject is done
    expect(removed.assignments).toEqual([]);
    const swapped = planDevices(cdromsOf(domainXml('', '')).filter((d) => d.target !== 'sdb' && d.target !== 'sdc'), recorded, [{ name: 'legal', digest: 'sha256:ddd', image: '/images/ddd.iso' }]);
    expect(swapped.actions).toEqual([{ kind: 'change-media', layer: 'legal', target: 'sda', bus: 'sata', source: '/images/ddd.iso' }]);
  });

  it('never takes a drive that holds a medium recontext did not put there', () => {
    const withCloudInit = cdromsOf(domainXml('', "<source file='/other/cloud-init.iso'/>"));
    const plan = planDevices(withCloudInit, recorded, [
      { name: 'svc', digest: 'sha256:aaa', image: '/images/aaa.iso' },
      { name: 'cache', digest: 'sha256:ccc', image: '/images/ccc.iso' },
    ]);
    expect(plan.actions).toEqual([{ kind: 'change-media', layer: 'cache', target: 'sdc', bus: 'sata', source: '/images/ccc.iso' }]);
    expect(() => planDevices(withCloudInit, recorded, ['a', 'b', 'c'].map((n) => ({ name: n, digest: n, image: `/${n}.iso` })))).toThrow(NoFreeDriveError);
  });

  it('forgets assignments to drives that no longer exist', () => {
    const plan = planDevices(observed, [{ layer: 'svc', target: 'sdz', digest: 'x' }], [{ name: 'svc', digest: 'sha256:aaa', image: '/images/aaa.iso' }]);
    expect(plan.assignments).toEqual([{ layer: 'svc', target: 'sdb', digest: 'sha256:aaa' }]);
  });
});
