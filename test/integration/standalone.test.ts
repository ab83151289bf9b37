// Standalone mode end to end, on the test bed (two real libvirtds, a real QEMU guest): the
// operator reads a directory of manifests, attaches the layers, follows edits of the directory,
// re-renders the infrastructure layer when the guest live-migrates to the other zone (heard from
// libvirt's events), and releases the devices when the VMContext is removed from the directory.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/runtime/log.js';
import type { VMContext } from '../../src/crds/index.js';
import { LibvirtClient } from '../../src/drivers/libvirt/client.js';
import { StandaloneOperator } from '../../src/standalone/operator.js';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';
import { guestReads as readByGuest } from '../testbed/agent.js';
import { siteOperator, writeSite } from '../testbed/site.js';
import { until } from './scenario.js';

const DOMAIN = 'sa-gluster-1';
const KEY = `default/${DOMAIN}`;

describe.skipIf(testbedSkipReason())('standalone mode on real libvirtd + QEMU', () => {
  let tb: Testbed;
  let operator: StandaloneOperator;
  const site = mkdtempSync(join(tmpdir(), 'sa-site-'));
  const state = mkdtempSync(join(tmpdir(), 'sa-state-'));
  const logs: string[] = [];

  const vm = (): VMContext | undefined => operator.store.vmContexts.get(KEY);
  const converged = (v: VMContext | undefined) => v?.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'Converged' && c.status === 'True') && v.status.observedGeneration === v.metadata.generation;

  const guestReads = (path: string, pattern: RegExp, from: number) => readByGuest(tb, DOMAIN, path, pattern, from);

  beforeAll(async () => {
    tb = await useTestbed();
    const hostsFile = writeSite(site, { domain: DOMAIN, hosts: tb.hosts });
    const xml = join(mkdtempSync(join(tmpdir(), 'sa-')), 'domain.xml');
    // 4 layers + 2 spare drives: the two layers a migration changes move to empty drives at once.
    writeFileSync(xml, tb.domainXml({ name: DOMAIN, cdroms: 6 }));
    await tb.virsh('host-a', ['create', xml]);
    await tb.waitForConsole(DOMAIN, /CTX ALIVE 1/, 90_000);
    const logger = createLogger({ level: 'debug', write: (line) => void logs.push(line) });
    operator = siteOperator({ site, state, hostsFile, logger, metricsAddress: '127.0.0.1:0' });
  }, 180_000);

  afterAll(async () => {
    await operator?.stop();
    for (const host of ['host-a', 'host-b'] as const) await tb?.virsh(host, ['destroy', DOMAIN]).catch(() => undefined);
    rmSync(site, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });

  it('attaches every layer rendered for host A; the guest reads them', async () => {
    const from = tb.consoleOffset(DOMAIN);
    await operator.start();
    const ready = await until('VMContext converged', async () => (converged(vm()) ? vm() : undefined), 30_000);
    expect(ready.status).toMatchObject({ node: 'host-a', lastRecontext: { trigger: 'Initial' } });
    expect(ready.status?.layers?.map((l) => l.device).sort()).toEqual(['sda', 'sdb', 'sdc', 'sdd']);
    await guestReads('etc/glusterfs/cache.conf', /cache-a\.zone-a/, from);
    await guestReads('etc/policy/data-residency.conf', /jurisdiction = EU/, from);
  });

  it('follows an edit of the directory: a changed ConfigMap swaps the service layer live', async () => {
    const before = vm()!.status!.layers!.find((l) => l.name === 'gluster-service')!.digest;
    const from = tb.consoleOffset(DOMAIN);
    const file = join(site, 'configmap-gluster-volume.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('gluster-server-0.storage.example.net', 'gluster-server-9.storage.example.net'));
    await guestReads('etc/glusterfs/client.vol', /gluster-server-9/, from);
    const after = await until('status with the new digest', async () => {
      const layer = vm()?.status?.layers?.find((l) => l.name === 'gluster-service');
      return layer && layer.digest !== before ? vm() : undefined;
    });
    expect(after.status?.lastRecontext?.trigger).toBe('LayerChange');
  });

  it('keeps everything when a manifest becomes invalid, and says where', async () => {
    const file = join(site, 'layer-site-cache.yaml');
    const good = readFileSync(file, 'utf8');
    const digest = vm()!.status!.layers!.find((l) => l.name === 'site-cache')!.digest;
    writeFileSync(file, good.replace('class: infrastructure', 'class: infrastructur'));
    operator.rescan();
    expect(logs.some((l) => l.includes('manifest not applied') && l.includes('layer-site-cache.yaml'))).toBe(true);
    expect(operator.store.layers.get('default/site-cache')?.spec.class).toBe('infrastructure');
    expect(vm()!.status!.layers!.find((l) => l.name === 'site-cache')!.digest).toBe(digest);
    writeFileSync(file, good);
    operator.rescan();
  });

  it('re-renders the infrastructure layer for host B after a live migration, heard from libvirt events', async () => {
    const from = tb.consoleOffset(DOMAIN);
    const a = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
    const started = Date.now();
    try {
      await a.migrate((await a.lookupDomain(DOMAIN))!, tb.host('host-b').uri, { migrateUri: 'tcp://127.0.0.1' });
    } finally {
      await a.close();
    }
    const migrated = Date.now();
    await guestReads('etc/glusterfs/cache.conf', /cache-b\.zone-b/, from);
    const seen = Date.now();
    const after = await until('status for host B', async () => (vm()?.status?.node === 'host-b' && converged(vm()) ? vm() : undefined));
    expect(after.status?.lastRecontext?.trigger).toBe('Migration');
    expect(after.status?.lastMigrationId).toMatch(/^host-b\//);
    await guestReads('etc/policy/data-residency.conf', /jurisdiction = US/, from);
    // The guest ran on throughout: its agent's heartbeat counts on, it never booted again.
    const heartbeats = (text: string) => [...text.matchAll(/^CTX ALIVE (\d+)$/gm)].map((m) => Number(m[1]));
    const before = heartbeats(Buffer.from(tb.consoleLog(DOMAIN), 'utf8').subarray(0, from).toString('utf8'));
    await tb.waitForConsole(DOMAIN, /CTX ALIVE \d+/, 10_000, tb.consoleOffset(DOMAIN));
    const since = heartbeats(Buffer.from(tb.consoleLog(DOMAIN), 'utf8').subarray(from).toString('utf8'));
    expect(since.length).toBeGreaterThan(0);
    expect(Math.min(...since)).toBeGreaterThan(Math.max(...before));
    console.log(`standalone: migration ${migrated - started} ms; guest read the new cache address ${seen - migrated} ms after it; phases ${JSON.stringify(after.status?.lastRecontext?.phasesMs)}, release ${after.status?.lastRecontext?.releaseMs} ms`);
  });

  it('releases the devices when the VMContext leaves the directory, and forgets it', async () => {
    const from = tb.consoleOffset(DOMAIN);
    rmSync(join(site, 'vmcontext.yaml'));
    operator.rescan();
    const emptied = new Set<string>();
    for (let at = from; emptied.size < 4; ) {
      const seen = await tb.waitForConsole(DOMAIN, /CTX NOMEDIUM (sr\d)/, 30_000, at);
      emptied.add(seen.match[1]!);
      at = seen.offset;
    }
    await until('VMContext forgotten', async () => (vm() === undefined ? true : undefined));
  });
});
