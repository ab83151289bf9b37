// The libvirt driver on the test bed (real libvirtds, real QEMU guest): the GlusterFS example's
// layers, rendered for the host the domain runs on, are converged onto empty SATA drives; after a
// live migration to the other host (another zone) the infrastructure and legislative layers are
// re-rendered and swapped — one into the spare empty drive (make before break: the old drive is
// emptied after), one in place as there is only one spare — the assignment travelled with the
// domain in its metadata — and the guest reads the new cache address. release() empties the drives.
// Before that, a migration aborted mid-way leaves the domain running where it was.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LibvirtClient } from '../../src/drivers/libvirt/client.js';
import { LibvirtDriver } from '../../src/drivers/libvirt/driver.js';
import { LayerImageStore } from '../../src/images/layer-image.js';
import { DeadlineError } from '../../src/runtime/controller.js';
import { guestReads as readByGuest } from '../testbed/agent.js';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';
import { desiredLayers } from '../testbed/site.js';
import { REPO, ZONE_A, ZONE_B } from './scenario.js';

const DOMAIN = 'gluster-client-1';
const target = { namespace: 'default', vmContext: 'gluster-client-1', libvirt: { domain: DOMAIN } };

describe.skipIf(testbedSkipReason())('libvirt driver on real libvirtd + QEMU', () => {
  let tb: Testbed;
  let driver: LibvirtDriver;
  const store = new LayerImageStore(mkdtempSync(join(tmpdir(), 'drv-images-')));
  /** The example's layers rendered for a host, as images in the store. */
  const desiredFor = (host: string, labels: Record<string, string>) => desiredLayers({ dir: join(REPO, 'examples', 'gluster'), store, vm: DOMAIN, node: { name: host, labels } });

  /** The drive on which the guest reports a file with that content, from `from` on. */
  const guestReads = async (path: string, pattern: RegExp, from: number): Promise<string> => (await readByGuest(tb, DOMAIN, path, pattern, from, 30_000)).drive;

  beforeAll(async () => {
    tb = await useTestbed();
    const xml = join(mkdtempSync(join(tmpdir(), 'drv-')), 'domain.xml');
    writeFileSync(xml, tb.domainXml({ name: DOMAIN, cdroms: 5 }));
    await tb.virsh('host-a', ['create', xml]);
    await tb.waitForConsole(DOMAIN, /CTX ALIVE 1/, 90_000);
    driver = new LibvirtDriver([
      { name: 'host-a', socketPath: tb.host('host-a').socket, labels: ZONE_A },
      { name: 'host-b', socketPath: tb.host('host-b').socket, labels: ZONE_B },
    ]);
  }, 180_000);

  afterAll(async () => {
    await driver?.close();
    for (const host of ['host-a', 'host-b'] as const) await tb?.virsh(host, ['destroy', DOMAIN]).catch(() => undefined);
  });

  it('observes where the domain runs, with the host labels', async () => {
    expect(await driver.observe(target)).toEqual({ running: true, node: 'host-a', nodeLabels: ZONE_A });
    expect(await driver.observe({ ...target, libvirt: { domain: 'no-such-domain' } })).toBeUndefined();
  });

  it('converges the layers onto empty drives; the guest mounts them all; converging again does nothing', async () => {
    const from = tb.consoleOffset(DOMAIN);
    const desired = await desiredFor('host-a', ZONE_A);
    const result = await driver.converge(target, desired);
    expect(result.layers.map((l) => [l.name, l.device])).toEqual([
      ['data-residency', 'sda'],
      ['site-cache', 'sdb'],
      ['broker-endpoints', 'sdc'],
      ['gluster-service', 'sdd'],
    ]);
    await guestReads('etc/glusterfs/cache.conf', /cache-a\.zone-a/, from);
    await guestReads('etc/policy/data-residency.conf', /jurisdiction = EU/, from);
    const again = await driver.converge(target, desired);
    expect(again.layers.every((l) => l.attachedAt === undefined)).toBe(true);
  });

  it('aborting a migration (the reconcile deadline) cancels its job: Failed, saying so; the VM stays and runs on host A', async () => {
    // Slow the copy to 1 MiB/s (a 256 MiB guest: minutes) so that the abort lands mid-way.
    await tb.virsh('host-a', ['migrate-setspeed', DOMAIN, '1']);
    try {
      const deadline = new AbortController();
      setTimeout(() => deadline.abort(new DeadlineError('reconcile timed out after 1500 ms')), 1500);
      const alive = tb.consoleOffset(DOMAIN);
      const started = Date.now();
      const result = await driver.migrate(target, { nodeSelector: ZONE_B, requester: 'test' }, deadline.signal);
      const tookMs = Date.now() - started;
      expect(result).toMatchObject({ id: 'host-a->host-b', state: 'Failed', node: 'host-a' });
      expect(result.message).toMatch(/^aborted \(reconcile timed out after 1500 ms\): .*abort.*; the VM stays on host-a$/);
      expect(tookMs).toBeLessThan(10_000); // ended, not abandoned: the copy alone would take minutes
      expect(await driver.observe(target)).toEqual({ running: true, node: 'host-a', nodeLabels: ZONE_A });
      expect((await tb.virsh('host-b', ['list', '--all', '--name'])).stdout).not.toContain(DOMAIN);
      await tb.waitForConsole(DOMAIN, /CTX ALIVE \d+/, 15_000, alive); // the guest kept running
      console.log(`migration aborted 1500 ms in; migrate() returned after ${tookMs} ms: ${result.message}`);
      // Aborted before it is asked for: nothing is started.
      await expect(driver.migrate(target, { nodeSelector: ZONE_B, requester: 'test' }, deadline.signal)).rejects.toBeInstanceOf(DeadlineError);
    } finally {
      await tb.virsh('host-a', ['migrate-setspeed', DOMAIN, '8796093022207']); // libvirt's maximum: unlimited again
    }
  });

  it('after a live migration to host B, swaps the re-rendered layers: into the spare drive, else in place', async () => {
    const a = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
    try {
      await a.migrate((await a.lookupDomain(DOMAIN))!, tb.host('host-b').uri, { migrateUri: 'tcp://127.0.0.1' });
    } finally {
      await a.close();
    }
    const observed = await driver.observe(target);
    expect(observed).toMatchObject({ running: true, node: 'host-b', nodeLabels: ZONE_B });
    expect(observed?.migrationId).toMatch(/^host-b\/\d+$/);
    const from = tb.consoleOffset(DOMAIN);
    const started = Date.now();
    const result = await driver.converge(target, await desiredFor('host-b', ZONE_B));
    const changed = result.layers.filter((l) => l.attachedAt).map((l) => `${l.name}@${l.device}`);
    expect(changed.sort()).toEqual(['data-residency@sde', 'site-cache@sdb']);
    await guestReads('etc/glusterfs/cache.conf', /cache-b\.zone-b/, from);
    console.log(`converge after migration: detach ${result.detachMs.toFixed(0)} ms, attach ${result.attachMs.toFixed(0)} ms, release ${result.releaseMs?.toFixed(0)} ms; guest read the new cache address ${Date.now() - started} ms after converge began`);
  });

  it('release empties every drive it filled', async () => {
    const from = tb.consoleOffset(DOMAIN);
    await driver.release(target);
    // The guest lets go of each medium (unmount on the eject request) and then sees the drive empty.
    // (sr0, emptied after the migration's swap, may report late: only the four drives count here.)
    const filled = ['sr1', 'sr2', 'sr3', 'sr4'];
    const emptied = new Set<string>();
    for (let at = from; !filled.every((d) => emptied.has(d)); ) {
      const seen = await tb.waitForConsole(DOMAIN, /CTX NOMEDIUM (sr\d)/, 30_000, at);
      emptied.add(seen.match[1]!);
      at = seen.offset;
    }
    const drives = await driver.converge(target, []);
    expect(drives.layers).toEqual([]);
  });
});
