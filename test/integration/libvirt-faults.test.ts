// The libvirt driver and standalone operator under faults, on real libvirtds and a real QEMU
// guest: a layer change racing a live migration is redone on the destination; a libvirtd that is
// down during a swap is reported (HostUnavailable) and the swap completes once it is back, also
// when it restarts in the middle of one; an operator that died half-way through a swap heals it
// when it starts again; a VM destroyed during a swap leaves a clear status and no image behind.
//
// Own test bed instance (not the run's shared one): it stops and restarts libvirtds, which would
// break the other test files using the shared hosts in parallel.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VMContext } from '../../src/crds/index.js';
import { LibvirtClient } from '../../src/drivers/libvirt/client.js';
import { attachLayers } from '../../src/drivers/libvirt/converge.js';
import { assignmentsOf, cdromsOf, isMaking } from '../../src/drivers/libvirt/devices.js';
import { LayerImageStore } from '../../src/images/layer-image.js';
import { StandaloneOperator } from '../../src/standalone/operator.js';
import { startTestbed, type Testbed } from '../testbed/index.js';
import { testbedSkipReason } from '../testbed/shared.js';
import { guestReads as readByGuest } from '../testbed/agent.js';
import { desiredLayers, siteOperator, writeSite, ZONE_B } from '../testbed/site.js';
import { until } from './scenario.js';

const DOMAIN = `faults-${process.pid}`;
const KEY = `default/${DOMAIN}`;

describe.skipIf(testbedSkipReason())('libvirt faults: migration races, libvirtd restarts, a VM destroyed mid-swap', () => {
  let tb: Testbed;
  let operator: StandaloneOperator;
  const site = mkdtempSync(join(tmpdir(), 'faults-site-'));
  const state = mkdtempSync(join(tmpdir(), 'faults-state-'));
  const volume = join(site, 'configmap-gluster-volume.yaml');
  let serverIndex = 0;

  const vm = (): VMContext | undefined => operator.store.vmContexts.get(KEY);
  const ready = (node: string) => async () => {
    const v = vm();
    return v?.status?.node === node && v.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True' && c.reason === 'Converged') && v.status.observedGeneration === v.metadata.generation ? v : undefined;
  };
  const serviceDigest = () => vm()?.status?.layers?.find((l) => l.name === 'gluster-service')?.digest;

  /** Edits the volume file of the ConfigMap (a LayerChange of the service layer); returns the new server name. */
  function changeVolume(): string {
    const server = `gluster-server-${100 + ++serverIndex}`;
    writeFileSync(volume, readFileSync(volume, 'utf8').replace(/option remote-host gluster-server-\d+/, `option remote-host ${server}`));
    operator.rescan();
    return server;
  }

  const guestReads = (path: string, pattern: RegExp, from: number) => readByGuest(tb, DOMAIN, path, pattern, from);

  let hostsFile: string;
  /** A fresh operator process, as after a restart: same directory, same state directory. */
  const newOperator = () => siteOperator({ site, state, hostsFile, rescanMs: 3_600_000 /* the tests rescan when they edit */, imageGcGraceMs: 0 /* collectImages() removes everything no status names */ });

  beforeAll(async () => {
    tb = await startTestbed({ id: `faults-${process.pid}`, log: () => {} });
    hostsFile = writeSite(site, { domain: DOMAIN, hosts: tb.hosts });
    await tb.bootGuest('host-a', { name: DOMAIN, cdroms: 6 });
    operator = newOperator();
    await operator.start();
    await until('layers attached on host-a', ready('host-a'), 60_000);
  }, 300_000);

  afterAll(async () => {
    await operator?.stop();
    await tb?.stop();
    rmSync(site, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });

  it('redoes on the destination a layer change that raced a live migration', async () => {
    const from = tb.consoleOffset(DOMAIN);
    const source = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
    try {
      const domain = (await source.lookupDomain(DOMAIN))!;
      const server = changeVolume(); // the swap starts on host-a …
      await source.migrate(domain, tb.host('host-b').uri, { migrateUri: 'tcp://127.0.0.1' }); // … while the guest moves
      await guestReads('etc/glusterfs/client.vol', new RegExp(server), from);
    } finally {
      await source.close();
    }
    await guestReads('etc/glusterfs/cache.conf', /cache-b\.zone-b/, from);
    const after = await until('converged on host-b', ready('host-b'), 30_000);
    expect(after.status?.lastMigrationId).toMatch(/^host-b\//);
  });

  it('reports an unreachable libvirtd during a swap and completes the swap once it is back', async () => {
    const from = tb.consoleOffset(DOMAIN);
    const before = serviceDigest();
    await tb.stopDaemon('host-b');
    try {
      const server = changeVolume();
      const blocked = await until('HostUnavailable', async () => vm()?.status?.conditions?.find((c) => c.type === 'Ready' && c.reason === 'HostUnavailable'), 30_000);
      expect(blocked.message).toMatch(/libvirt host host-b is unavailable/);
      await tb.startDaemon('host-b');
      await guestReads('etc/glusterfs/client.vol', new RegExp(server), from);
    } finally {
      await tb.startDaemon('host-b').catch(() => undefined); // already up unless an assertion failed
    }
    await until('converged again', ready('host-b'), 30_000);
    expect(serviceDigest()).not.toBe(before);
  });

  it('converges when libvirtd restarts in the middle of a swap', async () => {
    const from = tb.consoleOffset(DOMAIN);
    const server = changeVolume();
    await tb.restartDaemon('host-b'); // wherever the swap was, the connection breaks under it
    await guestReads('etc/glusterfs/client.vol', new RegExp(server), from);
    const after = await until('converged after the restart', ready('host-b'), 30_000);
    expect(after.status?.layers).toHaveLength(4);
  });

  it('heals a swap the operator crashed in: the new image was in, the old drive not yet emptied', async () => {
    await operator.stop(); // "crash": what follows is what a converge had done when the process died
    const server = `gluster-server-${100 + ++serverIndex}`;
    writeFileSync(volume, readFileSync(volume, 'utf8').replace(/option remote-host gluster-server-\d+/, `option remote-host ${server}`));
    const wanted = await desiredLayers({ dir: site, store: new LayerImageStore(join(state, 'images')), vm: DOMAIN, node: { name: 'host-b', labels: ZONE_B } });
    const from = tb.consoleOffset(DOMAIN);
    const client = await LibvirtClient.connect({ socketPath: tb.host('host-b').socket });
    let oldDrive: string;
    try {
      const domain = (await client.lookupDomain(DOMAIN))!;
      // The driver's own sequence, first half only: the crash comes before the release.
      const { plan } = await attachLayers(client, domain, wanted);
      expect(plan.actions.filter(isMaking).map((a) => a.layer)).toEqual(['gluster-service']); // into a spare drive …
      oldDrive = plan.actions.find((a) => !isMaking(a))!.target; // … and this one still to empty
    } finally {
      await client.close();
    }
    await guestReads('etc/glusterfs/client.vol', new RegExp(server), from);

    operator = newOperator(); // restart
    await operator.start();
    const newDigest = wanted.find((w) => w.name === 'gluster-service')!.digest;
    const healed = await until('converged on the new image after the restart', async () => {
      const v = await ready('host-b')();
      return v?.status?.layers?.find((l) => l.name === 'gluster-service')?.digest === newDigest ? v : undefined;
    }, 30_000);
    expect(healed.status?.layers?.map((l) => l.device)).not.toContain(oldDrive);
    const check = await LibvirtClient.connect({ socketPath: tb.host('host-b').socket });
    try {
      const xml = await check.domainXml((await check.lookupDomain(DOMAIN))!);
      expect(assignmentsOf(xml)).toHaveLength(4);
      expect(cdromsOf(xml).find((d) => d.target === oldDrive)?.source).toBeUndefined(); // emptied
    } finally {
      await check.close();
    }
  });

  it('leaves a clear status and no image behind when the VM is destroyed during a swap', async () => {
    changeVolume();
    await tb.destroyGuest(DOMAIN);
    const gone = await until('VMNotFound', async () => (vm()?.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'VMNotFound') ? vm() : undefined), 30_000);
    expect(gone.status?.layers).toBeUndefined();
    await operator.collectImages();
    expect(readdirSync(join(state, 'images')).filter((f) => !f.startsWith('.'))).toEqual([]);
  });
});
