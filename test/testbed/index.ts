// The hypervisor test bed: two libvirt hosts on this machine (hosts.ts), the test guest
// (guest.ts) and helpers to define it (domain.ts) and read what it reports on its console.
//
//   const tb = await startTestbed();
//   await tb.virsh('host-a', ['create', file]);          // file = tb.domainXml({ name, cdroms })
//   await tb.waitForConsole(name, /CTX MOUNT sr0 (\S+)/, 30_000);
//   await tb.stop();
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDomainXml, type DomainOptions } from './domain.js';
import { ensureGuest, probeAccelerator, type Accelerator, type GuestImage, type GuestVariant } from './guest.js';
import { HOST_NAMES, hostProcesses, startDaemon as startDaemonOf, startHost, stopDaemon, stopHost, virsh as virshOn, type HostName, type HostState } from './hosts.js';
import { ensurePackages, formatElapsed, isAlive, sleep, testbedRoot, type Log, type RunResult } from './install.js';

export { TestbedUnavailable, testbedPrecondition, ensurePackages, testbedRoot, TESTBED_PACKAGES } from './install.js';
export { ensureGuest, probeAccelerator, testbedCacheDir, variantMemoryMiB, type GuestImage, type GuestVariant, type Accelerator } from './guest.js';
export { buildDomainXml, sataTarget, scsiCdromXml, type DomainOptions, type CdromSpec } from './domain.js';
export { hostProcesses, type HostName, type HostState } from './hosts.js';

export interface TestbedHost {
  readonly name: HostName;
  readonly socket: string;
  readonly uri: string;
}

/** Serializable description (vitest provide, the testbed:up state file). */
export interface TestbedState {
  readonly id: string;
  readonly dir: string;
  readonly hosts: readonly HostState[];
  readonly guest: GuestImage;
  readonly accelerator: Accelerator;
  /** Pid of the process whose exit ends the test bed; absent for testbed:up (detached). */
  readonly owner?: number;
}

export interface ConsoleMatch {
  readonly match: RegExpExecArray;
  /** Byte offset in the log just after the matching line. */
  readonly offset: number;
  /** Date.now() when the line was seen (log polled every 20 ms). */
  readonly seenAt: number;
}

export interface Testbed {
  readonly id: string;
  readonly dir: string;
  readonly hosts: readonly [TestbedHost, TestbedHost];
  readonly guest: GuestImage;
  readonly accelerator: Accelerator;
  /** Domain XML of the test guest; its console goes to consoleLogPath(options.name). */
  domainXml(options: DomainOptions): string;
  consoleLogPath(domain: string): string;
  /** The console log so far ('' before the domain wrote anything). */
  consoleLog(domain: string): string;
  /** Current size of the console log: pass as `from` to wait only for what comes after. */
  consoleOffset(domain: string): number;
  /** Waits for a line matching regex (at or after byte offset `from`). */
  waitForConsole(domain: string, regex: RegExp, timeoutMs: number, from?: number): Promise<ConsoleMatch>;
  /**
   * Defines and starts the test guest on a host (transient domain, `virsh create`) and waits for
   * the agent's first heartbeat. Returns the seconds from the call to that line.
   */
  bootGuest(host: HostName, options: DomainOptions, timeoutMs?: number): Promise<{ xmlPath: string; bootSeconds: number }>;
  /** Destroys the domain on whichever host runs it (no error when it runs nowhere). */
  destroyGuest(domain: string): Promise<void>;
  /** virsh against a host (non-zero exit is a result). */
  virsh(host: HostName, args: readonly string[], options?: { timeoutMs?: number }): Promise<RunResult>;
  host(name: HostName): TestbedHost;
  /**
   * Stops the host's libvirtd only (SIGTERM); its QEMU guests keep running. Not on the run's
   * shared test bed: other test files talk to it in parallel (start an own instance).
   */
  stopDaemon(host: HostName): Promise<void>;
  /** Starts the host's libvirtd again with the same configuration and state; it reattaches to its running guests. Resolves once it answers. */
  startDaemon(host: HostName): Promise<void>;
  /** stopDaemon + startDaemon: a libvirtd restart with the guests running on. */
  restartDaemon(host: HostName): Promise<void>;
  state(): TestbedState;
  /** Destroys all domains, stops both hosts, removes the instance directory. */
  stop(): Promise<void>;
}

export interface TestbedOptions {
  /** Instance name: directory `${RECONTEXT_TESTBED_DIR:-/run/recontext-testbed}/<id>`. */
  readonly id?: string;
  /** Keep running after this process exits (testbed:up). Otherwise its exit stops everything. */
  readonly detached?: boolean;
  /** Guest image variant; default 'base' ('fat' = the Go guest agent + fuse.ko + apps, README "The fat guest"). */
  readonly guestVariant?: GuestVariant;
  readonly log?: Log;
}

/** Installs (if needed), builds the guest (if needed), starts both hosts. */
export async function startTestbed(options: TestbedOptions = {}): Promise<Testbed> {
  const log = options.log ?? ((line: string) => console.error(line));
  const started = Date.now();
  await ensurePackages(log);
  const guest = await ensureGuest({ variant: options.guestVariant ?? 'base', log });
  const accelerator = await probeAccelerator(guest, log);
  const id = options.id ?? `t${process.pid}`;
  const dir = join(testbedRoot(), id);
  const stale = readState(dir);
  if (stale) await stopState(stale, log);
  removeOrphans(log);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'domains'), { recursive: true });
  const hosts: HostState[] = [];
  const partial: TestbedState = { id, dir, hosts, guest, accelerator, ...(options.detached ? {} : { owner: process.pid }) };
  writeState(partial);
  try {
    // Both at once (each spends seconds probing QEMU's capabilities); record each as it comes up.
    const results = await Promise.allSettled(
      HOST_NAMES.map(async (name) => {
        const host = await startHost(dir, name, log);
        hosts.push(host);
        writeState(partial);
        return host;
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    hosts.sort((x, y) => x.name.localeCompare(y.name));
    writeState(partial);
  } catch (error: unknown) {
    await stopState(partial, log);
    throw error;
  }
  log(`testbed: ${id} ready in ${formatElapsed(Date.now() - started)} (${accelerator.accel}; guest ${guest.kernelPackage})`);
  const testbed = connectTestbed(partial);
  if (options.detached) return testbed;
  const onExit = (): void => stopStateSync(partial);
  process.on('exit', onExit);
  return {
    ...testbed,
    stop: async () => {
      process.off('exit', onExit);
      await testbed.stop();
    },
  };
}

/** A Testbed over an already running instance (another process started it). */
export function connectTestbed(initial: TestbedState): Testbed {
  // Replaced when a daemon restarts (new libvirtd pid), so stop() and the state file stay right.
  let state = initial;
  const [a, b] = state.hosts;
  if (!a || !b) throw new Error(`test bed ${state.id} has ${state.hosts.length} hosts`);
  const brief = (h: HostState): TestbedHost => ({ name: h.name, socket: h.socket, uri: h.uri });
  const hosts: readonly [TestbedHost, TestbedHost] = [brief(a), brief(b)];
  const consoleLogPath = (domain: string): string => join(state.dir, 'domains', domain, 'console.log');
  const host = (name: HostName): TestbedHost => {
    const found = hosts.find((h) => h.name === name);
    if (!found) throw new Error(`no host ${name}`);
    return found;
  };
  const consoleLog = (domain: string): string => {
    try {
      return readFileSync(consoleLogPath(domain), 'utf8');
    } catch {
      return '';
    }
  };
  const virsh = (name: HostName, args: readonly string[], options: { timeoutMs?: number } = {}): Promise<RunResult> =>
    virshOn(host(name), args, { allowFailure: true, timeoutMs: options.timeoutMs ?? 120_000 });
  const domainXml = (options: DomainOptions): string => {
    mkdirSync(join(state.dir, 'domains', options.name), { recursive: true });
    return buildDomainXml(options, { guest: state.guest, accelerator: state.accelerator, consoleLog: consoleLogPath(options.name) });
  };
  const consoleOffset = (domain: string): number => {
    try {
      return statSync(consoleLogPath(domain)).size;
    } catch {
      return 0;
    }
  };
  const waitForConsole = async (domain: string, regex: RegExp, timeoutMs: number, from = 0): Promise<ConsoleMatch> => {
    const deadline = Date.now() + timeoutMs;
    const flags = regex.flags.replace(/[gy]/g, '');
    for (;;) {
      const text = Buffer.from(consoleLog(domain), 'utf8').subarray(from).toString('utf8');
      // Whole lines only: a line still being written does not match half-way.
      const complete = text.slice(0, text.lastIndexOf('\n') + 1);
      const match = new RegExp(regex.source, flags).exec(complete);
      if (match) {
        const lineEnd = complete.indexOf('\n', match.index + match[0].length);
        return { match, offset: from + Buffer.byteLength(complete.slice(0, lineEnd + 1)), seenAt: Date.now() };
      }
      if (Date.now() > deadline) {
        throw new Error(`console of ${domain}: no line matching ${regex} within ${timeoutMs} ms; tail:\n${complete.slice(-1500)}`);
      }
      await sleep(20);
    }
  };
  const hostState = (name: HostName): HostState => {
    const found = state.hosts.find((h) => h.name === name);
    if (!found) throw new Error(`no host ${name}`);
    return found;
  };
  const startDaemon = async (name: HostName): Promise<void> => {
    const restarted = await startDaemonOf(hostState(name), (line) => console.error(line));
    state = { ...state, hosts: state.hosts.map((h) => (h.name === name ? restarted : h)) };
    writeState(state);
  };
  return {
    id: state.id,
    dir: state.dir,
    hosts,
    guest: state.guest,
    accelerator: state.accelerator,
    host,
    domainXml,
    consoleLogPath,
    consoleLog,
    consoleOffset,
    waitForConsole,
    virsh,
    bootGuest: async (name, options, timeoutMs = 120_000) => {
      const xmlPath = join(state.dir, 'domains', options.name, 'domain.xml');
      writeFileSync(xmlPath, domainXml(options));
      const from = consoleOffset(options.name);
      const started = Date.now();
      const created = await virsh(name, ['create', xmlPath]);
      if (created.code !== 0) throw new Error(`virsh create ${options.name} on ${name} failed: ${created.stderr.trim()}`);
      const alive = await waitForConsole(options.name, /CTX ALIVE 1\b/, timeoutMs, from);
      return { xmlPath, bootSeconds: (alive.seenAt - started) / 1000 };
    },
    destroyGuest: async (domain) => {
      for (const h of hosts) await virsh(h.name, ['destroy', domain]);
    },
    stopDaemon: (name) => stopDaemon(hostState(name)),
    startDaemon,
    restartDaemon: async (name) => {
      await stopDaemon(hostState(name));
      await startDaemon(name);
    },
    state: () => state,
    stop: async () => stopState(state, (line) => console.error(line)),
  };
}

function statePath(dir: string): string {
  return join(dir, 'state.json');
}

function writeState(state: TestbedState): void {
  writeFileSync(statePath(state.dir), `${JSON.stringify(state, null, 2)}\n`);
}

export function readState(dir: string): TestbedState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(dir), 'utf8')) as TestbedState;
  } catch {
    return undefined;
  }
}

/** Both hosts still running as recorded. */
export function stateAlive(state: TestbedState): boolean {
  return state.hosts.length === 2 && state.hosts.every((h) => hostProcesses(h).includes(h.libvirtdPid) && existsSync(h.socket));
}

export async function stopState(state: TestbedState, log: Log): Promise<void> {
  for (const host of state.hosts) await stopHost(host, log);
  rmSync(state.dir, { recursive: true, force: true });
}

/** Last resort on process exit (synchronous): SIGKILL everything in the hosts' namespaces. */
function stopStateSync(state: TestbedState): void {
  for (const host of state.hosts) {
    for (const pid of hostProcesses(host)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  rmSync(state.dir, { recursive: true, force: true });
}

/** Instances whose owner process died without stop() (a killed test run). */
function removeOrphans(log: Log): void {
  let ids: string[];
  try {
    ids = readdirSyncSafe(testbedRoot());
  } catch {
    return;
  }
  for (const id of ids) {
    const state = readState(join(testbedRoot(), id));
    if (state?.owner !== undefined && !isAlive(state.owner)) {
      log(`testbed: removing orphaned instance ${id} (owner ${state.owner} is gone)`);
      stopStateSync(state);
    }
  }
}

function readdirSyncSafe(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
