// FFS inside the real QEMU guest (the fat test guest: fuse.ko + the Go agent guest/agent),
// end to end with the libvirt driver: the context images recontext attaches become the layers of
// /run/recontext/context in the guest; when the host swaps a layer's image, FFS shows the new
// content and runs the layer's hook (the time from the host's attach call returning to the hook
// starting is printed: the hook's first act is a console line); after a live migration to host B,
// the hook sees B's cache address.
//
// The hook stands for the GlusterFS client of the paper: told of a change under etc/glusterfs/,
// it reads the cache address from FFS (here: prints it on the console). The guest's hook policy
// (test/testbed/guest/fat/ffs.yaml) runs it as nobody, group tty: the console is writable by tty.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LibvirtClient } from '../../src/drivers/libvirt/client.js';
import { attachLayers } from '../../src/drivers/libvirt/converge.js';
import { LayerImageStore } from '../../src/images/layer-image.js';
import { StandaloneOperator } from '../../src/standalone/operator.js';
import { ffsRun } from '../testbed/fat.js';
import { ensureGuest, type GuestImage } from '../testbed/guest.js';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';
import { desiredLayers, siteOperator, writeSite, ZONE_A, withGlusterServer } from '../testbed/site.js';
import { until } from './scenario.js';

const DOMAIN = `ffs-${process.pid}`;
const KEY = `default/${DOMAIN}`;
const SWAPS = 6;

describe.skipIf(testbedSkipReason())('FFS in the guest: swapped images, hooks, a live migration (real QEMU)', () => {
  let tb: Testbed;
  let fat: GuestImage;
  let operator: StandaloneOperator | undefined;
  let hostsFile: string;
  const site = mkdtempSync(join(tmpdir(), 'ffs-site-'));
  const state = mkdtempSync(join(tmpdir(), 'ffs-state-'));

  const newOperator = () => siteOperator({ site, state, hostsFile });
  const converged = (node: string) => async () => {
    const v = operator?.store.vmContexts.get(KEY);
    return v?.status?.node === node && v.status.conditions?.some((c) => c.type === 'Ready' && c.reason === 'Converged') ? v : undefined;
  };
  /** The hook's report on the console: the cache address FFS shows, at or after `from`. */
  const hookSees = (pattern: RegExp, from: number) => tb.waitForConsole(DOMAIN, new RegExp(`APP-HOOK .*${pattern.source}`), 60_000, from);

  beforeAll(async () => {
    fat = await ensureGuest({ variant: 'fat', log: (line) => console.log(line) });
    tb = await useTestbed();
    hostsFile = writeSite(site, { domain: DOMAIN, hosts: tb.hosts });
    // The service layer's hook, as the GlusterFS client would react: read the cache address anew.
    const service = join(site, 'layer-gluster-service.yaml');
    writeFileSync(
      service,
      readFileSync(service, 'utf8').replace(
        /  hooks:\n[\s\S]*$/,
        `  hooks:\n    - name: gluster-reload\n      paths: [etc/glusterfs/]\n      debounceMs: 0\n      run: [/bin/sh, -c, 'echo APP-HOOK-START > /dev/console; echo "APP-HOOK uid=$(id -u) $(grep -m1 cache-server $RECONTEXT_MOUNTPOINT/etc/glusterfs/cache.conf) $(grep -m1 remote-host $RECONTEXT_MOUNTPOINT/etc/glusterfs/client.vol)" > /dev/console']\n`,
      ),
    );
    await tb.bootGuest(
      'host-a',
      {
        name: DOMAIN,
        guest: fat,
        cdroms: 6,
        // FFS handles the drives; the test agent only sends its heartbeat. The watcher's trace lines
        // (uevents, mounts) go to the console: the swaps below count its mounts.
        cmdlineExtra: ffsRun({ trace: true }),
      },
      150_000,
    );
    await tb.waitForConsole(DOMAIN, /"msg":"watching context devices"/, 90_000);
  }, 400_000);

  afterAll(async () => {
    // FFS_GUEST_LOG=FILE keeps the guest console (FFS logs, hook output) for a look after the run.
    if (process.env.FFS_GUEST_LOG) writeFileSync(process.env.FFS_GUEST_LOG, tb?.consoleLog(DOMAIN) ?? '');
    await operator?.stop();
    await tb?.destroyGuest(DOMAIN);
    rmSync(site, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });

  it('serves the attached layers merged in the guest, and the hook reads the cache address', async () => {
    const from = tb.consoleOffset(DOMAIN);
    operator = newOperator();
    await operator.start();
    await until('layers attached', converged('host-a'), 60_000);
    const seen = await hookSees(/cache-server = cache-a\.zone-a/, from);
    // The guest owner's policy (guest/fat/ffs.yaml): the layer's hook runs as nobody, not root.
    expect(seen.match[0]).toMatch(/APP-HOOK uid=65534 /);
  }, 180_000);

  it('shows a swapped image at once and runs the hook; prints attach-return → hook latency', async () => {
    await operator?.stop(); // the host side of these swaps is driven by hand, to time them
    operator = undefined;
    const store = new LayerImageStore(join(state, 'images'));
    /** The layers for host A, with the first GlusterFS server renamed `server` (a new service image). */
    const wantedWith = (server: string) =>
      desiredLayers({
        dir: site,
        store,
        vm: DOMAIN,
        node: { name: 'host-a', labels: ZONE_A },
        sources: withGlusterServer(server),
      });
    const client = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
    const latencies: number[] = [];
    /** Console offsets: where each swap began, and the end of the last one. */
    const windows: number[] = [];
    try {
      const domain = (await client.lookupDomain(DOMAIN))!;
      // The operator's delivery can still be arriving in the guest after the hook ran (a drive's
      // uevent comes late): wait until every initial layer arrived, so that the first swap's
      // window counts only its own image's mount.
      for (const layer of await wantedWith('gluster-server-0')) {
        const hex = layer.digest.replace(/^sha256:/, '');
        await tb.waitForConsole(DOMAIN, new RegExp(`"msg":"layer image arrived".*"digest":"(?:sha256:)?${hex}"`), 60_000, 0);
      }
      for (let i = 1; i <= SWAPS; i++) {
        const server = i === SWAPS ? 'gluster-server-0' : `gluster-server-${200 + i}`; // end where the operator left it
        const wanted = await wantedWith(server);
        const from = tb.consoleOffset(DOMAIN);
        windows.push(from);
        const swap = await attachLayers(client, domain, wanted); // the driver's own sequence, first half
        const attached = Date.now();
        const started = tb.waitForConsole(DOMAIN, /^APP-HOOK-START/m, 60_000, from);
        const seen = await hookSees(new RegExp(`remote-host ${server}`), from);
        const start = await started;
        expect(start.offset).toBeLessThanOrEqual(seen.offset); // the run that printed the new content
        latencies.push(start.seenAt - attached);
        await swap.release(); // the guest lets go of the old image
      }
      await new Promise((resolve) => setTimeout(resolve, 1000)); // the last swap's echo uevent
      windows.push(tb.consoleOffset(DOMAIN));
    } finally {
      await client.close();
    }
    // Each swap mounts its new image once: the second media-change uevent of a swap (the echo of
    // ffs-devd's own first open of the drive) finds the same PVD and keeps the mount.
    const log = Buffer.from(tb.consoleLog(DOMAIN), 'utf8');
    const perSwap = windows.slice(1).map((end, i) => {
      const text = log.subarray(windows[i], end).toString('utf8');
      return {
        mounts: text.match(/ffs-devd trace \S+ mounted sr\d+ /g)?.length ?? 0,
        kept: text.match(/ffs-devd trace \S+ sr\d+ same medium, mount kept/g)?.length ?? 0,
        digests: [...text.matchAll(/"msg":"layer image arrived".*?"digest":"([^"]+)"/g)].map((m) => m[1]!.replace(/^sha256:/, '').slice(0, 12)),
      };
    });
    console.log(`ffs in the guest: per swap, ffs-devd mounts / same-medium echoes kept / digests arrived: ${perSwap.map((s) => `${s.mounts}/${s.kept}/${s.digests.join(',')}`).join('  ')}`);
    expect(perSwap.map((s) => s.mounts)).toEqual(perSwap.map(() => 1));
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(`ffs in the guest (${tb.accelerator.accel}): host attach call returned → hook started: median ${sorted[Math.floor(sorted.length / 2)]} ms, all ${latencies.join(' ')} ms (console polled every 20 ms)`);
    expect(latencies).toHaveLength(SWAPS);
  }, 300_000);

  it('after a live migration to host B, the hook sees B\'s cache address', async () => {
    operator = newOperator();
    await operator.start();
    await until('converged again on host-a', converged('host-a'), 30_000);
    const from = tb.consoleOffset(DOMAIN);
    const source = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
    try {
      await source.migrate((await source.lookupDomain(DOMAIN))!, tb.host('host-b').uri, { migrateUri: 'tcp://127.0.0.1' });
    } finally {
      await source.close();
    }
    await hookSees(/cache-server = cache-b\.zone-b/, from);
    await until('converged on host-b', converged('host-b'), 30_000);
  }, 180_000);
});
