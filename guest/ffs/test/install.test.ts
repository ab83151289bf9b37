// packaging/install.sh staged into a directory (as an image build would): the package with its
// production dependencies, the ffs-devd helper compiled, the systemd unit and the udev rule in
// place, and the installed command runs.
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { skipReason } from '../../../test/support/skip.js';

const run = promisify(execFile);
const INSTALL = fileURLToPath(new URL('../packaging/install.sh', import.meta.url));
const skip = skipReason('guest/ffs packaging/install.sh', existsSync('/usr/bin/cc') ? undefined : 'no C compiler (/usr/bin/cc) to build ffs-devd', 'apt-get install gcc');

describe.skipIf(skip)('packaging/install.sh', () => {
  const root = mkdtempSync(join(tmpdir(), 'ffs-install-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('stages the package, the helper, the unit and the udev rule; the installed command runs', async () => {
    const { stdout } = await run('/bin/sh', [INSTALL, root], { timeout: 240_000 });
    expect(stdout).toContain('staged into');
    const lib = join(root, 'usr/lib/recontext-ffs');
    expect(readlinkSync(join(root, 'usr/bin/recontext-ffs'))).toBe('/usr/lib/recontext-ffs/node_modules/@recontext/ffs/bin/recontext-ffs.js');
    expect(existsSync(join(lib, 'node_modules/fuse-native/package.json'))).toBe(true);
    expect(readFileSync(join(root, 'etc/systemd/system/recontext-ffs.service'), 'utf8')).toMatch(/ExecStart=\/usr\/bin\/recontext-ffs mount \/run\/recontext\/context --devices \/usr\/lib\/recontext-ffs\/ffs-devd/);
    expect(readFileSync(join(root, 'etc/udev/rules.d/60-recontext-ffs.rules'), 'utf8')).toMatch(/KERNEL=="sr\[0-9\]\*", ATTR\{events_poll_msecs\}="100"/);
    expect(lstatSync(join(lib, 'ffs-devd')).mode & 0o111).not.toBe(0);
    const help = await run(process.execPath, [join(lib, 'node_modules/@recontext/ffs/bin/recontext-ffs.js'), '--help']);
    expect(help.stdout).toMatch(/recontext-ffs mount MOUNTPOINT .*--devices HELPER/);
    const usage = await run(join(lib, 'ffs-devd'), []).catch((error: { code: number; stderr: string }) => error);
    expect(usage).toMatchObject({ code: 2, stderr: expect.stringMatching(/usage: ffs-devd ROOT/) });
  });
});
