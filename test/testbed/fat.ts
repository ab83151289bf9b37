// The 'fat' test guest (issue 7, issue 19; guest/agent/README.md): the base guest plus what the guest side
// of recontext needs — fuse.ko (from the kernel package, guest.ts) and the Go guest agent
// guest/agent (`recontext-ffs`, one static binary built here from the repository's source), with
// the guest owner's files it reads: /etc/recontext/ffs.yaml (the hook policy), /etc/passwd and
// /etc/group (hooks run as `nobody`). No Node, no libfuse, no fusermount: the agent speaks
// /dev/fuse itself. The hook /etc/ctx.d/50-run (guest/fat/ctx-run) starts what the kernel command
// line names (ctx.run=); ffsRun() gives the one that starts the agent on the context drives.
//
// The name stays 'fat' (the test bed's public API; it was Node + the TypeScript agent until issue
// 19): it is still the base plus an agent and FUSE.
//
// planFatGuest() collects every input first; its digest (the contents of every file that goes in,
// the agent's binary included) is the cache key, so the image is rebuilt only when an input changes.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RootBuilder } from './guest.js';
import { run, type Log } from './install.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const GUEST_SOURCES = join(HERE, 'guest');
const AGENT_SOURCES = join(REPO, 'guest', 'agent');

/** Where the fat guest has the agent. */
export const FFS_BINARY = 'usr/bin/recontext-ffs';
/** Where the agent serves the context in the guest (as the packaged unit does). */
export const CONTEXT_MOUNT = '/run/recontext/context';
/** Where it mounts each medium. */
export const MEDIA_DIR = '/run/recontext-ffs/media';
/** The guest owner's hook policy the agent reads by default (guest/fat/ffs.yaml). */
export const FFS_CONFIG = '/etc/recontext/ffs.yaml';
/**
 * A second policy for bench/ffs-guest only (guest/fat/ffs-bench.yaml): its switch hook stops the
 * agent and takes the drives over, which needs root. Chosen with `--config`, never by default.
 */
export const FFS_BENCH_CONFIG = '/etc/recontext/ffs-bench.yaml';
/**
 * The GlusterFS client's stand-in (guest/fat/gluster-client; npm run demo): reads its
 * configuration under /etc/glusterfs and /etc/policy (links into the union), again on the
 * example's SIGHUP, and prints it as `APP <n> start|reload <file> <line>` lines.
 */
export const GLUSTER_CLIENT = '/usr/lib/recontext-test/gluster-client';

/**
 * The kernel command line words that make the fat guest run the agent on its context drives:
 * `ctx.devices=off` leaves the CD-ROMs to it (the test agent then only sends its heartbeat: two
 * agents mounting and ejecting the same drives fight), and `ctx.run=` starts
 * `recontext-ffs mount /run/recontext/context --devices …`. `trace`: FFS_DEVD_TRACE=1, the
 * watcher's uevent and mount lines on the console.
 */
export function ffsRun(options: { trace?: boolean; config?: string } = {}): string {
  const env = options.trace ? 'env,FFS_DEVD_TRACE=1,' : '';
  const config = options.config ? `,--config,${options.config}` : '';
  return `ctx.devices=off ctx.run=${env}recontext-ffs,mount,${CONTEXT_MOUNT},--devices,--media-dir,${MEDIA_DIR}${config}`;
}

export interface FatPlan {
  /** Digest of every input (goes into the cache key). */
  readonly key: string;
  /** What goes in, for the build log. */
  readonly summary: string;
  readonly apply: (root: RootBuilder, work: string, log: Log) => Promise<void>;
}

/** One file of the image: its content and mode. */
interface Entry {
  readonly dest: string;
  readonly data: Buffer;
  readonly mode: number;
}

/**
 * The agent as `npm run build:guest` builds it (guest/agent/tools/build: static, reproducible —
 * no VCS stamp, no build id — so an unchanged source gives the same bytes and the same key),
 * written to `binary`; `goarch` defaults to amd64 (the test guests). bench:ffs builds the host's
 * with it. go's build cache makes an unchanged one a relink (~1–2 s).
 */
export async function buildGuestAgent(binary: string, goarch = 'amd64'): Promise<void> {
  const result = await run('go', ['build', '-trimpath', '-buildvcs=false', '-ldflags=-s -w -buildid=', '-o', binary, './cmd/recontext-ffs'], {
    cwd: AGENT_SOURCES,
    env: { ...process.env, CGO_ENABLED: '0', GOOS: 'linux', GOARCH: goarch, GOFLAGS: '-mod=readonly' },
    allowFailure: true,
    timeoutMs: 600_000,
  });
  if (result.code !== 0) throw new Error(`go build of guest/agent failed (Go ≥ the go.mod's version needed): ${result.stderr.trim() || result.stdout.trim()}`);
}

/** The test guests' agent binary, built on every plan. */
async function buildAgent(): Promise<Buffer> {
  const out = mkdtempSync(join(tmpdir(), 'recontext-fat-agent-'));
  try {
    const binary = join(out, 'recontext-ffs');
    await buildGuestAgent(binary);
    return readFileSync(binary);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Collects the fat guest's files (the agent, its configuration, accounts, start-up hooks) and their digest. */
export async function planFatGuest(): Promise<FatPlan> {
  const source = (name: string): Buffer => readFileSync(join(GUEST_SOURCES, 'fat', name));
  const agent = await buildAgent();
  const entries: Entry[] = [
    { dest: FFS_BINARY, data: agent, mode: 0o755 },
    { dest: FFS_CONFIG.slice(1), data: source('ffs.yaml'), mode: 0o644 },
    { dest: FFS_BENCH_CONFIG.slice(1), data: source('ffs-bench.yaml'), mode: 0o644 },
    { dest: 'etc/passwd', data: source('passwd'), mode: 0o644 },
    { dest: 'etc/group', data: source('group'), mode: 0o644 },
    { dest: 'etc/ctx.d/10-console', data: source('ctx-console'), mode: 0o755 },
    { dest: 'etc/ctx.d/50-run', data: source('ctx-run'), mode: 0o755 },
    { dest: 'usr/lib/recontext-test/ffs-hello', data: source('ffs-hello'), mode: 0o755 },
    { dest: GLUSTER_CLIENT.slice(1), data: source('gluster-client'), mode: 0o755 },
  ];
  const hash = createHash('sha256');
  for (const e of entries) hash.update(`${e.dest}\0${e.mode}\0${e.data.length}\0`).update(e.data);
  return {
    key: hash.digest('hex'),
    summary: `recontext-ffs (guest/agent, ${(agent.length / 2 ** 20).toFixed(1)} MiB static), ${entries.slice(1).map((e) => `/${e.dest}`).join(', ')}`,
    apply: async (root) => {
      for (const e of entries) root.file(e.dest, e.data, e.mode);
      // What the packaged unit's RuntimeDirectory= and `mkdir -p` make (the agent mounts on an
      // existing directory); the initramfs root stays for the guest's life, /run included.
      root.dir(CONTEXT_MOUNT.slice(1));
      root.dir(MEDIA_DIR.slice(1));
    },
  };
}
