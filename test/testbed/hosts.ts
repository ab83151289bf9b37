// Two libvirt "hosts" on one machine (test/testbed/README.md): each host is a libvirtd + virtlogd pair in
// its own private mount namespace (unshare -m) with bind-mounted /etc/libvirt, /run/libvirt,
// /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt, a distinct host_uuid and own pid
// files. Both hosts (also host A) are private, so the test bed never touches a system libvirtd
// or /etc/libvirt, and stopping it ends exactly the processes of its namespaces. Everything
// else (kernel, initrd, ISOs, console logs) is on the shared file system at the same paths.
import { appendFileSync, closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { testbedCacheDir } from './guest.js';
import { formatElapsed, isAlive, isZombie, processName, readPid, run, sleep, terminate, type Log, type RunResult } from './install.js';

export type HostName = 'host-a' | 'host-b';
export const HOST_NAMES: readonly HostName[] = ['host-a', 'host-b'];

export interface HostState {
  readonly name: HostName;
  /** libvirtd's unix socket, reachable from the root namespace. */
  readonly socket: string;
  /** qemu+unix:///system?socket=… */
  readonly uri: string;
  /** The host's private tree (etc, run, lib, cache, log are bind-mounted over the libvirt dirs). */
  readonly dir: string;
  readonly libvirtdPid: number;
  readonly virtlogdPid: number;
  /** "mnt:[inode]" of the host's mount namespace: every process in it belongs to the test bed. */
  readonly mountNamespace: string;
}

const BIND_MOUNTS: ReadonlyArray<[sub: string, target: string]> = [
  ['etc', '/etc/libvirt'],
  ['run', '/run/libvirt'],
  ['lib', '/var/lib/libvirt'],
  ['cache', '/var/cache/libvirt'],
  ['log', '/var/log/libvirt'],
];

function hostUuid(name: HostName): string {
  return `7265636f-6e74-6578-7400-0000000000${name === 'host-a' ? '0a' : '0b'}`;
}

export function hostUri(socket: string): string {
  return `qemu+unix:///system?socket=${socket}`;
}

/** Starts one host's virtlogd and libvirtd in a fresh mount namespace; resolves when it answers. */
export async function startHost(instanceDir: string, name: HostName, log: Log): Promise<HostState> {
  const started = Date.now();
  const dir = join(instanceDir, name);
  rmSync(dir, { recursive: true, force: true });
  for (const [sub, target] of BIND_MOUNTS) {
    mkdirSync(join(dir, sub), { recursive: true });
    mkdirSync(target, { recursive: true });
  }
  // QEMU capabilities probed by an earlier host (libvirt re-probes when QEMU, libvirt or the
  // kernel changed): saves most of a host's start-up time.
  const seed = join(testbedCacheDir(), 'libvirt-qemu-capabilities');
  if (existsSync(seed)) cpSync(seed, join(dir, 'cache', 'qemu', 'capabilities'), { recursive: true });
  // Debian's configuration as installed, plus the test bed's settings (later keys win).
  cpSync('/etc/libvirt', join(dir, 'etc'), { recursive: true });
  rmSync(join(dir, 'etc', 'qemu', 'networks', 'autostart'), { recursive: true, force: true });
  for (const file of readdirSync(join(dir, 'etc', 'qemu'))) if (file.endsWith('.xml')) rmSync(join(dir, 'etc', 'qemu', file));
  appendFileSync(
    join(dir, 'etc', 'libvirtd.conf'),
    [
      '',
      '# recontext test bed',
      `host_uuid = "${hostUuid(name)}"`,
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      'unix_sock_rw_perms = "0700"',
      'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"',
      '',
    ].join('\n'),
  );
  // libvirt's default 49152-49215 lies inside Linux's ephemeral range (32768-60999): any client
  // socket on the machine (API servers under test, …) can hold such a port and QEMU's
  // migrate-incoming then fails with "Address already in use". Use 20000-25119 instead, 64 ports
  // per host, a block per instance (hash of its directory) so instances never share one.
  const block = Number.parseInt(createHash('sha256').update(instanceDir).digest('hex').slice(0, 8), 16) % 40;
  const portBase = 20000 + block * 128 + (name === 'host-a' ? 0 : 64);
  appendFileSync(
    join(dir, 'etc', 'qemu.conf'),
    [
      '',
      '# recontext test bed: QEMU runs as root (images may live under /root), no security driver,',
      '# no cgroups or private /dev (containers), migration over loopback only.',
      'user = "root"',
      'group = "root"',
      'dynamic_ownership = 0',
      'remember_owner = 0',
      'security_driver = "none"',
      'cgroup_controllers = [ ]',
      'namespaces = [ ]',
      `migration_port_min = ${portBase}`,
      `migration_port_max = ${portBase + 63}`,
      '',
    ].join('\n'),
  );

  const libvirtdPidFile = join(dir, 'libvirtd.pid');
  const virtlogdPidFile = join(dir, 'virtlogd.pid');
  const script = [
    'set -e',
    ...BIND_MOUNTS.map(([sub, target]) => `mount --bind '${join(dir, sub)}' '${target}'`),
    `virtlogd -d -p '${virtlogdPidFile}'`,
    `exec libvirtd -d -p '${libvirtdPidFile}'`,
  ].join('\n');
  const startLog = join(dir, 'start.log');
  const out = openSync(startLog, 'a');
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script], {
        stdio: ['ignore', out, out],
      });
      child.on('error', reject);
      child.on('close', (c) => resolve(c ?? -1));
    });
    if (code !== 0) throw new Error(`starting ${name} failed (exit ${code}):\n${safeRead(startLog)}`);
  } finally {
    closeSync(out);
  }
  const libvirtdPid = readPid(libvirtdPidFile) ?? 0;
  const virtlogdPid = readPid(virtlogdPidFile) ?? 0;
  const socket = join(dir, 'run', 'libvirt-sock');
  let mountNamespace = '';
  for (const pid of [libvirtdPid, virtlogdPid]) {
    try {
      mountNamespace ||= readlinkSync(`/proc/${pid}/ns/mnt`);
    } catch {
      // not running
    }
  }
  const host: HostState = { name, socket, uri: hostUri(socket), dir, libvirtdPid, virtlogdPid, mountNamespace };
  try {
    if (!mountNamespace || !isAlive(libvirtdPid)) throw new Error(`${name}: libvirtd is not running after start:\n${safeRead(startLog)}`);
    await untilAnswering(host);
  } catch (error: unknown) {
    // Whatever did start (virtlogd at least) goes with it.
    if (mountNamespace) await stopHost(host, log);
    throw error;
  }
  saveCapabilities(join(dir, 'cache', 'qemu', 'capabilities'), seed);
  log(`testbed: ${name} up in ${formatElapsed(Date.now() - started)}: libvirtd ${libvirtdPid}, virtlogd ${virtlogdPid}, ${host.uri}`);
  return host;
}

async function untilAnswering(host: HostState): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const probe = await virsh(host, ['version'], { allowFailure: true, timeoutMs: 20_000 });
    if (probe.code === 0) return;
    if (!isAlive(host.libvirtdPid) || Date.now() > deadline) {
      throw new Error(`${host.name}: libvirtd does not answer on ${host.socket}: ${probe.stderr.trim()}\n${safeRead(join(host.dir, 'log', 'libvirtd.log')).slice(-2000)}`);
    }
    await sleep(200);
  }
}

/**
 * Stops only the host's libvirtd (SIGTERM, like a service restart). Its QEMU processes and
 * virtlogd keep running and keep the mount namespace alive; the daemon's state stays in the
 * host's run/ and lib/ directories, so startDaemon() can reattach to the guests.
 */
export async function stopDaemon(host: HostState): Promise<void> {
  if (hostProcesses(host).includes(host.libvirtdPid)) await terminate(host.libvirtdPid);
}

/**
 * Starts the host's libvirtd again inside the host's existing mount namespace (entered through
 * virtlogd, which stays up), with the same configuration and state directories: it reconnects
 * to the QEMU processes it finds in its state (/run/libvirt/qemu/*.xml). Resolves with the new
 * pid once it answers.
 */
export async function startDaemon(host: HostState, log: Log): Promise<HostState> {
  const started = Date.now();
  if (!hostProcesses(host).includes(host.virtlogdPid)) throw new Error(`${host.name}: virtlogd ${host.virtlogdPid} is gone; the host's namespace cannot be entered`);
  const pidFile = join(host.dir, 'libvirtd.pid');
  const startLog = join(host.dir, 'start.log');
  const result = await run('nsenter', [`--mount=/proc/${host.virtlogdPid}/ns/mnt`, '--', 'libvirtd', '-d', '-p', pidFile], { allowFailure: true, timeoutMs: 30_000 });
  appendFileSync(startLog, result.stdout + result.stderr);
  const libvirtdPid = readPid(pidFile) ?? 0;
  if (result.code !== 0 || !isAlive(libvirtdPid)) throw new Error(`${host.name}: libvirtd did not start again (exit ${result.code}): ${result.stderr.trim()}`);
  const restarted: HostState = { ...host, libvirtdPid };
  await untilAnswering(restarted);
  log(`testbed: ${host.name}: libvirtd started again in ${formatElapsed(Date.now() - started)}: pid ${libvirtdPid}`);
  return restarted;
}

export function virsh(host: Pick<HostState, 'uri'>, args: readonly string[], options: { allowFailure?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  return run('virsh', ['-c', host.uri, ...args], { allowFailure: options.allowFailure ?? false, timeoutMs: options.timeoutMs ?? 120_000 });
}

/**
 * Pids of all processes in the host's mount namespace (libvirtd, virtlogd, QEMU, helpers).
 * Namespace inode numbers are reused as soon as a namespace dies, so a process counts only when
 * its namespace also has this host's bind mount of <dir>/run on /run/libvirt: a stale record
 * never matches another instance's processes.
 */
export function hostProcesses(host: Pick<HostState, 'mountNamespace' | 'dir'>): number[] {
  const pids: number[] = [];
  const ours = ` ${join(host.dir, 'run')} /run/libvirt `;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/mnt`) !== host.mountNamespace) continue;
      if (readFileSync(`/proc/${entry}/mountinfo`, 'utf8').includes(ours)) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or a kernel thread
    }
  }
  return pids.filter((pid) => !isZombie(pid));
}

/**
 * Destroys the host's domains (gracefully through libvirtd when it answers), stops libvirtd and
 * virtlogd, then ends whatever is left in its mount namespace; the namespace and its bind mounts
 * vanish with the last process. Removes the host directory.
 */
export async function stopHost(host: HostState, log: Log): Promise<void> {
  if (hostProcesses(host).includes(host.libvirtdPid) && existsSync(host.socket)) {
    const list = await virsh(host, ['list', '--all', '--name'], { allowFailure: true, timeoutMs: 15_000 });
    for (const domain of list.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
      await virsh(host, ['destroy', domain], { allowFailure: true, timeoutMs: 15_000 });
      await virsh(host, ['undefine', domain], { allowFailure: true, timeoutMs: 15_000 });
    }
  }
  // Recorded pids only while they still are what we started (pids get reused).
  const mine = new Set(hostProcesses(host));
  if (mine.has(host.libvirtdPid)) await terminate(host.libvirtdPid);
  if (mine.has(host.virtlogdPid)) await terminate(host.virtlogdPid);
  const left = hostProcesses(host);
  if (left.length > 0) {
    log(`testbed: ${host.name}: ending ${left.map((pid) => `${processName(pid) ?? '?'}(${pid})`).join(' ')}`);
    await Promise.all(left.map((pid) => terminate(pid, 5_000)));
  }
  rmSync(host.dir, { recursive: true, force: true });
}

/** Keeps the probed capabilities for the next hosts (written aside, then renamed: atomic). */
function saveCapabilities(from: string, seed: string): void {
  try {
    const files = readdirSync(from).filter((f) => f.endsWith('.xml'));
    if (files.length === 0) return;
    mkdirSync(seed, { recursive: true });
    for (const file of files) {
      const tmp = join(seed, `.${file}.${process.pid}`);
      cpSync(join(from, file), tmp);
      renameSync(tmp, join(seed, file));
    }
  } catch {
    // only an optimization
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
