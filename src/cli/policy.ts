// `recontext policy simulate -f POLICY.yaml --series FILE.csv`: replays a recorded (or made-up)
// metric series through the MigrationPolicy engine (src/reconcile/policy) and prints the decisions
// and the thesis' cost view (ch. 3.5: C_t = Σ C_b + Σ C_a, time × cost per array).
import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { Command, Option } from 'commander';
import { MigrationPolicySpec } from '../crds/migrationpolicy.js';
import { loadManifests } from '../manifests/load.js';
import {
  decide,
  EMPTY_MEMORY,
  formatDuration,
  nextSampleAt,
  remember,
  samplesNeeded,
  sampleIntervalMs,
  workingPeriod,
  type Outcome,
  type PolicyMemory,
  type Sample,
} from '../reconcile/policy/index.js';
import { table } from './table.js';
import { formatReport, validatePaths } from './validate.js';

export interface SeriesRow {
  readonly at: number;
  readonly value?: number;
  readonly grade?: number;
}

export interface SimulationEvent {
  readonly time: string;
  readonly from: string | null;
  readonly action: Outcome['action'];
  readonly to?: string;
  readonly wanted?: string;
  readonly until?: string;
  readonly reason: string;
  /** Holds: how many consecutive decisions held the same move for the same rule, and the last one's time. */
  readonly times?: number;
  readonly lastTime?: string;
}

export interface Simulation {
  readonly policy: string;
  readonly type: MigrationPolicySpec['type'];
  readonly start: string;
  readonly end: string;
  readonly samples: number;
  /** Rows not sampled because the policy slept (Schedule outside working hours). */
  readonly asleep: number;
  /** The policy's dryRun: the operator would record these decisions without moving the VM. */
  readonly dryRun: boolean;
  readonly startArray: string | null;
  readonly events: readonly SimulationEvent[];
  /** cost and costPerHour are null for arrays without spec.arrays[].cost. */
  readonly arrays: readonly { name: string; seconds: number; costPerHour: number | null; cost: number | null }[];
  /** cost: null when no array has a cost. */
  readonly total: { seconds: number; cost: number | null };
  /** Cost had the VM stayed in the start array throughout (the baseline the policy is measured against); null without its cost. */
  readonly stayCost: number | null;
  readonly migrations: number;
  readonly holds: number;
}

/** Numeric times in the CSV are seconds from this instant unless --start says otherwise (a Monday, 00:00 UTC). */
export const DEFAULT_START = '2026-01-05T00:00:00Z';
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const iso = (t: number): string => new Date(t).toISOString().replace('.000Z', 'Z');

/** The CSV forms simulate reads: the first line that is not blank or a # comment is one of these headers. */
export const SERIES_FORMS = [
  { header: 'time,value', example: 'time,value\n0,0.31\n30,0.35', what: 'a sample per row; time in seconds from --start or RFC 3339' },
  { header: 'time,value,grade', example: 'time,value,grade\n2026-01-05T00:00:00Z,,2\n2026-01-05T00:00:30Z,,9', what: 'Site: the grade column (else value) is the queue grade' },
  { header: 'value', example: 'value\n0.31\n0.35', what: "values only: one sample per the policy's sampleInterval from --start" },
] as const;

const HOW_TO_WRITE = `write a header first, one of: ${SERIES_FORMS.map((f) => f.header).join(' | ')} (see recontext policy simulate --help)`;

/**
 * CSV in one of SERIES_FORMS; blank lines and lines starting with # are skipped. `intervalMs`
 * spaces the rows of a values-only series (the policy's sampleInterval).
 */
export function parseSeries(text: string, file: string, start: number, intervalMs?: number): SeriesRow[] {
  const lines = text.split(/\r?\n/);
  let header: string[] | undefined;
  const rows: SeriesRow[] = [];
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const where = `${file}:${i + 1}`;
    if (line === '' || line.startsWith('#')) return;
    const cells = line.split(',').map((c) => c.trim());
    if (!header) {
      header = cells.map((c) => c.toLowerCase());
      if (!SERIES_FORMS.some((f) => f.header === header!.join(','))) {
        const numbers = cells.every((c) => c === '' || Number.isFinite(Number(c)));
        throw new Error(`${where}: ${numbers ? 'no header (this line is data)' : `unknown header ${JSON.stringify(line)}`}; ${HOW_TO_WRITE}`);
      }
      if (header[0] === 'value' && intervalMs === undefined) throw new Error(`${where}: a values-only series needs the sample interval; ${HOW_TO_WRITE}`);
      return;
    }
    if (cells.length > header.length) throw new Error(`${where}: ${cells.length} columns, the header ${header.join(',')} has ${header.length}`);
    const [time = '', value = '', grade = ''] = header[0] === 'value' ? [String(rows.length * intervalMs! / 1000), ...cells] : cells;
    let at: number;
    if (RFC3339.test(time)) at = Date.parse(time);
    else if (/^\d+(\.\d+)?$/.test(time)) at = start + Math.round(Number(time) * 1000);
    else throw new Error(`${where}: time ${JSON.stringify(time)} is neither RFC 3339 nor seconds from the start`);
    const number = (text: string, what: string): number | undefined => {
      if (text === '') return undefined;
      const n = Number(text);
      if (!Number.isFinite(n) && text.toLowerCase() !== 'nan') throw new Error(`${where}: ${what} ${JSON.stringify(text)} is not a number`);
      return n;
    };
    const previous = rows[rows.length - 1];
    if (previous && at <= previous.at) throw new Error(`${where}: times must increase (${iso(at)} is not after ${iso(previous.at)})`);
    const v = number(value, 'value');
    const g = number(grade, 'grade');
    rows.push({ at, ...(v !== undefined ? { value: v } : {}), ...(g !== undefined ? { grade: g } : {}) });
  });
  if (!header) throw new Error(`${file}: empty; ${HOW_TO_WRITE}, then one row per sample`);
  if (rows.length === 0) throw new Error(`${file}: no samples after the header`);
  return rows;
}

/** The one MigrationPolicy in `file`, validated as `recontext validate` does, with the schema's defaults applied. */
export function loadPolicy(file: string): { name: string; spec: MigrationPolicySpec } {
  const report = validatePaths([file]);
  if (report.problems.length > 0) throw new PolicyInvalid(formatReport(report));
  const policies = loadManifests([file]).documents.filter((d) => (d.object as { kind?: unknown }).kind === 'MigrationPolicy');
  if (policies.length !== 1) throw new Error(`${file}: ${policies.length} MigrationPolicy documents; simulate takes a file with exactly one`);
  const object = policies[0]!.object as { metadata: { name: string }; spec: unknown };
  return { name: object.metadata.name, spec: Value.Default(MigrationPolicySpec, structuredClone(object.spec)) as MigrationPolicySpec };
}

/** Validation problems, already formatted as `recontext validate` prints them. */
export class PolicyInvalid extends Error {}

function defaultStartArray(spec: MigrationPolicySpec): string {
  if (spec.type === 'Site' && spec.site) return spec.site.home;
  if ((spec.type === 'Base' || spec.type === 'Schedule') && spec.base) return spec.base;
  return spec.arrays[0]!.name;
}

/**
 * Replays the series: one decide() per row, as the controller would call it after sampling, with
 * the memory remember() returns. A migration takes effect at once (the VM is then in the target
 * array). Schedule's sleep is honoured: rows before the wake-up time are neither sampled nor decided
 * on, as the thesis stops monitoring outside working hours.
 */
export function simulate(name: string, spec: MigrationPolicySpec, rows: readonly SeriesRow[], startArray: string | undefined): Simulation {
  const keep = samplesNeeded(spec);
  const samples: Sample[] = [];
  const grades: Sample[] = [];
  let memory: PolicyMemory = EMPTY_MEMORY;
  let current = startArray;
  let since = rows[0]!.at;
  let asleepUntil = Number.NEGATIVE_INFINITY;
  const residence = new Map<string, number>();
  const events: SimulationEvent[] = [];
  let migrations = 0;
  let holds = 0;
  let previousAction: Outcome['action'] | undefined;
  let asleep = 0;
  const settle = (at: number) => {
    residence.set(current ?? '', (residence.get(current ?? '') ?? 0) + (at - since));
    since = at;
  };
  const push = (list: Sample[], sample: Sample) => {
    list.push(sample);
    if (list.length > keep) list.splice(0, list.length - keep);
  };

  for (const row of rows) {
    const now = row.at;
    if (now < asleepUntil) {
      asleep++;
      continue;
    }
    if (row.value !== undefined) push(samples, { at: now, value: row.value });
    // Site decides on the grade; a series without a grade column gives it in the value column.
    const grade = row.grade ?? (spec.type === 'Site' ? row.value : undefined);
    if (grade !== undefined) push(grades, { at: now, value: grade });
    const outcome = decide({ spec, now, samples, grades, currentArray: current, memory });
    memory = remember(memory, outcome, now);
    const lastWasHold = previousAction === 'hold';
    previousAction = outcome.action;
    const base = { time: iso(now), from: current ?? null, action: outcome.action, reason: outcome.reason };
    switch (outcome.action) {
      case 'migrate':
        events.push({ ...base, to: outcome.to });
        settle(now);
        current = outcome.to;
        migrations++;
        break;
      case 'hold': {
        holds++;
        // One line for a run of holds of the same move by the same rule (cooldown, hourly maximum).
        const previous = events[events.length - 1];
        if (previous?.action === 'hold' && lastWasHold && previous.wanted === outcome.wanted && previous.from === base.from && holdRule(previous.reason) === holdRule(outcome.reason)) {
          events[events.length - 1] = { ...previous, times: (previous.times ?? 1) + 1, lastTime: base.time };
        } else events.push({ ...base, wanted: outcome.wanted });
        break;
      }
      case 'sleep':
        events.push({ ...base, until: iso(outcome.until) });
        asleepUntil = outcome.until;
        break;
      case 'stay':
        break;
    }
    // Outside working hours after a move to base: no sampling until the next window either.
    if (spec.type === 'Schedule' && spec.schedule && outcome.action === 'migrate' && !workingPeriod(spec.schedule, now)) asleepUntil = nextSampleAt(spec, now);
  }
  const end = rows[rows.length - 1]!.at;
  settle(end);
  const costOf = (array: string): number | null => spec.arrays.find((a) => a.name === array)?.cost ?? null;
  const costed = spec.arrays.some((a) => a.cost !== undefined);
  const names = [...spec.arrays.map((a) => a.name), ...(residence.has('') ? [''] : [])];
  const rawCost = (array: string) => ((residence.get(array) ?? 0) / 3_600_000) * (costOf(array) ?? 0);
  const arrays = names.map((array) => {
    const perHour = costOf(array);
    return { name: array === '' ? '(no array)' : array, seconds: (residence.get(array) ?? 0) / 1000, costPerHour: perHour, cost: perHour === null ? null : round(rawCost(array)) };
  });
  return {
    policy: name,
    type: spec.type,
    start: iso(rows[0]!.at),
    end: iso(end),
    samples: rows.length,
    asleep,
    dryRun: spec.dryRun ?? false,
    startArray: startArray ?? null,
    events,
    arrays,
    total: { seconds: (end - rows[0]!.at) / 1000, cost: costed ? round(names.reduce((sum, a) => sum + rawCost(a), 0)) : null },
    stayCost: startArray === undefined || costOf(startArray) === null ? null : round(((end - rows[0]!.at) / 3_600_000) * costOf(startArray)!),
    migrations,
    holds,
  };
}

/** Which guard rail a hold's reason names: the words after "held:" without the numbers. */
const holdRule = (reason: string): string => (reason.split('; held: ')[1] ?? '').replace(/\(.*\)/g, '').replace(/[0-9][0-9a-z.]*/g, '#');

const round = (n: number): number => Math.round(n * 1e4) / 1e4;

export function formatSimulation(sim: Simulation): string {
  const out: string[] = [];
  const asleep = sim.asleep > 0 ? ` (${sim.asleep} not sampled: asleep outside working hours)` : '';
  out.push(`policy ${sim.policy} (${sim.type}), ${sim.samples} samples${asleep} from ${sim.start} to ${sim.end}, starting in ${sim.startArray ?? 'no array'}`);
  if (sim.dryRun) out.push('dryRun is true: the operator would only record these decisions; the simulation moves the VM to show what would follow');
  out.push('');
  if (sim.events.length === 0) out.push('no migrations, holds or sleeps: the VM stayed where it was');
  else {
    out.push(
      table(
        ['TIME', 'IN', 'ACTION', 'TO', 'REASON'],
        sim.events.map((e) => [
          e.time,
          e.from ?? '-',
          e.times ? `hold ×${e.times}` : e.action,
          e.to ?? e.wanted ?? (e.until ? `until ${e.until}` : ''),
          e.times ? `${e.reason} [held ${e.times} times, the last at ${e.lastTime}]` : e.reason,
        ]),
      ).trimEnd(),
    );
  }
  out.push('');
  out.push(
    table(
      ['ARRAY', 'TIME', 'COST/H', 'COST'],
      [
        ...sim.arrays.map((a) => [a.name, formatDuration(a.seconds * 1000), a.costPerHour === null ? '-' : String(a.costPerHour), a.cost === null ? '-' : a.cost.toFixed(2)]),
        ['total', formatDuration(sim.total.seconds * 1000), '', sim.total.cost === null ? '-' : sim.total.cost.toFixed(2)],
      ],
    ).trimEnd(),
  );
  out.push('');
  const baseline = sim.stayCost === null ? '' : `; staying in ${sim.startArray} throughout would cost ${sim.stayCost.toFixed(2)}`;
  out.push(`${sim.migrations} migration${sim.migrations === 1 ? '' : 's'}, ${sim.holds} hold${sim.holds === 1 ? '' : 's'}${baseline}`);
  return out.join('\n') + '\n';
}

export function policyCommand(): Command {
  const policy = new Command('policy').description('Work with MigrationPolicy objects offline (see docs/policies.md).');
  policy.addCommand(
    new Command('simulate')
      .description('Replay a metric series through a MigrationPolicy and print its decisions and the cost of where the VM spent its time.')
      .requiredOption('-f, --filename <file>', 'the MigrationPolicy manifest (YAML or JSON, one MigrationPolicy)')
      .requiredOption('--series <file>', `CSV with one of the headers ${SERIES_FORMS.map((f) => f.header).join(', ')} (forms below)`)
      .option('--start-array <name>', 'array the VM starts in (default: home for Site, base for Base and Schedule, else the first array)')
      .option('--start <time>', 'RFC 3339 instant that numeric times count from', DEFAULT_START)
      .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
      .exitOverride()
      .showHelpAfterError()
      .addHelpText(
        'after',
        [
          '',
          'Series forms (blank lines and # comments are skipped; an empty value is no sample):',
          ...SERIES_FORMS.flatMap((f) => [`  ${f.header}: ${f.what}`, ...f.example.split('\n').map((l) => `      ${l}`)]),
          '',
          'Only migrations, holds and sleeps are listed, not every stay. Migrations take effect at once.',
          'Cost is hours × spec.arrays[].cost; arrays without a cost show "-" (time only).',
          'Exit status: 0 after a simulation, 1 when the policy is invalid or the series cannot be read, 2 on usage errors.',
          'Example: recontext policy simulate -f examples/policies/base.yaml --series examples/policies/base.csv',
        ].join('\n'),
      )
      .action((options: { filename: string; series: string; startArray?: string; start: string; output: 'table' | 'json' }) => {
        let loaded;
        try {
          loaded = loadPolicy(options.filename);
        } catch (error: unknown) {
          if (!(error instanceof PolicyInvalid)) throw error;
          process.stderr.write(error.message);
          process.exitCode = 1;
          return;
        }
        const { name, spec } = loaded;
        if (!RFC3339.test(options.start)) throw new Error(`--start ${JSON.stringify(options.start)} is not an RFC 3339 time`);
        const startArray = options.startArray ?? defaultStartArray(spec);
        if (!spec.arrays.some((a) => a.name === startArray)) {
          throw new Error(`--start-array ${JSON.stringify(startArray)} is not one of the policy's arrays (${spec.arrays.map((a) => a.name).join(', ')})`);
        }
        let text: string;
        try {
          text = readFileSync(options.series, 'utf8');
        } catch (error: unknown) {
          throw new Error(`${options.series}: ${error instanceof Error && 'code' in error && error.code === 'ENOENT' ? 'no such file' : String(error)}`);
        }
        const rows = parseSeries(text, options.series, Date.parse(options.start), sampleIntervalMs(spec));
        const sim = simulate(name, spec, rows, startArray);
        process.stdout.write(options.output === 'json' ? JSON.stringify(sim, null, 2) + '\n' : formatSimulation(sim));
        process.exitCode = 0;
      }),
  );
  return policy;
}
