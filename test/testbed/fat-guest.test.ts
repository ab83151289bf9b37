// The fat test guest (issues 7 and 19): fuse.ko + the Go guest agent in the initramfs. Booted on
// the run's shared test bed (base variant) through DomainOptions.guest, so no extra libvirt hosts
// start: the agent serves a union of two directory layers (fixture guest/fat/ffs-hello, started by
// the kernel command line's ctx.run=), another process reads it as nobody inside the guest, and the
// base agent still mounts and reports the CD-ROM attached at boot.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureGuest, type GuestImage } from './guest.js';
import { run } from './install.js';
import { testbedSkipReason, useTestbed, type Testbed } from './shared.js';

const skip = testbedSkipReason();

describe.skipIf(skip)('fat test guest: the Go agent serves a FUSE union inside the TCG guest (real QEMU)', () => {
  let tb: Testbed;
  let fat: GuestImage;
  let work: string;
  const domain = `fat-guest-${process.pid}`;

  beforeAll(async () => {
    const started = Date.now();
    fat = await ensureGuest({ variant: 'fat', log: (line) => console.log(line) });
    console.log(
      `testbed: fat guest ready in ${((Date.now() - started) / 1000).toFixed(1)}s (cached unless an input changed): initrd ` +
        `${((fat.initrdBytes ?? 0) / 2 ** 20).toFixed(1)} MiB, unpacked ${((fat.unpackedBytes ?? 0) / 2 ** 20).toFixed(1)} MiB, ${fat.memoryMiB} MiB guests`,
    );
    tb = await useTestbed();
    work = mkdtempSync(join(tmpdir(), 'recontext-fat-'));
  });

  afterAll(async () => {
    await tb?.destroyGuest(domain);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('boots; a union served by recontext-ffs in the guest is read back as nobody; the test agent still reports the CD-ROM', async () => {
    const tree = join(work, 'layer');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'app.conf'), 'mode=fat\n');
    const iso = join(work, 'layer.iso');
    await run('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-V', 'CTX_FAT', '-o', iso, tree]);

    const started = Date.now();
    const { bootSeconds } = await tb.bootGuest(
      'host-a',
      {
        name: domain,
        guest: fat,
        cdroms: [{ source: iso }, {}],
        // Two programs: the FUSE fixture, and the agent's usage (exit 2: no command) — arguments split at commas.
        cmdlineExtra: 'ctx.run=/usr/lib/recontext-test/ffs-hello,/mnt/hello ctx.run=recontext-ffs',
      },
      150_000,
    );
    const fuse = await tb.waitForConsole(domain, /CTX FUSE (ok|error) (.*)/, 90_000);
    const fuseSeconds = (fuse.seenAt - started) / 1000;
    expect(fuse.match[1], fuse.match[2]).toBe('ok');
    // The higher layer's hello.txt, the lower layer's other.txt (checked by the fixture), on a FUSE mount.
    expect(fuse.match[2]).toBe('hello-from-recontext-ffs-in-the-guest fuse.recontext-ffs');
    await tb.waitForConsole(domain, /CTX FUSE unmounted/, 30_000);
    await tb.waitForConsole(domain, /CTX RUN exit recontext-ffs 2/, 10_000);
    const end = await tb.waitForConsole(domain, /CTX END sr0 (\d+)/, 30_000);
    const log = tb.consoleLog(domain);
    const timing = /CTX FUSE timing (.*)/.exec(log)?.[1] ?? '?';
    console.log(
      `testbed: fat guest (${tb.accelerator.accel}, ${fat.memoryMiB} MiB): first heartbeat ${bootSeconds.toFixed(1)}s, ` +
        `CTX FUSE ok ${fuseSeconds.toFixed(1)}s after virsh create (${timing}), CD-ROM reported ${((end.seenAt - started) / 1000).toFixed(1)}s`,
    );
    expect(log).toMatch(/CTX RUN start \/usr\/lib\/recontext-test\/ffs-hello \/mnt\/hello/);
    expect(log).toMatch(/^usage:\r?$/m);
    expect(log).toMatch(/CTX RUN exit \/usr\/lib\/recontext-test\/ffs-hello 0/);
    expect(log).toMatch(/CTX MOUNT sr0 CTX_FAT \/ctx\/sr0/);
    expect(log).toMatch(/CTX NOMEDIUM sr1/);
    expect(log).toContain(`CTX FILE sr0 etc/app.conf 9 ${Buffer.from('mode=fat\n').toString('base64')}`);
    expect(log).not.toMatch(/CTX WARN insmod/);
  }, 300_000);
});
