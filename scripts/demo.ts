// `npm run demo`: the README's main command. A VM's context kept live across a live migration,
// on real parts: two libvirt hosts on this machine (zone-a/eu-north and zone-b/us-east), a QEMU
// guest running the GlusterFS example's client, recontext in standalone mode. The guest is
// live-migrated from host A to host B; the infrastructure and legislative layers are re-rendered
// for B and swapped in while the guest runs; inside the guest the agent (guest/agent,
// recontext-ffs) merges the layers and runs the example's hook, which tells the client (a stand-in,
// test/testbed/guest/fat/gluster-client) to reload: we print what it reads before and after and
// how long each phase took. Sets up what it needs (Debian packages, guest image: cached) and
// cleans up after itself.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/runtime/log.js';
import { OperatorMetrics } from '../src/runtime/metrics.js';
import type { VMContext } from '../src/crds/index.js';
import { LibvirtClient } from '../src/drivers/libvirt/client.js';
import { LibvirtDriver } from '../src/drivers/libvirt/driver.js';
import { readHostsFile, resolveHosts } from '../src/standalone/hosts.js';
import { StandaloneOperator } from '../src/standalone/operator.js';
import { ensureGuest, startTestbed, type Testbed } from '../test/testbed/index.js';
import { ffsRun, GLUSTER_CLIENT } from '../test/testbed/fat.js';
import { siteOperator, writeSite } from '../test/testbed/site.js';

const DOMAIN = 'gluster-client-1';
const KEY = `default/${DOMAIN}`;
const STEPS = 6;

const work = mkdtempSync(join(tmpdir(), 'recontext-demo-'));
const operatorLog: string[] = [];
let testbed: Testbed | undefined;
let operator: StandaloneOperator | undefined;
let step = 0;

function progress(line: string): void {
  step++;
  process.stdout.write(`[${step}/${STEPS}] ${line}\n`);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** One read of its configuration by the client in the guest: file → its lines. */
interface ClientRead {
  readonly seenAt: number;
  readonly files: Map<string, string[]>;
}

/**
 * Waits until the client in the guest has read its configuration (after `from`, on a reload)
 * with every pattern matching some line: its `APP <n> reload …` lines up to `APP <n> reload done`.
 */
async function clientReads(tb: Testbed, patterns: readonly RegExp[], from: number, timeoutMs = 60_000): Promise<ClientRead> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = await tb.waitForConsole(DOMAIN, /^APP (\d+) reload done\r?$/m, Math.max(1, deadline - Date.now()), from);
    const text = Buffer.from(tb.consoleLog(DOMAIN), 'utf8').subarray(from, done.offset).toString('utf8');
    const files = new Map<string, string[]>();
    for (const m of text.matchAll(new RegExp(`^APP ${done.match[1]} reload (/\\S+) (.*?)\\r?$`, 'gm'))) files.set(m[1]!, [...(files.get(m[1]!) ?? []), m[2]!]);
    const lines = [...files.values()].flat();
    if (patterns.every((p) => lines.some((l) => p.test(l)))) return { seenAt: done.seenAt, files };
    from = done.offset;
  }
}

/** What the client read, as the demo prints it. */
function clientView(read: ClientRead): string[] {
  return [...read.files].map(([file, lines]) => `    ${file}\n${lines.map((l) => `        ${l}`).join('\n')}`);
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const converged = (vm: VMContext | undefined, node: string): VMContext | undefined =>
  vm?.status?.node === node && vm.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True' && c.reason === 'Converged') ? vm : undefined;

async function cleanUp(): Promise<void> {
  await operator?.stop().catch(() => undefined);
  await testbed?.stop().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}

async function main(): Promise<void> {
  console.log('recontext demo: a VM keeps a live context across a live migration (libvirt + QEMU, standalone mode)\n');
  const started = Date.now();
  progress('test bed: two libvirt hosts on this machine — host-a (zone-a, eu-north) and host-b (zone-b, us-east) …');
  const setupLog: string[] = [];
  const tb = await startTestbed({ id: 'demo', log: (line) => setupLog.push(line) });
  testbed = tb;
  console.log(`      ready in ${seconds(Date.now() - started)} (QEMU ${tb.accelerator.accel === 'kvm' ? 'with KVM' : 'TCG, software emulation: /dev/kvm is not usable here'})`);

  progress(`guest ${DOMAIN} boots on host-a with 6 empty CD-ROM drives (4 layers + 2 spares for instant swaps) …`);
  // The guest runs the agent on its drives and the client, which reads /etc/glusterfs and
  // /etc/policy (links into the agent's union) and reloads on SIGHUP.
  const guest = await ensureGuest({ variant: 'fat', log: (line) => setupLog.push(line) });
  const boot = await tb.bootGuest('host-a', { name: DOMAIN, guest, cdroms: 6, cmdlineExtra: `${ffsRun()} ctx.run=${GLUSTER_CLIENT}` }, 180_000);
  await tb.waitForConsole(DOMAIN, /"msg":"watching context devices"/, 120_000);
  console.log(`      running after ${boot.bootSeconds.toFixed(1)} s: recontext-ffs serves /run/recontext/context, the GlusterFS client waits for its configuration`);

  progress('recontext operator --standalone: 4 layers of examples/gluster, rendered for host-a, attached live …');
  const site = join(work, 'site');
  const hostsFile = writeSite(site, { domain: DOMAIN, hosts: tb.hosts });
  // The example's hook tells the client on a change under etc/glusterfs/; here also under
  // etc/policy/, so that each read the demo prints is of both files as they are after the swap.
  const service = join(site, 'layer-gluster-service.yaml');
  const example = readFileSync(service, 'utf8');
  if (!example.includes('paths: [etc/glusterfs/]')) throw new Error(`${service}: the gluster-reload hook's paths changed; update the demo`);
  writeFileSync(service, example.replace('paths: [etc/glusterfs/]', 'paths: [etc/glusterfs/, etc/policy/]'));
  const metrics = new OperatorMetrics();
  const driver = new LibvirtDriver(resolveHosts(readHostsFile(hostsFile), [], () => {}));
  let resumedAt: number | undefined;
  driver.watch((change) => {
    if (change.reason === 'migrated') resumedAt = Date.now(); // Resumed(Migrated) on host-b
  });
  operator = siteOperator({ site, state: join(work, 'state'), hostsFile, driver, metrics, logger: createLogger({ level: 'info', write: (line) => void operatorLog.push(line) }) });
  const beforeFrom = tb.consoleOffset(DOMAIN);
  await operator.start();
  const onA = await until('layers attached on host-a', () => converged(operator?.store.vmContexts.get(KEY), 'host-a'), 60_000);
  const readOnA = await clientReads(tb, [/cache-a\.zone-a/, /jurisdiction = EU/], beforeFrom);
  console.log(`      attached in ${onA.status?.lastRecontext?.totalMs} ms: ${onA.status?.layers?.map((l) => `${l.name}→${l.device}`).join(', ')}`);
  console.log('    What the GlusterFS client in the guest read (told by the gluster-reload hook, SIGHUP):');
  console.log(clientView(readOnA).join('\n'));

  progress('live migration host-a → host-b (memory copied while the guest runs) …');
  const afterFrom = tb.consoleOffset(DOMAIN);
  const source = await LibvirtClient.connect({ socketPath: tb.host('host-a').socket });
  // Watch the console from now on: the guest may read its new context before the call returns.
  const newCacheRead = clientReads(tb, [/cache-b\.zone-b/, /jurisdiction = US/], afterFrom);
  newCacheRead.catch(() => undefined); // awaited below; if the migration fails first, main() reports that
  const migrationStarted = Date.now();
  try {
    await source.migrate((await source.lookupDomain(DOMAIN))!, tb.host('host-b').uri, { migrateUri: 'tcp://127.0.0.1' });
  } finally {
    await source.close();
  }
  const migrated = Date.now();
  console.log(`      migrated in ${seconds(migrated - migrationStarted)}`);

  progress('recontextualization on host-b …');
  const readOnB = await newCacheRead;
  const seenAt = readOnB.seenAt;
  const onB = await until('status on host-b', () => converged(operator?.store.vmContexts.get(KEY), 'host-b'), 30_000);
  const last = onB.status?.lastRecontext;
  const changed = onB.status?.layers?.filter((l) => l.digest !== onA.status?.layers?.find((a) => a.name === l.name)?.digest).map((l) => l.name) ?? [];
  console.log(`      re-rendered for host-b and swapped live: ${changed.join(', ')} (unchanged layers kept their devices)`);
  if (last) {
    const p = last.phasesMs;
    console.log(`      phases (${last.trigger}): resolve ${p.resolve} ms · detach ${p.detach} ms · build ${p.build} ms · attach ${p.attach} ms = ${last.totalMs} ms (then the old images released in ${last.releaseMs ?? 0} ms)`);
  }
  if (resumedAt !== undefined) {
    console.log(`      the guest resumed on host-b ${resumedAt - migrationStarted} ms into the migration and read its new context ${seenAt - resumedAt} ms later`);
    console.log(`      (${seenAt <= migrated ? `before the migration call even returned, at ${migrated - migrationStarted} ms: libvirt was still cleaning up on host-a` : `the migration call returned at ${migrated - migrationStarted} ms`})`);
  }
  console.log('    What the GlusterFS client in the guest read on host-b (told by the hook again):');
  console.log(clientView(readOnB).join('\n'));
  const recontexts = (await metrics.registry.getSingleMetricAsString('recontext_recontext_duration_seconds')).split('\n').filter((l) => l.includes('_count') || l.includes('_sum'));
  console.log(`    Prometheus (recontext_recontext_duration_seconds):\n${recontexts.map((l) => `      ${l}`).join('\n')}`);

  progress('cleaning up (guest, operator, both hosts) …');
  await tb.destroyGuest(DOMAIN);
  await cleanUp();
  testbed = undefined;
  operator = undefined;
  console.log(`\ndone in ${seconds(Date.now() - started)}. Run the tests with: npm test`);
}

process.on('SIGINT', () => {
  console.error('\ninterrupted; cleaning up …');
  void cleanUp().finally(() => process.exit(130));
});

main().catch(async (error: unknown) => {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
  if (operatorLog.length > 0) console.error(`last operator log lines:\n${operatorLog.slice(-15).join('')}`);
  await cleanUp();
  process.exit(1);
});
