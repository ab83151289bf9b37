// Our libvirt client (src/drivers/libvirt) against real libvirtds and a real QEMU guest of the
// test bed: swap a CD-ROM's medium with a non-forced virDomainUpdateDeviceFlags (the guest agent
// releases it and mounts the new one), hear the tray and lifecycle events, live-migrate the
// guest peer-to-peer from host A to host B, and swap again on B — the guest reads each image.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventId, LibvirtClient, type DomainEvent } from '../../src/drivers/libvirt/client.js';
import { DomainState, Lifecycle } from '../../src/drivers/libvirt/protocol.js';
import { buildIso } from '../../src/iso/index.js';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';

const DOMAIN = 'client-it';

async function image(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, `${name}.iso`);
  await buildIso([{ path: 'etc/cache.conf', kind: 'file', content: Buffer.from(text) }], { volumeId: name.toUpperCase(), timestamp: new Date(0) }).writeToFile(path);
  return path;
}

const socketOf = (tb: Testbed, host: 'host-a' | 'host-b') => tb.host(host).socket;

describe.skipIf(testbedSkipReason())('libvirt client on real libvirtd + QEMU', () => {
  let tb: Testbed;
  let a: LibvirtClient;
  let b: LibvirtClient | undefined;
  const events: DomainEvent[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'lv-client-'));

  beforeAll(async () => {
    tb = await useTestbed();
    const first = await image(dir, 'zone_a', 'cache-server = cache-a\n');
    const xml = join(dir, 'domain.xml');
    writeFileSync(xml, tb.domainXml({ name: DOMAIN, cdroms: [{ source: first }] }));
    await tb.virsh('host-a', ['create', xml]);
    await tb.waitForConsole(DOMAIN, /CTX END sr0 \d+/, 90_000);
    a = await LibvirtClient.connect({ socketPath: socketOf(tb, 'host-a') });
    a.onEvent((_id, event) => events.push(event));
    await a.registerEvent(EventId.TRAY_CHANGE);
    await a.registerEvent(EventId.LIFECYCLE);
  }, 180_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await tb?.virsh('host-a', ['destroy', DOMAIN]).catch(() => undefined);
    await tb?.virsh('host-b', ['destroy', DOMAIN]).catch(() => undefined);
  });

  it('finds the running domain and reads its XML and state', async () => {
    expect(await a.lookupDomain('no-such-domain')).toBeUndefined();
    const domain = (await a.lookupDomain(DOMAIN))!;
    expect(domain.id).toBeGreaterThan(0);
    expect(await a.domainState(domain)).toMatchObject({ state: DomainState.RUNNING });
    expect(await a.domainXml(domain)).toContain("<target dev='sda' bus='sata'/>");
    expect((await a.listDomains()).map((d) => d.name)).toContain(DOMAIN);
  });

  it('swaps the medium without forcing; the guest releases it and reads the new image', async () => {
    const domain = (await a.lookupDomain(DOMAIN))!;
    const next = await image(dir, 'zone_b', 'cache-server = cache-b\n');
    const from = tb.consoleOffset(DOMAIN);
    const started = Date.now();
    await a.updateDevice(domain, `<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${next}'/><target dev='sda' bus='sata'/><readonly/></disk>`);
    const returnedMs = Date.now() - started;
    const mounted = await tb.waitForConsole(DOMAIN, /CTX FILE sr0 etc\/cache\.conf \d+ (\S+)/, 30_000, from);
    expect(Buffer.from(mounted.match[1]!, 'base64').toString()).toBe('cache-server = cache-b\n');
    expect(tb.consoleLog(DOMAIN).slice(from)).toMatch(/CTX UMOUNT sr0[\s\S]*CTX EJECT sr0 ok[\s\S]*CTX MOUNT sr0 ZONE_B/);
    expect(events.some((e) => e.kind === 'tray-change' && e.reason === 'open')).toBe(true);
    console.log(`updateDevice returned after ${returnedMs} ms; the guest had the new content ${mounted.seenAt - started - returnedMs} ms later`);
  });

  it('live-migrates peer-to-peer to host B; the guest keeps running and a swap on B reaches it', async () => {
    const domain = (await a.lookupDomain(DOMAIN))!;
    const alive = tb.consoleOffset(DOMAIN);
    await a.migrate(domain, tb.host('host-b').uri, { migrateUri: 'tcp://127.0.0.1' });
    expect(await a.lookupDomain(DOMAIN)).toBeUndefined(); // undefined on the source
    expect(events.some((e) => e.kind === 'lifecycle' && e.event === Lifecycle.STOPPED && e.detail === Lifecycle.STOPPED_MIGRATED)).toBe(true);
    b = await LibvirtClient.connect({ socketPath: socketOf(tb, 'host-b') });
    const moved = (await b.lookupDomain(DOMAIN))!;
    expect(await b.domainState(moved)).toMatchObject({ state: DomainState.RUNNING });
    await tb.waitForConsole(DOMAIN, /CTX ALIVE \d+/, 15_000, tb.consoleOffset(DOMAIN));
    expect(tb.consoleOffset(DOMAIN)).toBeGreaterThan(alive);
    const onB = await image(dir, 'on_b', 'cache-server = cache-b-after-migration\n');
    const from = tb.consoleOffset(DOMAIN);
    await b.updateDevice(moved, `<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${onB}'/><target dev='sda' bus='sata'/><readonly/></disk>`);
    const mounted = await tb.waitForConsole(DOMAIN, /CTX FILE sr0 etc\/cache\.conf \d+ (\S+)/, 30_000, from);
    expect(Buffer.from(mounted.match[1]!, 'base64').toString()).toBe('cache-server = cache-b-after-migration\n');
  });
});
