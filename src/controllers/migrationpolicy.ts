// The MigrationPolicy controller: for every VM a policy selects, sample its metric when due, let
// the policy engine (src/reconcile/policy, pure) decide, act through the driver (a live migration
// toward an array's nodes), and record the decision. Sampling is driven by the work queue: each
// reconciliation returns when the next VM is due, so an idle policy costs no CPU in between.
import type { Decision, MigrationPolicy, VMContext } from '../crds/index.js';
import { MigrationImpossibleError, targetOf, type Driver, type VMTarget } from '../drivers/driver.js';
import { MIGRATION_POLICIES } from '../kube/resources.js';
import { MetricError, type MetricSource } from '../metric-sources/index.js';
import { setConditions, type Condition, type ConditionInput } from '../reconcile/conditions.js';
import { selectorMatches } from '../reconcile/labels.js';
import { arrayOf, decide, EMPTY_MEMORY, monitoring, nextSampleAt, remember, samplesNeeded, type Outcome, type PolicyMemory, type Sample } from '../reconcile/policy/index.js';
import type { Reconciler, Result } from '../runtime/controller.js';
import { errorMessage, type Logger } from '../runtime/log.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import type { Cache, EventSink, ObjectWriter } from './ports.js';
import { realClock, type Clock } from '../runtime/clock.js';

export const MAX_DECISIONS = 50;
/**
 * The policy controller's reconcile deadline: a libvirt migration runs inside the reconciliation
 * and is aborted with it, and the libvirt client gives one up to 300 s of its own. (The other
 * controllers keep the default minute.)
 */
export const POLICY_RECONCILE_TIMEOUT_MS = 360_000;

export interface MigrationPolicyDeps {
  readonly policies: Cache<MigrationPolicy>;
  readonly vmContexts: Cache<VMContext>;
  readonly writer: ObjectWriter;
  readonly events: EventSink;
  readonly driver: Driver;
  readonly source: MetricSource;
  readonly metrics: OperatorMetrics;
  readonly logger: Logger;
  readonly clock?: Clock;
}

/** What the controller keeps per (policy, VM) between samples. */
interface VMState {
  samples: Sample[];
  grades: Sample[];
  memory: PolicyMemory;
  nextAt: number;
  /** A migration the platform took on (KubeVirt): followed until it ends. */
  pending?: { readonly id: string; readonly time: string };
  generation?: number;
  /** What went wrong at the last sample (kept until the next one: other events reconcile in between). */
  problem?: { readonly reason: 'MetricUnavailable' | 'MigrationImpossible'; readonly message: string };
}

export function migrationPolicyReconciler(deps: MigrationPolicyDeps): Reconciler {
  const clock = deps.clock ?? realClock;
  const now = (): number => clock.now();
  const states = new Map<string, Map<string, VMState>>();

  return async (key, signal): Promise<Result | void> => {
    const policy = deps.policies.get(key);
    if (!policy || policy.metadata.deletionTimestamp) {
      states.delete(key);
      return;
    }
    const spec = policy.spec;
    const namespace = policy.metadata.namespace ?? 'default';
    const vms = deps.vmContexts.list().filter((v) => v.metadata.namespace === namespace && !v.metadata.deletionTimestamp && selectorMatches(spec.vmSelector ?? {}, v.metadata.labels));
    const perVM = states.get(key) ?? new Map<string, VMState>();
    states.set(key, perVM);
    for (const name of perVM.keys()) if (!vms.some((v) => v.metadata.name === name)) perVM.delete(name);

    let decisions = [...(policy.status?.decisions ?? [])];
    let wake = Number.POSITIVE_INFINITY;
    const t = now();

    for (const vm of vms) {
      const name = vm.metadata.name;
      let state = perVM.get(name);
      if (!state || state.generation !== policy.metadata.generation) {
        // New, or the policy changed: start counting afresh, but keep the guard rails' memory
        // (rebuilt from recorded decisions after a restart, so cooldown survives it).
        state = { samples: [], grades: [], memory: state?.memory ?? memoryFromDecisions(decisions, name), nextAt: t, ...(state?.pending ? { pending: state.pending } : {}) };
        if (policy.metadata.generation !== undefined) state.generation = policy.metadata.generation;
        perVM.set(name, state);
      }
      const target = targetOf(vm);
      if (state.pending && deps.driver.migrationStatus) decisions = await follow(deps, policy, vm, target, state, decisions);
      if (t < state.nextAt) {
        wake = Math.min(wake, state.nextAt);
        continue;
      }
      state.nextAt = nextSampleAt(spec, t);
      delete state.problem;
      try {
        if (monitoring(spec, t)) await sample(deps, policy, vm, state, signal);
        const observed = await deps.driver.observe(target, signal);
        if (!observed?.running) continue;
        const currentArray = arrayOf(spec, observed.nodeLabels ?? {});
        // Decided now, after sampling: the newest sample must not lie in the engine's future.
        const decidedAt = now();
        const outcome = decide({ spec, now: decidedAt, samples: state.samples, grades: state.grades, currentArray, memory: state.memory });
        deps.metrics.policyDecisions.inc({ policy_type: spec.type, action: outcome.action });
        deps.logger.debug('policy decision', { policy: key, vm: name, array: currentArray, action: outcome.action, reason: outcome.reason });
        if (outcome.action === 'sleep') state.nextAt = outcome.until;
        // A migration is remembered once the driver took it (act); other outcomes may carry state too (Site's job).
        if (outcome.action !== 'migrate') state.memory = remember(state.memory, outcome, decidedAt);
        const decision = await act(deps, policy, vm, target, outcome, currentArray, state, decidedAt, signal);
        if (decision) {
          if (decision.result === 'Skipped' && decision.reason.startsWith('impossible:')) state.problem = { reason: 'MigrationImpossible', message: `${name}: ${decision.reason.slice('impossible: '.length)}` };
          decisions = recordDecision(decisions, decision);
        }
      } catch (error: unknown) {
        if (!(error instanceof MetricError)) throw error;
        state.problem = { reason: 'MetricUnavailable', message: `${name}: ${error.message}` };
      } finally {
        wake = Math.min(wake, state.nextAt);
      }
    }

    const problems = vms.flatMap((v) => perVM.get(v.metadata.name)?.problem ?? []);
    await deps.writer.applyStatus(MIGRATION_POLICIES, policy, policyStatus(policy, vms.length, decisions, problems, new Date(now())));
    if (Number.isFinite(wake)) return { requeueAfterMs: Math.max(100, wake - now()) };
  };
}

async function sample(deps: MigrationPolicyDeps, policy: MigrationPolicy, vm: VMContext, state: VMState, signal: AbortSignal): Promise<void> {
  const spec = policy.spec;
  const identity = { name: vm.spec.target.kubevirt?.name ?? vm.spec.target.libvirt?.domain ?? vm.metadata.name, namespace: vm.metadata.namespace ?? 'default' };
  const keep = samplesNeeded(spec);
  if (spec.metric) {
    const reading = await deps.source.read(spec.metric, identity, signal);
    state.samples = [...state.samples, { at: reading.at, value: reading.value }].slice(-keep);
  }
  if (spec.site) {
    const reading = await deps.source.read(spec.site.grade, identity, signal);
    state.grades = [...state.grades, { at: reading.at, value: reading.value }].slice(-keep);
  }
}

/** Carries out an outcome; the decision to record, or undefined for a plain "stay". */
async function act(deps: MigrationPolicyDeps, policy: MigrationPolicy, vm: VMContext, target: VMTarget, outcome: Outcome, from: string | undefined, state: VMState, t: number, signal: AbortSignal): Promise<Decision | undefined> {
  const name = vm.metadata.name;
  const time = new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');
  const value = state.samples.at(-1)?.value ?? state.grades.at(-1)?.value;
  const base = { time, vm: name, ...(value !== undefined ? { value } : {}), ...(from ? { from } : {}) };
  switch (outcome.action) {
    case 'stay':
      return undefined;
    case 'hold':
      return { ...base, to: outcome.wanted, reason: outcome.reason, result: 'Skipped' };
    case 'sleep':
      return { ...base, reason: outcome.reason, result: 'Sleeping' };
    case 'migrate': {
      const array = policy.spec.arrays.find((a) => a.name === outcome.to);
      if (!array) return { ...base, to: outcome.to, reason: `${outcome.reason} (no array ${outcome.to})`, result: 'Skipped' };
      if (policy.spec.dryRun) {
        state.memory = remember(state.memory, outcome, t);
        deps.metrics.policyMigrations.inc({ result: 'dry_run' });
        return { ...base, to: outcome.to, reason: outcome.reason, result: 'DryRun' };
      }
      if (!deps.driver.migrate) return { ...base, to: outcome.to, reason: `impossible: the ${deps.driver.name} driver cannot migrate VMs`, result: 'Skipped' };
      try {
        const result = await deps.driver.migrate(target, { nodeSelector: array.nodeSelector, requester: `${policy.metadata.namespace}/${policy.metadata.name}` }, signal);
        // Asked for (even if it failed): cooldown and the hourly limit count it. An impossible
        // request is not counted: the condition says why, and the next sample asks again.
        state.memory = remember(state.memory, outcome, t);
        deps.metrics.policyMigrations.inc({ result: result.state.toLowerCase() });
        if (result.state === 'Requested') state.pending = { id: result.id, time };
        const note = `${outcome.reason} (${result.id}${result.message ? `: ${result.message}` : ''})`;
        deps.events.record(vm, result.state === 'Failed' ? 'Warning' : 'Normal', result.state === 'Failed' ? 'MigrationFailed' : 'MigrationRequested', `policy ${policy.metadata.name}: ${note}`);
        deps.logger.info('policy migration', { policy: policy.metadata.name, vm: name, from, to: outcome.to, result: result.state, id: result.id });
        return { ...base, to: outcome.to, reason: note.slice(0, 1024), result: result.state };
      } catch (error: unknown) {
        if (!(error instanceof MigrationImpossibleError)) throw error;
        deps.metrics.policyMigrations.inc({ result: 'impossible' });
        deps.events.record(vm, 'Warning', 'MigrationImpossible', `policy ${policy.metadata.name}: ${error.message}`);
        return { ...base, to: outcome.to, reason: `impossible: ${error.message}`.slice(0, 1024), result: 'Skipped' };
      }
    }
  }
}

/** A migration the platform took on: when it has ended, its decision gets the result. */
async function follow(deps: MigrationPolicyDeps, policy: MigrationPolicy, vm: VMContext, target: VMTarget, state: VMState, decisions: Decision[]): Promise<Decision[]> {
  const pending = state.pending!;
  let result;
  try {
    result = await deps.driver.migrationStatus!(target, pending.id);
  } catch (error: unknown) {
    deps.logger.warn('could not follow a migration', { policy: policy.metadata.name, vm: vm.metadata.name, id: pending.id, error: errorMessage(error) });
    return decisions;
  }
  if (result?.state === 'Requested') return decisions;
  delete state.pending;
  const outcome = result?.state ?? 'Failed';
  deps.metrics.policyMigrations.inc({ result: outcome.toLowerCase() });
  deps.events.record(vm, outcome === 'Succeeded' ? 'Normal' : 'Warning', outcome === 'Succeeded' ? 'MigrationSucceeded' : 'MigrationFailed', `policy ${policy.metadata.name}: ${pending.id} ${outcome}${result?.node ? ` on ${result.node}` : ''}${result?.message ? `: ${result.message}` : ''}`);
  return decisions.map((d) => (d.vm === vm.metadata.name && d.time === pending.time && d.result === 'Requested' ? { ...d, result: outcome } : d));
}

/** Newest first, at most MAX_DECISIONS; a repeat of the VM's previous decision is not recorded again. */
export function recordDecision(decisions: readonly Decision[], decision: Decision): Decision[] {
  const previous = decisions.find((d) => d.vm === decision.vm);
  if (previous && previous.result === decision.result && previous.to === decision.to && previous.from === decision.from && decision.result !== 'Requested' && decision.result !== 'Succeeded' && decision.result !== 'DryRun') {
    return [...decisions];
  }
  return [decision, ...decisions].slice(0, MAX_DECISIONS);
}

/** Migrations this policy asked for, from its recorded decisions: cooldown survives a restart. */
export function memoryFromDecisions(decisions: readonly Decision[], vm: string): PolicyMemory {
  const migrations = decisions
    .filter((d) => d.vm === vm && ['Requested', 'Succeeded', 'Failed', 'DryRun'].includes(d.result))
    .map((d) => Date.parse(d.time))
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  return { ...EMPTY_MEMORY, migrations };
}

export function policyStatus(policy: MigrationPolicy, matched: number, decisions: readonly Decision[], problems: readonly { reason: string; message: string }[], now: Date): object {
  const generation = policy.metadata.generation;
  const first = problems[0];
  const ready: ConditionInput = first
    ? { type: 'Ready', status: 'False', reason: first.reason, message: problems.map((p) => p.message).join('; ').slice(0, 4096) }
    : { type: 'Ready', status: 'True', reason: policy.spec.dryRun ? 'DryRun' : 'Active', message: `${matched} VMs sampled every ${policy.spec.sampleInterval ?? '30s'}${policy.spec.dryRun ? '; decisions are recorded, no VM is moved' : ''}` };
  const newest = decisions[0];
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    matchedVMs: matched,
    ...(newest ? { lastDecision: `${newest.vm}: ${newest.result}${newest.to ? ` → ${newest.to}` : ''}`.slice(0, 256) } : {}),
    ...(decisions.length > 0 ? { decisions } : {}),
    conditions: setConditions(policy.status?.conditions as Condition[] | undefined, [ready], now, generation),
  };
}
