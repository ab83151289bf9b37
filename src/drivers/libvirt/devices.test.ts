import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assignmentsOf, assignmentsXml, cdromsOf, cdromXml, isMaking, NoFreeDriveError, planDevices, scsiRoomOf, type Assignment, type DeviceAction, type ObservedCdrom, type ScsiRoom, type WantedLayer } from './devices.js';

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

  it('puts a new layer in the first empty drive; moves a changed layer to a spare empty drive, then empties its old one', () => {
    const plan = planDevices(observed, recorded, [
      { name: 'svc', digest: 'sha256:bbb', image: '/images/bbb.iso' },
      { name: 'cache', digest: 'sha256:ccc', image: '/images/ccc.iso' },
    ]);
    expect(plan.actions).toEqual([
      { kind: 'change-media', layer: 'cache', target: 'sdb', bus: 'sata', source: '/images/ccc.iso' },
      { kind: 'change-media', layer: 'svc', target: 'sdc', bus: 'sata', source: '/images/bbb.iso' },
      { kind: 'eject', layer: 'svc', target: 'sda', bus: 'sata' },
    ]);
    expect(plan.actions.map(isMaking)).toEqual([true, true, false]);
    expect(plan.assignments).toEqual([
      { layer: 'cache', target: 'sdb', digest: 'sha256:ccc' },
      { layer: 'svc', target: 'sdc', digest: 'sha256:bbb' },
    ]);
    // The old drive stays claimed until it is emptied; a crash in between keeps the new one.
    expect(plan.intent).toEqual([recorded[0], ...plan.assignments]);
    const afterCrash = observed.map((d) => (d.target === 'sdb' ? { ...d, source: '/images/ccc.iso' } : d.target === 'sdc' ? { ...d, source: '/images/bbb.iso' } : d));
    const healed = planDevices(afterCrash, plan.intent, [
      { name: 'svc', digest: 'sha256:bbb', image: '/images/bbb.iso' },
      { name: 'cache', digest: 'sha256:ccc', image: '/images/ccc.iso' },
    ]);
    expect(healed.actions).toEqual([{ kind: 'eject', layer: 'svc', target: 'sda', bus: 'sata' }]);
    expect(healed.assignments).toEqual(plan.assignments);
  });

  it('changes the medium in place when no spare empty drive is left', () => {
    const twoDrives = observed.filter((d) => d.target !== 'sdc');
    const plan = planDevices(twoDrives, recorded, [
      { name: 'svc', digest: 'sha256:bbb', image: '/images/bbb.iso' },
      { name: 'cache', digest: 'sha256:ccc', image: '/images/ccc.iso' },
    ]);
    expect(plan.actions).toEqual([
      { kind: 'change-media', layer: 'svc', target: 'sda', bus: 'sata', source: '/images/bbb.iso' },
      { kind: 'change-media', layer: 'cache', target: 'sdb', bus: 'sata', source: '/images/ccc.iso' },
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

// A running domain with a virtio-scsi controller: a boot-time SCSI disk at unit 0, a SATA CD-ROM.
const scsiDomainXml = (metadata = '', extraDisks = '') => `<domain type='qemu' id='4'>
  <name>g</name>
  <metadata>${metadata}</metadata>
  <devices>
    <disk type='file' device='disk'>
      <source file='/root.qcow2'/><target dev='sda' bus='scsi'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/other/cloud-init.iso'/><target dev='sdb' bus='sata'/><readonly/>
      <address type='drive' controller='0' bus='0' target='0' unit='1'/>
    </disk>
    ${extraDisks}
    <controller type='sata' index='0'/>
    <controller type='scsi' index='0' model='virtio-scsi'><alias name='scsi0'/></controller>
    <hostdev mode='subsystem' type='scsi'><address type='drive' controller='0' bus='0' target='0' unit='2'/></hostdev>
  </devices>
</domain>`;
const hotCdrom = (target: string, unit: number, source?: string) =>
  `<disk type='file' device='cdrom'>${source ? `<source file='${source}'/>` : ''}<target dev='${target}' bus='scsi'/><readonly/><address type='drive' controller='0' bus='0' target='0' unit='${unit}'/></disk>`;
const layer = (name: string, version = 1): WantedLayer => ({ name, digest: `sha256:${name}${version}`, image: `/images/${name}${version}.iso` });

describe('hot-plugging SCSI CD-ROMs', () => {
  it('finds the virtio-scsi controller and the targets and units taken on it', () => {
    expect(scsiRoomOf(scsiDomainXml())).toEqual({ controller: 0, usedTargets: ['sda', 'sdb'], usedUnits: [0, 1, 2] });
    // Without one there is no hot-plug: libvirt's own choice (lsilogic) has no PCI slot on q35.
    expect(scsiRoomOf(domainXml())).toBeUndefined();
    expect(scsiRoomOf(scsiDomainXml().replace("model='virtio-scsi'", "model='lsilogic'"))).toBeUndefined();
  });

  it('records which drives it hot-plugged, and reads records written before that as boot drives', () => {
    const hot: Assignment[] = [{ layer: 'svc', target: 'sdc', digest: 'sha256:aaa', hotplugged: true }, ...recorded];
    expect(assignmentsXml(hot)).toBe('<layers><layer name="svc" target="sda" digest="sha256:aaa"/><layer name="svc" target="sdc" digest="sha256:aaa" hotplugged="true"/></layers>');
    const shown = assignmentsXml(hot).replaceAll('<layer ', '<recontext:layer ').replace('<layers>', `<recontext:layers xmlns:recontext="${'https://recontext.dev/libvirt/v1alpha1'}">`).replace('</layers>', '</recontext:layers>');
    expect(assignmentsOf(domainXml(shown))).toEqual([recorded[0], hot[0]]);
    expect(assignmentsOf(domainXml(meta))[0]).not.toHaveProperty('hotplugged');
  });

  it('writes an explicit address on the controller for a hot-plug', () => {
    expect(cdromXml('sdc', 'scsi', '/i.iso', { controller: 0, unit: 3 })).toBe(
      '<disk type="file" device="cdrom"><driver name="qemu" type="raw"/><source file="/i.iso"/><target dev="sdc" bus="scsi"/><readonly/><address type="drive" controller="0" bus="0" target="0" unit="3"/></disk>',
    );
  });

  it('plugs a new SCSI CD-ROM per layer that has no free drive, on unused targets and units; claims them first', () => {
    const xml = scsiDomainXml();
    const plan = planDevices(cdromsOf(xml), [], [layer('svc'), layer('infra')], scsiRoomOf(xml));
    expect(plan.actions).toEqual([
      { kind: 'attach', layer: 'svc', target: 'sdc', bus: 'scsi', source: '/images/svc1.iso', controller: 0, unit: 3 },
      { kind: 'attach', layer: 'infra', target: 'sdd', bus: 'scsi', source: '/images/infra1.iso', controller: 0, unit: 4 },
    ]);
    expect(plan.intent).toEqual(plan.assignments);
    expect(plan.assignments).toEqual([
      { layer: 'svc', target: 'sdc', digest: 'sha256:svc1', hotplugged: true },
      { layer: 'infra', target: 'sdd', digest: 'sha256:infra1', hotplugged: true },
    ]);
  });

  it('fills empty boot drives first and hot-plugs only the rest', () => {
    const xml = scsiDomainXml('', "<disk type='file' device='cdrom'><target dev='sdc' bus='sata'/><readonly/></disk>");
    const plan = planDevices(cdromsOf(xml), [], [layer('svc'), layer('infra')], scsiRoomOf(xml));
    expect(plan.actions.map((a) => `${a.kind} ${a.layer} ${a.target}`)).toEqual(['change-media svc sdc', 'attach infra sdd']);
  });

  it('without a virtio-scsi controller says what to add to the domain', () => {
    const plan = () => planDevices(cdromsOf(domainXml()), recorded, ['a', 'b', 'c', 'd', 'e'].map((n) => layer(n)));
    expect(plan).toThrow(NoFreeDriveError);
    expect(plan).toThrow(/2 more empty CD-ROM drives .* <controller type='scsi' model='virtio-scsi'\/>/);
  });

  it('changes a layer on a hot-plugged drive by plugging a new drive, then unplugging the old one', () => {
    const xml = scsiDomainXml('', hotCdrom('sdc', 3, '/images/svc1.iso'));
    const before: Assignment[] = [{ layer: 'svc', target: 'sdc', digest: 'sha256:svc1', hotplugged: true }];
    expect(planDevices(cdromsOf(xml), before, [layer('svc')], scsiRoomOf(xml))).toEqual({ actions: [], intent: before, assignments: before });
    const plan = planDevices(cdromsOf(xml), before, [layer('svc', 2)], scsiRoomOf(xml));
    expect(plan.actions).toEqual([
      { kind: 'attach', layer: 'svc', target: 'sdd', bus: 'scsi', source: '/images/svc2.iso', controller: 0, unit: 4 },
      { kind: 'detach', layer: 'svc', target: 'sdc', bus: 'scsi' },
    ]);
    expect(plan.intent).toEqual([...before, { layer: 'svc', target: 'sdd', digest: 'sha256:svc2', hotplugged: true }]);
    expect(plan.assignments).toEqual([{ layer: 'svc', target: 'sdd', digest: 'sha256:svc2', hotplugged: true }]);
  });

  it('unplugs hot-plugged drives and empties boot drives of removed layers', () => {
    const xml = scsiDomainXml('', hotCdrom('sdc', 3, '/images/svc1.iso') + "<disk type='file' device='cdrom'><source file='/images/infra1.iso'/><target dev='sde' bus='sata'/></disk>");
    const before: Assignment[] = [
      { layer: 'svc', target: 'sdc', digest: 'sha256:svc1', hotplugged: true },
      { layer: 'infra', target: 'sde', digest: 'sha256:infra1' },
    ];
    const plan = planDevices(cdromsOf(xml), before, []);
    expect(plan.actions).toEqual([
      { kind: 'eject', layer: 'infra', target: 'sde', bus: 'sata' },
      { kind: 'detach', layer: 'svc', target: 'sdc', bus: 'scsi' },
    ]);
    expect(plan.intent).toEqual(before);
    expect(plan.assignments).toEqual([]);
  });

  describe('after a crash', () => {
    const claimed: Assignment[] = [{ layer: 'svc', target: 'sdc', digest: 'sha256:svc1', hotplugged: true }];

    it('between claiming a new drive and plugging it: plugs it (the claim on a missing drive does not count)', () => {
      const xml = scsiDomainXml();
      expect(planDevices(cdromsOf(xml), claimed, [layer('svc')], scsiRoomOf(xml)).actions).toEqual([
        { kind: 'attach', layer: 'svc', target: 'sdc', bus: 'scsi', source: '/images/svc1.iso', controller: 0, unit: 3 },
      ]);
    });

    it('between plugging a replacement and unplugging the old drive: keeps the new one, unplugs the old', () => {
      const xml = scsiDomainXml('', hotCdrom('sdc', 3, '/images/svc1.iso') + hotCdrom('sdd', 4, '/images/svc2.iso'));
      const intent = [...claimed, { layer: 'svc', target: 'sdd', digest: 'sha256:svc2', hotplugged: true }];
      const plan = planDevices(cdromsOf(xml), intent, [layer('svc', 2)], scsiRoomOf(xml));
      expect(plan.actions).toEqual([{ kind: 'detach', layer: 'svc', target: 'sdc', bus: 'scsi' }]);
      expect(plan.assignments).toEqual([intent[1]]);
    });

    it('after an unplug finished but before the record was updated: forgets the drive', () => {
      const xml = scsiDomainXml();
      expect(planDevices(cdromsOf(xml), claimed, [], scsiRoomOf(xml))).toEqual({ actions: [], intent: [], assignments: [] });
    });
  });
});

/**
 * A domain as libvirt 9.0 behaves for these actions: boot drives swap in place, hot-plugged ones
 * cannot (the tray libvirt does not track), targets and units must be new.
 */
class ModelDomain {
  drives: (ObservedCdrom & { unit: number; hotplugged: boolean })[];
  record: Assignment[] = [];

  constructor(bootDrives: number, foreign: boolean) {
    this.drives = Array.from({ length: bootDrives }, (_, i) => ({ target: `sd${String.fromCharCode(97 + i)}`, bus: 'sata', unit: i, hotplugged: false }));
    if (foreign) this.drives.push({ target: 'sdz', bus: 'sata', unit: 25, hotplugged: false, source: '/other/cloud-init.iso' });
  }

  room(): ScsiRoom {
    return { controller: 0, usedTargets: this.drives.map((d) => d.target), usedUnits: this.drives.map((d) => d.unit) };
  }

  plan(wanted: readonly WantedLayer[]) {
    return planDevices(this.drives.map(({ target, bus, source }) => ({ target, bus, ...(source ? { source } : {}) })), this.record, wanted, this.room());
  }

  apply(action: DeviceAction): void {
    const drive = this.drives.find((d) => d.target === action.target);
    switch (action.kind) {
      case 'change-media':
      case 'eject':
        if (!drive || drive.hotplugged) throw new Error(`cannot change the medium of ${action.target}`);
        if (drive.source === '/other/cloud-init.iso') throw new Error('touched a foreign medium');
        if (action.kind === 'eject') delete (drive as { source?: string }).source;
        else Object.assign(drive, { source: action.source });
        return;
      case 'attach':
        if (drive || this.drives.some((d) => d.unit === action.unit)) throw new Error(`${action.target} or unit ${action.unit} taken`);
        this.drives.push({ target: action.target, bus: 'scsi', unit: action.unit, hotplugged: true, source: action.source });
        return;
      case 'detach':
        if (!drive?.hotplugged) throw new Error(`cannot unplug ${action.target}`);
        this.drives = this.drives.filter((d) => d !== drive);
    }
  }

  /** LibvirtDriver.converge, optionally stopped after `crashAfter` actions. */
  converge(wanted: readonly WantedLayer[], crashAfter = Infinity): void {
    const plan = this.plan(wanted);
    this.record = [...plan.intent];
    for (const [i, action] of plan.actions.entries()) {
      if (i >= crashAfter) return;
      this.apply(action);
    }
    if (crashAfter <= plan.actions.length) return;
    this.record = [...plan.assignments];
  }
}

describe('planDevices on a model domain (property)', () => {
  const wantedSets = fc.array(fc.uniqueArray(fc.record({ name: fc.constantFrom('svc', 'infra', 'legal', 'broker', 'extra'), version: fc.integer({ min: 1, max: 3 }) }), { selector: (l) => l.name, maxLength: 5 }), { minLength: 1, maxLength: 5 });

  it('converges from any crash to exactly the wanted images, and then plans nothing', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), fc.boolean(), wantedSets, fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 5 }), (bootDrives, foreign, steps, crashes) => {
        const domain = new ModelDomain(bootDrives, foreign);
        for (const [i, step] of steps.entries()) {
          const wanted = step.map((l) => layer(l.name, l.version));
          domain.converge(wanted, crashes[i] ?? Infinity);
          domain.converge(wanted);
          const held = new Map(domain.record.map((a) => [a.layer, domain.drives.find((d) => d.target === a.target)?.source]));
          expect(held).toEqual(new Map(wanted.map((w) => [w.name, w.image])));
          expect(domain.plan(wanted).actions).toEqual([]);
          // No hot-plugged drive is left that no layer uses; boot drives and foreign media stay.
          expect(domain.drives.filter((d) => d.hotplugged).every((d) => domain.record.some((a) => a.target === d.target && a.hotplugged))).toBe(true);
          expect(domain.drives.filter((d) => !d.hotplugged)).toHaveLength(bootDrives + (foreign ? 1 : 0));
        }
        domain.converge([]);
        expect(domain.drives.filter((d) => d.hotplugged || d.source?.startsWith('/images/'))).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});
