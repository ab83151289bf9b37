// The test bed itself, on real QEMU (TCG unless KVM works) and two real libvirtds: the guest
// boots and reports its CD-ROM's files, a non-forced live media change is released by the guest
// agent and the new content is seen, a live migration A→B (and back) keeps the guest running
// and a swap on the destination is seen, and testbed:down leaves no process behind. One guest
// is booted and reused across the cases (virsh is fine here; the product uses its own client).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isZombie, run } from './install.js';
import { hostProcesses, readState, scsiCdromXml, testbedRoot, type TestbedState } from './index.js';
import { testbedSkipReason, useTestbed, type Testbed } from './shared.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const skip = testbedSkipReason();

/** Files the guest reported for a device between two console offsets, decoded. */
function reportedFiles(log: string, dev: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const match of log.matchAll(new RegExp(`^.*CTX FILE ${dev} (\\S+) (\\d+) (\\S+)$`, 'gm'))) {
    const [, path, , content] = match;
    if (path && content) files.set(path, content === '=' ? '' : Buffer.from(content, 'base64').toString('utf8'));
  }
  return files;
}

async function makeIso(dir: string, label: string, files: Record<string, string>): Promise<string> {
  const tree = join(dir, label);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(tree, path)), { recursive: true });
    writeFileSync(join(tree, path), content);
  }
  const iso = join(dir, `${label}.iso`);
  await run('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-V', label, '-o', iso, tree]);
  return iso;
}

function aliveCount(log: string): number {
  let last = 0;
  for (const match of log.matchAll(/CTX ALIVE (\d+)/g)) last = Number(match[1]);
  return last;
}

describe.skipIf(skip)('test bed: two libvirt hosts and the test guest (real QEMU)', () => {
  let tb: Testbed;
  let work: string;
  const domain = `tb-guest-${process.pid}`;
  const isos: Record<string, string> = {};
  /** Host the guest currently runs on. */
  let where: 'host-a' | 'host-b' = 'host-a';

  beforeAll(async () => {
    tb = await useTestbed();
    work = mkdtempSync(join(tmpdir(), 'recontext-testbed-'));
    isos['v1'] = await makeIso(work, 'CTX_V1', { 'config/cache.conf': 'cache=10.0.0.1\n', 'README': 'layer v1\n', 'deep/a/b/c.txt': 'deep\n' });
    isos['v2'] = await makeIso(work, 'CTX_V2', { 'config/cache.conf': 'cache=10.0.0.2\n', 'README': 'layer v2\n' });
    isos['v3'] = await makeIso(work, 'CTX_V3', { 'config/cache.conf': 'cache=10.0.0.3\n', 'zone': 'zone-b\n' });
    isos['other'] = await makeIso(work, 'CTX_OTHER', { 'infra.json': '{"zone":"a"}\n' });
    isos['hot'] = await makeIso(work, 'CTX_HOT', { 'hot.txt': 'hot\n' });
  });

  afterAll(async () => {
    await tb?.destroyGuest(domain);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('(a) boots the guest, which reports the files of its attached ISOs', async () => {
    const started = Date.now();
    const { bootSeconds } = await tb.bootGuest('host-a', { name: domain, memoryMiB: 256, cdroms: [{ source: isos['v1'] }, { source: isos['other'] }, {}] }, 90_000);
    const sr0 = await tb.waitForConsole(domain, /CTX END sr0 (\d+)/, 30_000);
    const sr1 = await tb.waitForConsole(domain, /CTX END sr1 (\d+)/, 30_000);
    const reported = (Math.max(sr0.seenAt, sr1.seenAt) - started) / 1000;
    console.log(`testbed: guest booted (${tb.accelerator.accel}): first heartbeat ${bootSeconds.toFixed(1)}s, CD-ROMs reported ${reported.toFixed(1)}s after virsh create`);
    const log = tb.consoleLog(domain);
    expect(log).toMatch(/CTX MOUNT sr0 CTX_V1 \/ctx\/sr0/);
    expect(log).toMatch(/CTX MOUNT sr1 CTX_OTHER \/ctx\/sr1/);
    expect(log).toMatch(/CTX NOMEDIUM sr2/);
    expect(Object.fromEntries(reportedFiles(log, 'sr0'))).toEqual({ 'config/cache.conf': 'cache=10.0.0.1\n', README: 'layer v1\n', 'deep/a/b/c.txt': 'deep\n' });
    expect(reportedFiles(log, 'sr1').get('infra.json')).toBe('{"zone":"a"}\n');
    await tb.waitForConsole(domain, /CTX ALIVE \d+/, 5_000);
  }, 180_000);

  it('(b) a non-forced live change-media is released by the guest and the new content is mounted', async () => {
    const samples: number[] = [];
    for (const version of ['v2', 'v1', 'v2']) {
      const from = tb.consoleOffset(domain);
      const called = Date.now();
      const result = await tb.virsh(where, ['change-media', domain, 'sda', isos[version] ?? '', '--update', '--live']);
      const returned = Date.now();
      expect(result.code, result.stderr).toBe(0);
      // The guest let go (unmount + eject on the eject request) before the new medium came in.
      // Waited for as one sequence: under heavy load a late report of an earlier medium can
      // reach the console after `from`, and its END alone must not count.
      const end = await tb.waitForConsole(domain, new RegExp(`CTX UMOUNT sr0[\\s\\S]*CTX EJECT sr0 ok[\\s\\S]*CTX MOUNT sr0 CTX_${version.toUpperCase()} [\\s\\S]*CTX END sr0 \\d+`), 15_000, from);
      const log = tb.consoleLog(domain).slice(from);
      expect(log).toContain(`CTX MOUNT sr0 CTX_${version.toUpperCase()} `);
      expect(reportedFiles(log, 'sr0').get('config/cache.conf')).toBe(`cache=10.0.0.${version.slice(1)}\n`);
      samples.push(end.seenAt - returned);
      console.log(`testbed: change-media to ${version}: call ${returned - called} ms, guest reported the new content ${end.seenAt - returned} ms after the call returned`);
    }
    // The eject request is answered at once: far from libvirt's 5 s tray timeout.
    expect(Math.max(...samples)).toBeLessThan(4_000);
  }, 120_000);

  it('(c) live migration A→B keeps the guest running; a swap on B after it is seen; B→A works too', async () => {
    const before = aliveCount(tb.consoleLog(domain));
    const from = tb.consoleOffset(domain);
    const started = Date.now();
    const migrated = await tb.virsh('host-a', ['migrate', '--live', domain, tb.host('host-b').uri, '--migrateuri', 'tcp://127.0.0.1']);
    const seconds = (Date.now() - started) / 1000;
    expect(migrated.code, migrated.stderr).toBe(0);
    where = 'host-b';
    console.log(`testbed: live migration A→B took ${seconds.toFixed(2)}s (virsh migrate, 256 MiB guest)`);
    expect((await tb.virsh('host-b', ['domstate', domain])).stdout.trim()).toBe('running');
    expect((await tb.virsh('host-a', ['domstate', domain])).code).not.toBe(0);
    // Heartbeats go on, numbered from where they were: the same guest, not a reboot.
    await tb.waitForConsole(domain, new RegExp(`CTX ALIVE ${before + 2}\\b`), 15_000, from);
    expect(tb.consoleLog(domain).slice(from)).not.toMatch(/CTX BOOT|CTX AGENT start/);

    const swapFrom = tb.consoleOffset(domain);
    const result = await tb.virsh('host-b', ['change-media', domain, 'sda', isos['v3'] ?? '', '--update', '--live']);
    const returned = Date.now();
    expect(result.code, result.stderr).toBe(0);
    const end = await tb.waitForConsole(domain, /CTX END sr0 \d+/, 15_000, swapFrom);
    const log = tb.consoleLog(domain).slice(swapFrom);
    expect(reportedFiles(log, 'sr0')).toEqual(new Map([['config/cache.conf', 'cache=10.0.0.3\n'], ['zone', 'zone-b\n']]));
    console.log(`testbed: swap on host B after migration seen ${end.seenAt - returned} ms after the call returned`);

    const backFrom = tb.consoleOffset(domain);
    const back = Date.now();
    const returnedHome = await tb.virsh('host-b', ['migrate', '--live', domain, tb.host('host-a').uri, '--migrateuri', 'tcp://127.0.0.1']);
    expect(returnedHome.code, returnedHome.stderr).toBe(0);
    where = 'host-a';
    console.log(`testbed: live migration B→A took ${((Date.now() - back) / 1000).toFixed(2)}s`);
    expect((await tb.virsh('host-a', ['domstate', domain])).stdout.trim()).toBe('running');
    const alive = aliveCount(tb.consoleLog(domain));
    await tb.waitForConsole(domain, new RegExp(`CTX ALIVE ${alive + 1}\\b`), 15_000, backFrom);
  }, 180_000);

  it('(e) a hot-plugged virtio-scsi CD-ROM is mounted and reported; unplugging it is noticed', async () => {
    const xmlPath = join(work, 'hot.xml');
    writeFileSync(xmlPath, scsiCdromXml(isos['hot'] ?? '', 'sdz'));
    const from = tb.consoleOffset(domain);
    const attached = await tb.virsh(where, ['attach-device', domain, xmlPath, '--live']);
    const returned = Date.now();
    expect(attached.code, attached.stderr).toBe(0);
    const mount = await tb.waitForConsole(domain, /CTX MOUNT (sr\d+) CTX_HOT /, 15_000, from);
    const dev = mount.match[1] ?? '';
    await tb.waitForConsole(domain, new RegExp(`CTX END ${dev} 1`), 5_000, from);
    expect(reportedFiles(tb.consoleLog(domain).slice(from), dev).get('hot.txt')).toBe('hot\n');
    console.log(`testbed: hot-plugged virtio-scsi CD-ROM ${dev} mounted ${mount.seenAt - returned} ms after attach-device returned`);
    const detachFrom = tb.consoleOffset(domain);
    const detached = await tb.virsh(where, ['detach-device', domain, xmlPath, '--live']);
    expect(detached.code, detached.stderr).toBe(0);
    await tb.waitForConsole(domain, new RegExp(`CTX UMOUNT ${dev}`), 15_000, detachFrom);
  }, 120_000);

  it('(d) testbed:up / testbed:down: down leaves no libvirtd, virtlogd or QEMU process and no directory', async () => {
    // The shared guest goes first: one TCG guest at a time.
    await tb.destroyGuest(domain);
    const id = `down-test-${process.pid}`;
    const env = { ...process.env, RECONTEXT_TESTBED_ID: id };
    const up = await tsxCli(['up'], env);
    expect(up.code, up.stderr).toBe(0);
    const summary = JSON.parse(up.stdout.trim().split('\n').at(-1) ?? '{}') as { hosts: Array<{ name: string; uri: string }> };
    expect(summary.hosts.map((h) => h.name)).toEqual(['host-a', 'host-b']);
    const state = readState(join(testbedRoot(), id)) as TestbedState;
    // A running guest, so there is a QEMU process for down to end.
    const xmlPath = join(work, 'down.xml');
    const guestXml = tb.domainXml({ name: 'down-guest', cdroms: 1 }).replaceAll(tb.dir, state.dir);
    mkdirSync(join(state.dir, 'domains', 'down-guest'), { recursive: true });
    writeFileSync(xmlPath, guestXml);
    const hostA = state.hosts[0];
    if (!hostA) throw new Error('no host-a');
    const created = await run('virsh', ['-c', hostA.uri, 'create', xmlPath], { allowFailure: true });
    expect(created.code, created.stderr).toBe(0);
    const processes = state.hosts.flatMap((h) => hostProcesses(h));
    const names = processes.map((pid) => readComm(pid));
    expect(names).toEqual(expect.arrayContaining(['libvirtd', 'virtlogd', 'qemu-system-x86']));

    const down = await tsxCli(['down'], env);
    expect(down.code, down.stderr).toBe(0);
    expect(processes.filter((pid) => !isZombie(pid))).toEqual([]);
    expect(state.hosts.flatMap((h) => hostProcesses(h))).toEqual([]);
    expect(existsSync(state.dir)).toBe(false);
  }, 240_000);
});

function readComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

function tsxCli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(REPO, 'node_modules', '.bin', 'tsx'), [join(REPO, 'test', 'testbed', 'cli.ts'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
