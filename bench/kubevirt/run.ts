// Benchmark (issue 17): recontext on real KubeVirt + CDI in the local kind cluster, the guest under
// QEMU's emulation (TCG) on this machine's two cores — the story of `npm run e2e:kubevirt`
// (test/e2e/kubevirt/gluster-vm.ts: helm install with the KubeVirt driver, examples/gluster, one VM
// booting the fat test guest from a containerDisk with an empty CD-ROM drive per layer).
//
// Two measurements, every run reported:
//   edit       a ConfigMap edit of the gluster-service layer → the new medium in the guest (the
//              agent's `layer image arrived` line for the new digest) → the client re-read its
//              configuration (`APP <n> reload done`, after the layer's hook sent SIGHUP);
//   migration  a VirtualMachineInstanceMigration to the other zone → KubeVirt's milestones (target
//              pod placed, target named in the VMI, migration completed) → the target's DataVolumes
//              created and imported → volumes in the VM spec and Ready (the operator's
//              status.lastRecontext.sinceMigrationMs) → the client reads the new zone's cache
//              address. Goal: ≤ 10 s median from the migration's end to that read, the images for
//              the target imported before the migration ends.
// and the migrations in both ways the operator can learn the target, in one run:
//   target pod  (default) from the target virt-launcher pod as soon as the scheduler places it;
//   VMI         (--no-kubevirt-target-pods) from status.migrationState.targetNode, when KubeVirt names it.
// Times are the host's: the cluster's objects through watches (src/runtime Informer), the guest's
// console lines by the time KubeVirt's guest-console-log container read them (kubectl logs
// --timestamps).
//
// Run: npm run bench:kubevirt   (root; the local cluster with KubeVirt + CDI, as npm run e2e:kubevirt)
//   env BENCH_KUBEVIRT_ROUNDS=<n>   migrations per side (default 10)
//       BENCH_KUBEVIRT_EDITS=<n>    layer edits (default 10)
import { cpus, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { DATA_VOLUMES } from '../../src/drivers/kubevirt/driver.js';
import { MIGRATION_JOB_LABEL, VIRTUAL_MACHINE_INSTANCES } from '../../src/drivers/kubevirt/observe.js';
import { KubeClient } from '../../src/kube/client.js';
import { PODS, type ResourceRef } from '../../src/kube/resources.js';
import { Informer, type ObjectMeta } from '../../src/runtime/informer.js';
import { createLogger } from '../../src/runtime/log.js';
import { OperatorMetrics } from '../../src/runtime/metrics.js';
import { until } from '../../test/integration/scenario.js';
import { cacheHostPattern, digestOf, glusterSession, isReady, otherZone, SYSTEM, VM, type GlusterSession } from '../../test/e2e/kubevirt/gluster-vm.js';
import { prepareKubeVirtE2e } from '../../test/e2e/kubevirt/setup.js';

const NS = 'bench-kubevirt';
const ROUNDS = Number(process.env.BENCH_KUBEVIRT_ROUNDS ?? '10');
const EDITS = Number(process.env.BENCH_KUBEVIRT_EDITS ?? '10');
const GOAL_MS = 10_000;
const SETTLE_MS = 5_000;

const progress = (line: string): void => console.error(`bench:kubevirt: ${line}`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** What of a VMI, a target pod or a DataVolume the bench reads. */
interface Watched extends ObjectMeta {
  readonly spec?: { readonly nodeName?: string };
  readonly status?: { readonly phase?: string; readonly migrationState?: { readonly migrationUid?: string; readonly targetNode?: string; readonly completed?: boolean } };
}

/** Every watch event of the namespace, with the host time it arrived. */
interface Seen {
  readonly at: number;
  readonly kind: 'vmi' | 'pod' | 'dv';
  readonly event: string;
  readonly object: Watched;
}

function record(client: KubeClient, signal: AbortSignal): { seen: Seen[]; synced: Promise<void> } {
  const seen: Seen[] = [];
  const quiet = createLogger({ write: () => {} });
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  const watch = (kind: Seen['kind'], resource: ResourceRef, labelSelector?: string) => {
    const informer = new Informer<Watched>({ client, resource, namespace: NS, logger: quiet, metrics, ...(labelSelector ? { labelSelector } : {}) });
    informer.onEvent((event, object) => void seen.push({ at: Date.now(), kind, event, object }));
    informer.start(signal);
    return informer.waitForSync();
  };
  const synced = Promise.all([watch('vmi', VIRTUAL_MACHINE_INSTANCES), watch('pod', PODS, MIGRATION_JOB_LABEL), watch('dv', DATA_VOLUMES)]).then(() => undefined);
  return { seen, synced };
}

/** Console lines read after `after` (host ms), with their times. */
async function consoleSince(session: GlusterSession, after: number): Promise<{ at: number; line: string }[]> {
  const text = await session.consoleText({ timestamps: true });
  return text.split('\n').flatMap((raw) => {
    const space = raw.indexOf(' ');
    const at = Date.parse(raw.slice(0, space));
    return Number.isFinite(at) && at >= after ? [{ at, line: raw.slice(space + 1) }] : [];
  });
}

interface EditRun {
  readonly mediumMs: number;
  readonly appMs: number;
  readonly operatorMs: number;
  /** The operator's attach steps: CDI's import, then KubeVirt's swap until the VMI reports the volume Ready. */
  readonly importMs: number;
  readonly readyMs: number;
}

async function edit(session: GlusterSession, round: number): Promise<EditRun> {
  const before = await session.vmContext();
  const t0 = Date.now();
  await session.kubectl(['patch', '-n', NS, 'configmap', 'gluster-volume', '--type=merge', '-p', JSON.stringify({ data: { 'client.vol': `volume gv0-bench-${round}-${t0}\n` } })]);
  const after = await until('the edit delivered', async () => {
    const v = await session.vmContext();
    return isReady(v) && digestOf(v, 'gluster-service') !== digestOf(before, 'gluster-service') ? v : undefined;
  }, 600_000);
  const digest = digestOf(after, 'gluster-service')!;
  const seen = await until('the client re-reading', async () => {
    const lines = await consoleSince(session, t0);
    const medium = lines.find((l) => l.line.includes('"msg":"layer image arrived"') && l.line.includes(digest));
    const app = medium && lines.find((l) => l.at >= medium.at && /^APP \d+ reload done/.test(l.line));
    return medium && app ? { medium: medium.at, app: app.at } : undefined;
  }, 300_000);
  const steps = after.status?.lastRecontext?.attachStepsMs ?? {};
  return { mediumMs: seen.medium - t0, appMs: seen.app - t0, operatorMs: after.status?.lastRecontext?.totalMs ?? Number.NaN, importMs: steps['import'] ?? Number.NaN, readyMs: steps['ready'] ?? Number.NaN };
}

interface MigrationRun {
  readonly side: string;
  readonly to: string;
  /** From the VMIM's creation (host ms). */
  readonly placedMs: number;
  readonly namedMs: number;
  readonly endMs: number;
  readonly dataVolumesMs: number;
  readonly importedMs: number;
  /** From the migration's end. */
  readonly inSpecAfterEndMs: number;
  readonly readyAfterEndMs: number;
  readonly appAfterEndMs: number;
  /** Hooks that ran between the end and the read of the new address (the two-step swap's empty drive). */
  readonly interimHooks: number;
}

async function migrate(session: GlusterSession, seen: Seen[], side: string, round: number): Promise<MigrationRun> {
  const before = await session.vmContext();
  const from = await session.zoneOf(before.status!.node!);
  const to = otherZone(from);
  const t0 = Date.now();
  const mark = seen.length;
  const name = `bench-${side === 'target pod' ? 'pod' : 'vmi'}-${round}`;
  await session.kubectl(['create', '-n', NS, '-f', '-'], JSON.stringify({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstanceMigration', metadata: { name }, spec: { vmiName: VM, addedNodeSelector: { 'topology.kubernetes.io/zone': to } } }));
  const uid = (await session.kubectl(['get', 'vmim', name, '-n', NS, '-o', 'jsonpath={.metadata.uid}'])).trim();
  const after = await until('re-rendered for the new node', async () => {
    const v = await session.vmContext();
    return isReady(v) && v.status?.lastMigrationId === uid ? v : undefined;
  }, 900_000);
  const pattern = new RegExp(`^APP \\d+ reload /etc/glusterfs/cache\\.conf .*${cacheHostPattern(to)}`);
  const lines = await until('the client reading the new address', async () => {
    const all = await consoleSince(session, t0);
    return all.some((l) => pattern.test(l.line)) ? all : undefined;
  }, 300_000);

  const events = seen.slice(mark);
  const first = (test: (s: Seen) => boolean): number => events.find(test)?.at ?? Number.NaN;
  const state = (s: Seen) => s.object.status?.migrationState;
  const placed = first((s) => s.kind === 'pod' && s.object.metadata.labels?.[MIGRATION_JOB_LABEL] === uid && Boolean(s.object.spec?.nodeName));
  const named = first((s) => s.kind === 'vmi' && state(s)?.migrationUid === uid && Boolean(state(s)?.targetNode));
  const end = first((s) => s.kind === 'vmi' && state(s)?.migrationUid === uid && state(s)?.completed === true);
  const created = events.filter((s) => s.kind === 'dv' && s.event === 'add');
  const imported = created.map((c) => first((s) => s.kind === 'dv' && s.object.metadata.name === c.object.metadata.name && s.object.status?.phase === 'Succeeded'));
  const app = lines.find((l) => pattern.test(l.line))!.at;
  const since = after.status?.lastRecontext?.sinceMigrationMs;
  return {
    side,
    to,
    placedMs: placed - t0,
    namedMs: named - t0,
    endMs: end - t0,
    // No DataVolume made for the target (its images were there already): no import to time.
    dataVolumesMs: created.length > 0 ? Math.min(...created.map((c) => c.at)) - t0 : Number.NaN,
    importedMs: created.length > 0 ? Math.max(...imported) - t0 : Number.NaN,
    inSpecAfterEndMs: since?.volumeInSpec ?? Number.NaN,
    readyAfterEndMs: since?.volumeReady ?? Number.NaN,
    appAfterEndMs: app - end,
    interimHooks: lines.filter((l) => l.at > end && l.at < app && l.line.includes('"msg":"hook ran"')).length,
  };
}

const median = (values: readonly number[]): number => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
/** Milliseconds as seconds with one decimal, '–' when not measured. */
const secs = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(1) : '–');

async function main(): Promise<void> {
  const e2e = await prepareKubeVirtE2e(progress);
  const session = glusterSession(e2e, NS);
  const started = new Date();
  progress(`KubeVirt ${e2e.kubevirtRevision.slice(0, 12)}, CDI ${e2e.cdiRevision.slice(0, 12)}, operator ${e2e.operatorImage.tag}; ${EDITS} edits, ${ROUNDS} migrations per side`);
  await session.installOperator(['operator.kubevirt.watchTargetPods=true']);
  await session.applyStory();
  const abort = new AbortController();
  const { seen, synced } = record(KubeClient.fromKubeconfig(e2e.kubeconfig), abort.signal);
  await synced;
  const first = await until('the first delivery', async () => {
    const v = await session.vmContext();
    return isReady(v) && v.status?.node ? v : undefined;
  }, 900_000);
  progress(`first delivery on ${first.status?.node} in ${secs(first.status?.lastRecontext?.totalMs ?? Number.NaN)} s`);

  const edits: EditRun[] = [];
  for (let round = 1; round <= EDITS; round++) {
    edits.push(await edit(session, round));
    progress(`edit ${round}/${EDITS}: medium ${secs(edits.at(-1)!.mediumMs)} s, client ${secs(edits.at(-1)!.appMs)} s (load ${loadAverage()})`);
    await sleep(SETTLE_MS);
  }

  const migrations: MigrationRun[] = [];
  for (const side of ['target pod', 'VMI'] as const) {
    if (side === 'VMI') {
      const upgraded = Date.now();
      await session.installOperator(['operator.kubevirt.watchTargetPods=false']);
      // The new replicas lead once the old leader's lease has run out.
      await until('a new leader', async () => {
        const stamp = (await session.kubectl(['get', 'pods', '-n', SYSTEM, '-l', 'recontext.dev/leader=true', '-o', 'jsonpath={.items[*].metadata.creationTimestamp}'])).trim();
        return stamp && Date.parse(stamp) >= upgraded - 1000 ? true : undefined;
      }, 180_000);
    }
    for (let round = 1; round <= ROUNDS; round++) {
      const run = await migrate(session, seen, side, round);
      migrations.push(run);
      progress(`${side} migration ${round}/${ROUNDS} to ${run.to}: end ${secs(run.endMs)} s, imported ${secs(run.importedMs)} s, client ${secs(run.appAfterEndMs)} s after the end (load ${loadAverage()})`);
      await sleep(SETTLE_MS);
    }
  }
  abort.abort();

  const lines: string[] = [];
  lines.push(`bench:kubevirt — ${started.toISOString()}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB, load at the end ${loadAverage()}`);
  lines.push(`KubeVirt ${e2e.kubevirtRevision.slice(0, 12)} and CDI ${e2e.cdiRevision.slice(0, 12)} on the local kind cluster (1 control plane + 2 workers on this machine), guest under TCG, DataVolumes ReadWriteMany (local-path on a shared directory)`);
  lines.push('', `Layer edit (s from the ConfigMap patch), ${edits.length} runs:`, '', '| run | new medium in the guest | client re-read | operator (lastRecontext.totalMs) | of which CDI import | of which KubeVirt swap (until Ready) |', '| --- | --- | --- | --- | --- | --- |');
  edits.forEach((e, i) => lines.push(`| ${i + 1} | ${secs(e.mediumMs)} | ${secs(e.appMs)} | ${secs(e.operatorMs)} | ${secs(e.importMs)} | ${secs(e.readyMs)} |`));
  const editMedian = (f: (e: EditRun) => number) => secs(median(edits.map(f)));
  lines.push(`| median | ${editMedian((e) => e.mediumMs)} | ${editMedian((e) => e.appMs)} | ${editMedian((e) => e.operatorMs)} | ${editMedian((e) => e.importMs)} | ${editMedian((e) => e.readyMs)} |`);
  lines.push('', 'Migration (s from the VMIM\'s creation; then from the migration\'s end):', '', '| target from | run | to | pod placed | target named | ended | DataVolumes created | imported | in VM spec after end | Ready after end | client reads after end | interim hooks |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const side of ['target pod', 'VMI']) {
    const runs = migrations.filter((m) => m.side === side);
    runs.forEach((m, i) => lines.push(`| ${side} | ${i + 1} | ${m.to} | ${secs(m.placedMs)} | ${secs(m.namedMs)} | ${secs(m.endMs)} | ${secs(m.dataVolumesMs)} | ${secs(m.importedMs)} | ${secs(m.inSpecAfterEndMs)} | ${secs(m.readyAfterEndMs)} | ${secs(m.appAfterEndMs)} | ${m.interimHooks} |`));
    const med = (f: (m: MigrationRun) => number) => secs(median(runs.map(f)));
    lines.push(`| ${side} | median | | ${med((m) => m.placedMs)} | ${med((m) => m.namedMs)} | ${med((m) => m.endMs)} | ${med((m) => m.dataVolumesMs)} | ${med((m) => m.importedMs)} | ${med((m) => m.inSpecAfterEndMs)} | ${med((m) => m.readyAfterEndMs)} | ${med((m) => m.appAfterEndMs)} | |`);
  }
  lines.push('');
  for (const side of ['target pod', 'VMI']) {
    const runs = migrations.filter((m) => m.side === side);
    const app = median(runs.map((m) => m.appAfterEndMs));
    const imported = runs.filter((m) => Number.isFinite(m.importedMs));
    const early = imported.filter((m) => m.importedMs <= m.endMs).length;
    lines.push(`target from ${side}: migration end → client reads the new address, median ${secs(app)} s (goal ≤ ${secs(GOAL_MS)} s: ${app <= GOAL_MS ? 'met' : 'missed'}); images imported before the migration ended in ${early} of ${imported.length} runs that imported (${runs.length - imported.length} found them there)`);
  }
  console.log(lines.join('\n'));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
