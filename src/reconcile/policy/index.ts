// MigrationPolicy engine: the four VM-initiated migration policies of Lartey's thesis
// (shared/seeds/002, ch. 3.4) as pure, deterministic functions. No I/O, no clock, no timers: the
// caller (the MigrationPolicy controller, `recontext policy simulate`) passes `now`, the samples and
// the memory it kept from the last call, acts on the Outcome and stores remember(…)'s result.
//
// Terms of the thesis and their fields here (docs/policies.md has the long form):
//   V (the performance indicator)   the metric's samples; a higher value is worse performance
//   X, high_threshold                spec.high       (≥ counts as "too slow")
//   Y, low_threshold                 spec.low        (≤ counts as "over-provisioned")
//   t, high_t, low_t                 spec.highFor, spec.lowFor, counted in samples
//   the array of hosts               spec.arrays (in order); an array is a cluster with shared storage
//   base                             spec.base: the cheap array, "outside the array" of policy 2
//   sleep (after a request)          spec.cooldown, plus spec.maxMigrationsPerHour
//   home / big job grade a           spec.site.home, spec.site.bigJobGrade, spec.site.fast
//
// Choices where the thesis is loose, each explained where it is made:
//   - Listings 3.1–3.3 migrate when `counter > t`, i.e. after t+1 samples; the CRD documents
//     highFor as "consecutive samples at or above high before the VM moves", so the VM moves after
//     exactly highFor samples (lowFor likewise).
//   - Listing 3.2 names the thresholds X = high, Y = low while the prose of 3.4.3 swaps them; we
//     follow the listing and the CRD: high is the upper threshold, low the lower one.
//   - Samples taken at or before the last migration this policy requested are not counted: they
//     measured the previous array (the listings reset nothing, but sleep long enough for the counter
//     to refill on the new host). A Schedule's counts also restart at each working period's start.
//   - A run of consecutive samples breaks where two samples are more than 2 × sampleInterval apart,
//     and is empty when the newest sample is more than 2 × sampleInterval older than `now`.
//   - A value that is not a finite number (a failed scrape reported as NaN) breaks every run.
import type { MigrationPolicySpec } from '../../crds/migrationpolicy.js';
import { formatDuration, parseDuration } from './duration.js';
import { formatLocal, nextWindowStart, workingPeriod, type Schedule } from './schedule.js';

export { formatDuration, parseDuration } from './duration.js';
export { nextWindowStart, workingPeriod, type Interval } from './schedule.js';

export interface Sample {
  readonly at: number;
  readonly value: number;
}

export type SiteJob = 'none' | 'running';

export interface PolicyMemory {
  /** Epoch ms of the migrations this policy requested, oldest first (cooldown, maxMigrationsPerHour). */
  readonly migrations: readonly number[];
  /** Site: whether a big-job queue is being served at the fast array, and since when. */
  readonly site?: { readonly job: SiteJob; readonly since?: number };
}

export const EMPTY_MEMORY: PolicyMemory = Object.freeze({ migrations: Object.freeze([]) as readonly number[] });

export interface DecideInput {
  readonly spec: MigrationPolicySpec;
  readonly now: number;
  readonly samples: readonly Sample[];
  readonly grades?: readonly Sample[];
  readonly currentArray: string | undefined;
  readonly memory: PolicyMemory;
}

/**
 * What the VM should do now. `job` (Site only, optional, additive to the agreed API) is the
 * Site job state after this outcome; remember() stores it, callers need not look at it.
 */
export type Outcome =
  | { readonly action: 'stay'; readonly reason: string; readonly job?: SiteJob }
  | { readonly action: 'migrate'; readonly to: string; readonly reason: string; readonly job?: SiteJob }
  | { readonly action: 'hold'; readonly wanted: string; readonly reason: string }
  | { readonly action: 'sleep'; readonly until: number; readonly reason: string };

const HOUR = 3_600_000;
/** Site: consecutive big-grade samples before moving to fast when highFor is unset (a big queue is known when it is received). */
export const SITE_DEFAULT_ENTER_SAMPLES = 1;
/** Site: consecutive samples below bigJobGrade before the queue counts as done when lowFor is unset. */
export const SITE_DEFAULT_DONE_SAMPLES = 3;

// ---------------------------------------------------------------------------------------------
// Small helpers

const num = (v: number): string => (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4))));
const iso = (t: number): string => new Date(t).toISOString().replace('.000Z', 'Z');
const where = (array: string | undefined): string => array ?? 'no array';
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
/** "3 of 5 samples": how far a run has got towards the count it needs. */
const of = (count: number, need: number): string => `${count} of ${need} sample${need === 1 ? '' : 's'}`;

/** The policy's sampleInterval in milliseconds (the schema's default when unset). */
export function sampleIntervalMs(spec: MigrationPolicySpec): number {
  return parseDuration(spec.sampleInterval ?? '30s');
}

function lastMigration(memory: PolicyMemory): number | undefined {
  return memory.migrations.length > 0 ? Math.max(...memory.migrations) : undefined;
}

interface Run {
  /** Consecutive samples, newest backwards, that satisfy the predicate. */
  readonly count: number;
  /** The newest usable sample, if any. */
  readonly latest: Sample | undefined;
  /** Why there is no run at all (stale samples), if that is the case. */
  readonly stale?: string;
}

/**
 * Samples usable now: taken after `after`, not in the future, oldest first. (Callers pass them
 * oldest first; sorting a copy keeps decide() total on any input.)
 */
function usable(samples: readonly Sample[], now: number, after: number): Sample[] {
  return samples.filter((s) => s.at > after && s.at <= now).sort((a, b) => a.at - b.at);
}

/** The run of samples satisfying `predicate`, newest backwards, counted up to `limit` (reasons say "5 of 5", not "7 of 5"). */
function runOf(samples: readonly Sample[], now: number, interval: number, predicate: (v: number) => boolean, limit: number): Run {
  const latest = samples[samples.length - 1];
  if (!latest) return { count: 0, latest };
  const maxGap = 2 * interval;
  if (now - latest.at > maxGap) {
    return { count: 0, latest, stale: `the newest sample is ${formatDuration(now - latest.at)} old (more than 2 × sampleInterval ${formatDuration(interval)})` };
  }
  let count = 0;
  for (let i = samples.length - 1; i >= 0 && count < limit; i--) {
    const s = samples[i]!;
    if (!Number.isFinite(s.value) || !predicate(s.value)) break;
    if (i < samples.length - 1 && samples[i + 1]!.at - s.at > maxGap) break;
    count++;
  }
  return { count, latest };
}

/** Why there is nothing to count: no samples at all, or none since the last migration. */
function noSamples(input: DecideInput, need: number): string {
  const last = lastMigration(input.memory);
  const since = last !== undefined && input.samples.some((s) => s.at <= last) ? ` since the migration at ${iso(last)}` : '';
  return `no samples${since || ' yet'} (0 of ${need})`;
}

/** The next array after `from` in `names` (wrapping), never `from` itself; the first when `from` is not among them. */
function nextAfter(names: readonly string[], from: string | undefined): string | undefined {
  const i = from === undefined ? -1 : names.indexOf(from);
  if (i < 0) return names[0];
  for (let step = 1; step < names.length; step++) {
    const candidate = names[(i + step) % names.length]!;
    if (candidate !== from) return candidate;
  }
  return undefined;
}

/** A wanted migration through the guard rails: cooldown, then maxMigrationsPerHour. */
function guarded(spec: MigrationPolicySpec, memory: PolicyMemory, now: number, to: string, reason: string, job?: SiteJob): Outcome {
  const cooldown = parseDuration(spec.cooldown ?? '10m');
  const last = lastMigration(memory);
  if (last !== undefined && now - last < cooldown) {
    return {
      action: 'hold',
      wanted: to,
      reason: `${reason}; held: cooldown ${formatDuration(cooldown)} after the migration ${formatDuration(now - last)} ago (until ${iso(last + cooldown)})`,
    };
  }
  const max = spec.maxMigrationsPerHour ?? 4;
  const lastHour = memory.migrations.filter((t) => t > now - HOUR && t <= now).sort((a, b) => a - b);
  if (lastHour.length >= max) {
    const freeAt = lastHour[lastHour.length - max]! + HOUR;
    return {
      action: 'hold',
      wanted: to,
      reason: `${reason}; held: ${plural(lastHour.length, 'migration')} in the last hour, maxMigrationsPerHour is ${max} (next allowed at ${iso(freeAt)})`,
    };
  }
  return job === undefined ? { action: 'migrate', to, reason } : { action: 'migrate', to, reason, job };
}

// ---------------------------------------------------------------------------------------------
// Policy 1: threshold-aware (thesis 3.4.2, listing 3.1)

function threshold(input: DecideInput): Outcome {
  const { spec, now, currentArray, memory } = input;
  const high = spec.high ?? Number.POSITIVE_INFINITY;
  const need = spec.highFor ?? 1;
  const samples = usable(input.samples, now, lastMigration(memory) ?? Number.NEGATIVE_INFINITY);
  const run = runOf(samples, now, sampleIntervalMs(spec), (v) => v >= high, need);
  const here = where(currentArray);
  if (!run.latest) return { action: 'stay', reason: `${noSamples(input, need)}: stay in ${here}` };
  if (run.stale) return { action: 'stay', reason: `${run.stale}: stay in ${here}` };
  const v = run.latest.value;
  if (run.count === 0) return { action: 'stay', reason: `value ${num(v)} < high ${num(high)}: stay in ${here}` };
  const measured = `value ${num(v)} >= high ${num(high)} for ${of(run.count, need)}`;
  if (run.count < need) return { action: 'stay', reason: `${measured}: stay in ${here}` };
  // "the virtual machine is requesting to be shifted to the next host in this array" (3.4).
  const to = nextAfter(
    spec.arrays.map((a) => a.name),
    currentArray,
  );
  if (to === undefined) return { action: 'stay', reason: `${measured}, but ${here} is the only array: stay` };
  return guarded(spec, memory, now, to, `${measured}: move from ${here} to ${to}`);
}

// ---------------------------------------------------------------------------------------------
// Policy 2: base-aware (thesis 3.4.3, listing 3.2); also policy 3 inside its working windows

function baseAware(input: DecideInput, countFrom: number, context: string): Outcome {
  const { spec, now, currentArray, memory } = input;
  const high = spec.high ?? Number.POSITIVE_INFINITY;
  const low = spec.low ?? Number.NEGATIVE_INFINITY;
  const highFor = spec.highFor ?? 1;
  const lowFor = spec.lowFor ?? 1;
  const base = spec.base ?? spec.arrays[0]!.name;
  const interval = sampleIntervalMs(spec);
  const samples = usable(input.samples, now, Math.max(lastMigration(memory) ?? Number.NEGATIVE_INFINITY, countFrom));
  const highRun = runOf(samples, now, interval, (v) => v >= high, highFor);
  const lowRun = runOf(samples, now, interval, (v) => v <= low, lowFor);
  const here = where(currentArray);
  const need = Math.max(highFor, lowFor);
  if (!highRun.latest) return { action: 'stay', reason: `${context}${noSamples(input, need)}: stay in ${here}` };
  if (highRun.stale) return { action: 'stay', reason: `${context}${highRun.stale}: stay in ${here}` };
  const v = highRun.latest.value;

  if (lowRun.count > 0) {
    const measured = `${context}value ${num(v)} <= low ${num(low)} for ${of(lowRun.count, lowFor)}`;
    if (lowRun.count < lowFor) return { action: 'stay', reason: `${measured}: stay in ${here}` };
    if (currentArray === base) return { action: 'stay', reason: `${measured}: already at ${base} (base)` };
    // "the virtual machine requests a move to base if it is not already located at the base".
    return guarded(spec, memory, now, base, `${measured}: move from ${here} to ${base} (base)`);
  }
  if (highRun.count > 0) {
    const measured = `${context}value ${num(v)} >= high ${num(high)} for ${of(highRun.count, highFor)}`;
    if (highRun.count < highFor) return { action: 'stay', reason: `${measured}: stay in ${here}` };
    // Above high: "a migration to a different location other than the base". From base (or from
    // no array) that is `preferred`, else the first array that is not base. From an array that is
    // not base, the request is policy 1's "next host in this array", where base is "outside the
    // array": the next non-base array in order, wrapping. Preferred is not special there — it is
    // the way out of base, and going back to it from elsewhere would make a two-array ping-pong.
    const others = spec.arrays.map((a) => a.name).filter((n) => n !== base);
    const to =
      currentArray === undefined || currentArray === base || !others.includes(currentArray) ? (spec.preferred ?? others[0]) : nextAfter(others, currentArray);
    if (to === undefined || to === currentArray) return { action: 'stay', reason: `${measured}, but ${here} is the only array other than base: stay` };
    return guarded(spec, memory, now, to, `${measured}: move from ${here} to ${to}`);
  }
  return { action: 'stay', reason: `${context}value ${num(v)} between low ${num(low)} and high ${num(high)}: stay in ${here}` };
}

// ---------------------------------------------------------------------------------------------
// Policy 3: schedule-aware (thesis 3.4.4, listing 3.3)

function scheduleAware(input: DecideInput): Outcome {
  const { spec, now, currentArray } = input;
  const schedule = spec.schedule as Schedule | undefined;
  if (!schedule) return baseAware(input, Number.NEGATIVE_INFINITY, '');
  const base = spec.base ?? spec.arrays[0]!.name;
  const period = workingPeriod(schedule, now);
  if (period) {
    // "This policy behaves the same way as the base-aware policy during its working hours";
    // counts start afresh with each working period.
    return baseAware(input, period.start - 1, '');
  }
  const until = nextWindowStart(schedule, now);
  const next = Number.isFinite(until) ? `${formatLocal(until, schedule.timeZone)} ${schedule.timeZone}` : 'never';
  if (currentArray !== base) {
    // "When the working hours are over, the virtual machine makes a request to be migrated to base".
    // A scheduled state, not a reaction to the metric: it cannot flap (one per period end), and the
    // caller does not sample again before the next window (nextSampleAt), so a hold here would
    // leave the VM off base all night. It therefore bypasses cooldown and maxMigrationsPerHour.
    return { action: 'migrate', to: base, reason: `outside working hours (next window ${next}): move from ${where(currentArray)} to ${base} (base)` };
  }
  // "… and stays there without any monitoring until the start of another working period".
  return { action: 'sleep', until, reason: `outside working hours: at ${base} (base), no sampling until ${next}` };
}

// ---------------------------------------------------------------------------------------------
// Policy 4: site-aware (thesis 3.4.5, listing 3.4)
//
// The grade is the job-queue grade (listing 3.4's "grade a" is a big job: grade >= bigJobGrade).
// Listing 3.4 has its two migrations swapped against the prose ("if grade not a … if not in home:
// migrate away from home"); we follow the prose: a big queue while at home → move to the fast
// array ("job running"); the queue is completed there; once the queue is done → come home.
//   - Big queue: grade >= bigJobGrade for highFor consecutive samples (default 1: the grade of a
//     queue is known when it is received).
//   - Queue done: grade < bigJobGrade for lowFor consecutive samples (default 3), counted only from
//     samples taken after the move to fast. A grade that dips below bigJobGrade mid-queue and comes
//     back breaks that run, so the VM does not bounce home and back.
//   - While a job runs the VM belongs at fast: if it is elsewhere (the move failed, someone moved
//     it) the policy asks for fast again.
//   - With no job, a VM that is not at home (it started elsewhere) goes home once the grade has
//     been below bigJobGrade for lowFor samples.

function siteAware(input: DecideInput): Outcome {
  const { spec, now, currentArray, memory } = input;
  const site = spec.site;
  if (!site) return { action: 'stay', reason: 'no site section in the policy: stay' };
  const big = site.bigJobGrade;
  const enterFor = spec.highFor ?? SITE_DEFAULT_ENTER_SAMPLES;
  const doneFor = spec.lowFor ?? SITE_DEFAULT_DONE_SAMPLES;
  const interval = sampleIntervalMs(spec);
  const grades = usable(input.grades ?? [], now, lastMigration(memory) ?? Number.NEGATIVE_INFINITY);
  const bigRun = runOf(grades, now, interval, (g) => g >= big, enterFor);
  const doneRun = runOf(grades, now, interval, (g) => g < big, doneFor);
  const here = where(currentArray);
  const job: SiteJob = memory.site?.job ?? 'none';
  const since = memory.site?.since;
  const jobNote = job === 'running' ? `job running${since !== undefined ? ` since ${iso(since)}` : ''}` : 'no job';
  const g = bigRun.latest?.value;

  const toward = (to: string, nextJob: SiteJob, reason: string): Outcome =>
    to === currentArray ? { action: 'stay', reason: `${reason}: already at ${to}`, job: nextJob } : guarded(spec, memory, now, to, `${reason}: move from ${here} to ${to}`, nextJob);

  if (job === 'running') {
    if (doneRun.count >= doneFor) return toward(site.home, 'none', `grade ${num(g!)} < big-job grade ${num(big)} for ${of(doneRun.count, doneFor)}: queue done`);
    const measured =
      g === undefined
        ? `${jobNote}, no grade samples since the move`
        : bigRun.stale
          ? `${jobNote}, ${bigRun.stale}`
          : doneRun.count > 0
            ? `${jobNote}, grade ${num(g)} < big-job grade ${num(big)} for ${of(doneRun.count, doneFor)}`
            : `${jobNote}, grade ${num(g)} >= big-job grade ${num(big)}`;
    if (currentArray === site.fast) return { action: 'stay', reason: `${measured}: stay in ${site.fast}`, job: 'running' };
    return guarded(spec, memory, now, site.fast, `${measured}: the job belongs at ${site.fast}, move from ${here} to ${site.fast}`, 'running');
  }
  if (g === undefined) return { action: 'stay', reason: `no grade samples yet (0 of ${Math.max(enterFor, doneFor)}): stay in ${here}` };
  if (bigRun.stale) return { action: 'stay', reason: `${bigRun.stale}: stay in ${here}` };
  if (bigRun.count >= enterFor) return toward(site.fast, 'running', `grade ${num(g)} >= big-job grade ${num(big)} for ${of(bigRun.count, enterFor)}: big job`);
  if (bigRun.count > 0) return { action: 'stay', reason: `grade ${num(g)} >= big-job grade ${num(big)} for ${of(bigRun.count, enterFor)}: stay in ${here}` };
  if (currentArray === site.home) return { action: 'stay', reason: `grade ${num(g)} < big-job grade ${num(big)}: stay at ${site.home} (home)`, job: 'none' };
  if (doneRun.count >= doneFor) return toward(site.home, 'none', `${jobNote}, grade ${num(g)} < big-job grade ${num(big)} for ${of(doneRun.count, doneFor)}`);
  return { action: 'stay', reason: `${jobNote}, grade ${num(g)} < big-job grade ${num(big)} for ${of(doneRun.count, doneFor)}: stay in ${here}` };
}

// ---------------------------------------------------------------------------------------------
// Public API

/** The decision for one VM at `now`. Pure: the same input gives the same outcome. */
export function decide(input: DecideInput): Outcome {
  // Every policy keeps: `to` / `wanted` is never input.currentArray (property-tested).
  switch (input.spec.type) {
    case 'Threshold':
      return threshold(input);
    case 'Base':
      return baseAware(input, Number.NEGATIVE_INFINITY, '');
    case 'Schedule':
      return scheduleAware(input);
    case 'Site':
      return siteAware(input);
    default:
      return { action: 'stay', reason: `unknown policy type ${JSON.stringify(input.spec.type)}: stay` };
  }
}

/**
 * The array a node belongs to: the first of spec.arrays (in order) whose nodeSelector labels all
 * match the node's labels; undefined when none does. An empty nodeSelector matches every node.
 */
export function arrayOf(spec: MigrationPolicySpec, nodeLabels: Readonly<Record<string, string>>): string | undefined {
  return spec.arrays.find((a) => Object.entries(a.nodeSelector ?? {}).every(([k, v]) => nodeLabels[k] === v))?.name;
}

/**
 * The memory to keep after acting on `outcome` at `now`: a migrate adds `now` to migrations;
 * migrations older than an hour are dropped, except the newest (a cooldown may be longer than an
 * hour); Site outcomes update the job state (`since` is when it last changed).
 */
export function remember(memory: PolicyMemory, outcome: Outcome, now: number): PolicyMemory {
  const all = [...memory.migrations, ...(outcome.action === 'migrate' ? [now] : [])].sort((a, b) => a - b);
  const newest = all[all.length - 1];
  const migrations = all.filter((t, i) => t > now - HOUR || i === all.length - 1 || t === newest);
  const job = outcome.action === 'stay' || outcome.action === 'migrate' ? outcome.job : undefined;
  let site = memory.site;
  if (job !== undefined && job !== site?.job) site = { job, since: now };
  return { ...memory, migrations, ...(site ? { site } : {}) };
}

/** How many recent samples decide() looks at: the longest run it counts. */
export function samplesNeeded(spec: MigrationPolicySpec): number {
  switch (spec.type) {
    case 'Threshold':
      return spec.highFor ?? 1;
    case 'Site':
      return Math.max(spec.highFor ?? SITE_DEFAULT_ENTER_SAMPLES, spec.lowFor ?? SITE_DEFAULT_DONE_SAMPLES);
    default:
      return Math.max(spec.highFor ?? 1, spec.lowFor ?? 1);
  }
}

/**
 * Whether decide() at `now` looks at the metric: not for Schedule outside its working hours, where
 * the VM goes to (or stays at) base "without any monitoring" — there is nothing to sample then, and
 * a metric that cannot be read must not keep the VM from base.
 */
export function monitoring(spec: MigrationPolicySpec, now: number): boolean {
  if (spec.type !== 'Schedule' || !spec.schedule) return true;
  return workingPeriod(spec.schedule as Schedule, now) !== undefined;
}

/**
 * When to sample (and decide) next. Schedule outside its windows: the next window start (the
 * thesis stops monitoring there). Inside a window: now + sampleInterval, but no later than the
 * window's end, so the move to base happens when the window closes. Else now + sampleInterval.
 */
export function nextSampleAt(spec: MigrationPolicySpec, now: number): number {
  const step = now + sampleIntervalMs(spec);
  if (spec.type !== 'Schedule' || !spec.schedule) return step;
  const schedule = spec.schedule as Schedule;
  const period = workingPeriod(schedule, now);
  if (!period) return nextWindowStart(schedule, now);
  return Math.min(step, period.end);
}
