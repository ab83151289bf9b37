// LibvirtSession (src/drivers/libvirt/session.ts) against real libvirtds and a real QEMU guest:
// the registered events arrive (guest start, tray, a live migration seen from both hosts — the
// sequence is printed, since the driver relies on it), and the session survives libvirtd
// restarts: it fails fast while the daemon is down, reconnects by itself, announces it, and
// hears events again; our keepalive notices a SIGSTOPped daemon.
//
// This file starts its OWN test bed instance instead of the run's shared one: it stops and
// restarts libvirtds, which would break the other test files talking to the shared hosts in
// parallel. An own instance costs ~3 s warm (packages, guest and QEMU capabilities are cached).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AffectFlags } from '../../src/drivers/libvirt/client.js';
import { Lifecycle } from '../../src/drivers/libvirt/protocol.js';
import { HostUnavailableError, LibvirtSession, type HostDomainEvent } from '../../src/drivers/libvirt/session.js';
import { buildIso } from '../../src/iso/index.js';
import { startTestbed, type HostName, type Testbed } from '../testbed/index.js';
import { testbedSkipReason } from '../testbed/shared.js';

const DOMAIN = `sess-${process.pid}`;

type Seen = HostDomainEvent & { readonly at: number };

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function describeEvent(e: HostDomainEvent): string {
  switch (e.kind) {
    case 'lifecycle': return `lifecycle ${e.event}/${e.detail}`;
    case 'tray-change': return `tray-change ${e.devAlias} ${e.reason}`;
    case 'device-added':
    case 'device-removed': return `${e.kind} ${e.devAlias}`;
    case 'migration-iteration': return `migration-iteration ${e.iteration}`;
    case 'job-completed': return `job-completed {${Object.entries(e.stats).filter(([k]) => ['type', 'operation', 'time_elapsed', 'downtime'].includes(k)).map(([k, v]) => `${k}=${String(v)}`).join(' ')}}`;
  }
}

describe.skipIf(testbedSkipReason())('LibvirtSession on real libvirtd + QEMU (own test bed instance)', () => {
  let tb: Testbed;
  const sessions = new Map<HostName, LibvirtSession>();
  const seen: Seen[] = [];
  const connects: Array<{ host: string; reconnected: boolean }> = [];
  const dir = mkdtempSync(join(tmpdir(), 'lv-session-'));
  const session = (host: HostName): LibvirtSession => sessions.get(host)!;
  const eventsOf = (host: HostName, since = 0) => seen.filter((e) => e.host === host && e.domain.name === DOMAIN && e.at >= since);
  const hasLifecycle = (host: HostName, event: number, detail: number, since = 0) =>
    eventsOf(host, since).some((e) => e.kind === 'lifecycle' && e.event === event && e.detail === detail);

  async function image(name: string): Promise<string> {
    const path = join(dir, `${name}.iso`);
    await buildIso([{ path: 'layer.txt', kind: 'file', content: Buffer.from(`${name}\n`) }], { volumeId: name.toUpperCase(), timestamp: new Date(0) }).writeToFile(path);
    return path;
  }

  beforeAll(async () => {
    tb = await startTestbed({ id: `session-${process.pid}`, log: (line) => console.log(line) });
    for (const host of ['host-a', 'host-b'] as const) {
      const s = new LibvirtSession({ name: host, socketPath: tb.host(host).socket, backoffBaseMs: 50, backoffMaxMs: 500 });
      s.onEvent((event) => seen.push({ ...event, at: performance.now() }));
      s.onConnected((info) => connects.push(info));
      sessions.set(host, s);
    }
  }, 600_000);

  afterAll(async () => {
    for (const s of sessions.values()) await s.close();
    await tb?.destroyGuest(DOMAIN).catch(() => undefined);
    await tb?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hears the guest start', async () => {
    await session('host-a').client();
    expect(connects).toEqual([{ host: 'host-a', reconnected: false }]);
    const started = performance.now();
    await tb.bootGuest('host-a', { name: DOMAIN, cdroms: [{ source: await image('one') }] });
    await until(() => hasLifecycle('host-a', Lifecycle.STARTED, Lifecycle.STARTED_BOOTED), 5000, 'STARTED/BOOTED on host-a');
    console.log(`boot on host-a: ${eventsOf('host-a').map((e) => `+${Math.round(e.at - started)} ms ${describeEvent(e)}`).join(', ')}`);
  });

  it('hears the tray open and close around a non-forced medium change', async () => {
    const client = await session('host-a').client();
    const domain = (await client.lookupDomain(DOMAIN))!;
    const since = performance.now();
    const from = tb.consoleOffset(DOMAIN);
    await client.updateDevice(domain, `<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${await image('two')}'/><target dev='sda' bus='sata'/><readonly/></disk>`, AffectFlags.LIVE);
    await tb.waitForConsole(DOMAIN, /CTX MOUNT sr0 TWO/, 30_000, from);
    await until(() => eventsOf('host-a', since).some((e) => e.kind === 'tray-change' && e.reason === 'close'), 5000, 'tray close');
    const trays = eventsOf('host-a', since).filter((e) => e.kind === 'tray-change');
    expect(trays.map(describeEvent)).toEqual(['tray-change sata0-0-0 open', 'tray-change sata0-0-0 close']);
  });

  it('live migration A→B: the source and the destination report it, in this order', async () => {
    await session('host-b').client();
    const client = await session('host-a').client();
    const domain = (await client.lookupDomain(DOMAIN))!;
    const started = performance.now();
    await client.migrate(domain, tb.host('host-b').uri, { migrateUri: 'tcp://127.0.0.1' });
    const returned = performance.now();
    await until(() => hasLifecycle('host-a', Lifecycle.STOPPED, Lifecycle.STOPPED_MIGRATED, started) && hasLifecycle('host-b', Lifecycle.RESUMED, Lifecycle.RESUMED_MIGRATED, started), 5000, 'migration events');
    await new Promise((resolve) => setTimeout(resolve, 500)); // stragglers
    const timeline = seen.filter((e) => e.domain.name === DOMAIN && e.at >= started).map((e) => `  +${String(Math.round(e.at - started)).padStart(5)} ms ${e.host} ${describeEvent(e)}`);
    console.log(`migration A→B (call returned after ${Math.round(returned - started)} ms):\n${timeline.join('\n')}`);
    const lifecycles = (host: HostName) => eventsOf(host, started).flatMap((e) => (e.kind === 'lifecycle' ? [`${e.event}/${e.detail}`] : []));
    // Destination: STARTED/MIGRATED as soon as the incoming QEMU runs (paused) — the early sign of
    // an incoming migration — then DEFINED/ADDED (0/0, PERSIST_DEST) and RESUMED/MIGRATED at the
    // switch-over: the guest runs here from then on.
    const onB = lifecycles('host-b');
    expect(onB[0]).toBe(`${Lifecycle.STARTED}/${Lifecycle.STARTED_MIGRATED}`);
    expect(onB.at(-1)).toBe(`${Lifecycle.RESUMED}/${Lifecycle.RESUMED_MIGRATED}`);
    expect([...onB].sort()).toEqual([`${Lifecycle.DEFINED}/0`, `${Lifecycle.STARTED}/${Lifecycle.STARTED_MIGRATED}`, `${Lifecycle.RESUMED}/${Lifecycle.RESUMED_MIGRATED}`]);
    // Source: migration iterations, SUSPENDED/MIGRATED when the guest pauses for the last copy,
    // and only when the whole protocol is confirmed (seen ~1.8 s after the destination resumed)
    // STOPPED/MIGRATED with job-completed.
    expect(lifecycles('host-a')).toEqual([`${Lifecycle.SUSPENDED}/${Lifecycle.SUSPENDED_MIGRATED}`, `${Lifecycle.STOPPED}/${Lifecycle.STOPPED_MIGRATED}`]);
    expect(eventsOf('host-a', started).some((e) => e.kind === 'migration-iteration')).toBe(true);
    expect(eventsOf('host-a', started).some((e) => e.kind === 'job-completed')).toBe(true);
  });

  it('fails fast while host B\'s libvirtd is down; then reconnects by itself and hears events again', async () => {
    const b = session('host-b');
    await tb.stopDaemon('host-b');
    await until(() => !b.connected, 5000, 'session notices the daemon is gone');
    const asked = performance.now();
    const failure = await b.client().catch((error: unknown) => error);
    expect(performance.now() - asked).toBeLessThan(1000);
    expect(failure).toBeInstanceOf(HostUnavailableError);
    expect(String(failure)).toContain(`host-b is unavailable (socket ${tb.host('host-b').socket})`);

    await tb.startDaemon('host-b');
    await until(() => connects.some((c) => c.host === 'host-b' && c.reconnected), 10_000, 'reconnect announced');
    expect((await tb.virsh('host-b', ['domstate', DOMAIN])).stdout.trim()).toBe('running'); // the guest outlived its daemon
    const since = performance.now();
    await tb.virsh('host-b', ['suspend', DOMAIN]);
    await tb.virsh('host-b', ['resume', DOMAIN]);
    await until(() => hasLifecycle('host-b', Lifecycle.RESUMED, Lifecycle.RESUMED_UNPAUSED, since), 5000, 'RESUMED/UNPAUSED after the restart');
    expect(hasLifecycle('host-b', Lifecycle.SUSPENDED, Lifecycle.SUSPENDED_PAUSED, since)).toBe(true);
  });

  it('restartDaemon: the session reconnects again and hears the guest destroyed', async () => {
    const before = connects.length;
    await tb.restartDaemon('host-b');
    await until(() => connects.slice(before).some((c) => c.host === 'host-b' && c.reconnected), 10_000, 'second reconnect');
    const since = performance.now();
    await tb.virsh('host-b', ['destroy', DOMAIN]);
    // Any STOPPED: on a domain the restarted daemon reattached to, destroy was seen reported as
    // SHUTDOWN/HOST (6/2) then STOPPED/SHUTDOWN (5/1) — QEMU's own shutdown event on SIGTERM wins.
    await until(() => eventsOf('host-b', since).some((e) => e.kind === 'lifecycle' && e.event === Lifecycle.STOPPED), 5000, 'STOPPED');
    console.log(`destroy after the restart: ${eventsOf('host-b', since).map(describeEvent).join(', ')}`);
  });

  it('keepalive notices a SIGSTOPped libvirtd; the session comes back after SIGCONT', async () => {
    const stuck = new LibvirtSession({ name: 'host-a', socketPath: tb.host('host-a').socket, keepalive: { intervalMs: 250, count: 2 }, connectTimeoutMs: 500, backoffBaseMs: 50, backoffMaxMs: 200 });
    const reconnected: boolean[] = [];
    stuck.onConnected((info) => reconnected.push(info.reconnected));
    const pid = tb.state().hosts.find((h) => h.name === 'host-a')!.libvirtdPid;
    try {
      await stuck.client();
      process.kill(pid, 'SIGSTOP');
      const stopped = performance.now();
      await until(() => !stuck.connected, 5000, 'keepalive declares the daemon dead');
      const detectedMs = performance.now() - stopped;
      console.log(`keepalive 250 ms × 2: SIGSTOPped libvirtd noticed after ${Math.round(detectedMs)} ms`);
      expect(detectedMs).toBeLessThan(2000);
      await expect(stuck.client()).rejects.toBeInstanceOf(HostUnavailableError); // handshake bounded by connectTimeoutMs
      process.kill(pid, 'SIGCONT');
      await until(() => reconnected.includes(true), 10_000, 'reconnect after SIGCONT');
    } finally {
      process.kill(pid, 'SIGCONT');
      await stuck.close();
    }
  });
});
