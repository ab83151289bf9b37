// The libvirt driver's hot-plug fallback on the test bed (real libvirtd, real QEMU guest): a
// guest booted with no CD-ROM at all, only a virtio-scsi controller, gets the GlusterFS
// example's layers as hot-plugged SCSI CD-ROMs. A changed layer gets a new drive and its old one
// is unplugged (libvirt 9.0 cannot change the medium of a hot-plugged CD-ROM without force);
// a drive unplugged behind the driver's back is plugged again; release() unplugs them all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LibvirtClient, type DomainRef } from '../../src/drivers/libvirt/client.js';
import { assignmentsOf, cdromsOf, cdromXml } from '../../src/drivers/libvirt/devices.js';
import { LibvirtDriver } from '../../src/drivers/libvirt/driver.js';
import { LayerImageStore } from '../../src/images/layer-image.js';
import { guestReads as readByGuest } from '../testbed/agent.js';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';
import { desiredLayers } from '../testbed/site.js';
import { REPO, ZONE_A, ZONE_B } from './scenario.js';

const DOMAIN = `scsi-${process.pid}`;
const target = { namespace: 'default', vmContext: 'gluster-client-1', libvirt: { domain: DOMAIN } };

describe.skipIf(testbedSkipReason())('libvirt driver: hot-plugged SCSI CD-ROMs on real libvirtd + QEMU', () => {
  let tb: Testbed;
  let driver: LibvirtDriver;
  let client: LibvirtClient;
  let domain: DomainRef;
  const store = new LayerImageStore(mkdtempSync(join(tmpdir(), 'scsi-images-')));
  /** The example's layers rendered for host-a as if it had `labels`, as images in the store. */
  const desiredFor = (labels: Record<string, string>) => desiredLayers({ dir: join(REPO, 'examples', 'gluster'), store, vm: 'gluster-client-1', node: { name: 'host-a', labels } });

  /** The guest device on which it reported `path` with content matching `pattern`, from `from` on. */
  const guestReads = async (path: string, pattern: RegExp, from: number): Promise<string> => (await readByGuest(tb, DOMAIN, path, pattern, from, 30_000)).drive;

  /** The guest devices it reported unmounted (a drive unplugged under a mount), from `from` on. */
  async function guestUnmounts(count: number, from: number): Promise<string[]> {
    const devices: string[] = [];
    for (let at = from; devices.length < count; ) {
      const seen = await tb.waitForConsole(DOMAIN, /CTX UMOUNT (sr\d+)/, 30_000, at);
      devices.push(seen.match[1]!);
      at = seen.offset;
    }
    return devices.sort();
  }

  const liveCdroms = async () => cdromsOf(await client.domainXml(domain));

  beforeAll(async () => {
    tb = await useTestbed();
    await tb.bootGuest('host-a', { name: DOMAIN, cdroms: 0, virtioScsi: true });
    client = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
    domain = (await client.lookupDomain(DOMAIN))!;
    driver = new LibvirtDriver([{ name: 'host-a', socketPath: tb.host('host-a').socket, labels: ZONE_A }]);
  }, 180_000);

  afterAll(async () => {
    await driver?.close();
    await client?.close();
    await tb?.destroyGuest(DOMAIN);
  });

  it('hot-plugs one SCSI CD-ROM per layer; the guest mounts them all; converging again does nothing', async () => {
    expect(await liveCdroms()).toEqual([]);
    const from = tb.consoleOffset(DOMAIN);
    const desired = await desiredFor(ZONE_A);
    const result = await driver.converge(target, desired);
    expect(result.layers.map((l) => [l.name, l.device])).toEqual([
      ['data-residency', 'sda'],
      ['site-cache', 'sdb'],
      ['broker-endpoints', 'sdc'],
      ['gluster-service', 'sdd'],
    ]);
    expect((await liveCdroms()).map((d) => `${d.target} ${d.bus}`)).toEqual(['sda scsi', 'sdb scsi', 'sdc scsi', 'sdd scsi']);
    expect(assignmentsOf(await client.domainXml(domain)).every((a) => a.hotplugged)).toBe(true);
    await guestReads('etc/glusterfs/cache.conf', /cache-a\.zone-a/, from);
    await guestReads('etc/policy/data-residency.conf', /jurisdiction = EU/, from);
    const again = await driver.converge(target, desired);
    expect(again.layers.every((l) => l.attachedAt === undefined)).toBe(true);
  });

  it('a changed layer gets a new drive, then its old drive is unplugged; the guest reads the new content', async () => {
    const from = tb.consoleOffset(DOMAIN);
    const started = Date.now();
    const result = await driver.converge(target, await desiredFor(ZONE_B));
    const changed = result.layers.filter((l) => l.attachedAt).map((l) => `${l.name}@${l.device}`);
    expect(changed.sort()).toEqual(['data-residency@sde', 'site-cache@sdf']);
    expect((await liveCdroms()).map((d) => d.target)).toEqual(['sdc', 'sdd', 'sde', 'sdf']);
    await guestReads('etc/glusterfs/cache.conf', /cache-b\.zone-b/, from);
    expect(await guestUnmounts(2, from)).toHaveLength(2);
    console.log(`scsi: layer change by new drive + unplug: converge ${result.attachMs.toFixed(0)} ms; guest read the new cache address ${Date.now() - started} ms after converge began`);
  });

  it('plugs a drive again that was unplugged behind its back (the record claims a drive the domain lacks)', async () => {
    const from = tb.consoleOffset(DOMAIN);
    await client.detachDevice(domain, cdromXml('sdf', 'scsi'));
    await guestUnmounts(1, from);
    expect((await liveCdroms()).map((d) => d.target)).not.toContain('sdf');
    const result = await driver.converge(target, await desiredFor(ZONE_B));
    expect(result.layers.filter((l) => l.attachedAt).map((l) => `${l.name}@${l.device}`)).toEqual(['site-cache@sda']);
    await guestReads('etc/glusterfs/cache.conf', /cache-b\.zone-b/, from);
  });

  it('release unplugs every drive it plugged; converging again plugs them again', async () => {
    const from = tb.consoleOffset(DOMAIN);
    const started = Date.now();
    await driver.release(target);
    const releasedMs = Date.now() - started;
    // Gone from the domain when release() returns, not later.
    expect(await liveCdroms()).toEqual([]);
    expect(assignmentsOf(await client.domainXml(domain))).toEqual([]);
    expect(await guestUnmounts(4, from)).toHaveLength(4);
    console.log(`scsi: release unplugged 4 drives in ${releasedMs} ms`);
    await driver.release(target); // idempotent

    const back = tb.consoleOffset(DOMAIN);
    const result = await driver.converge(target, await desiredFor(ZONE_A));
    expect(result.layers.map((l) => l.device)).toEqual(['sda', 'sdb', 'sdc', 'sdd']);
    await guestReads('etc/glusterfs/cache.conf', /cache-a\.zone-a/, back);
    // Unplugged under a mount, the guest lets go cleanly (no failed unmount, read or mount).
    expect(tb.consoleLog(DOMAIN)).not.toContain('CTX ERROR');
  });
});
