// Table-driven tests of the four policies on hand-written series.
import { describe, expect, it } from 'vitest';
import type { MigrationPolicySpec } from '../../crds/migrationpolicy.js';
import { decide, EMPTY_MEMORY, remember, samplesNeeded, type PolicyMemory, type Sample } from './index.js';
import { baseSpec, endingAt, siteSpec, thresholdSpec, T } from './fixtures.js';

const NOW = T('2026-05-06T12:00:00Z');
const MIN = 60_000;

interface Case {
  readonly name: string;
  readonly spec: MigrationPolicySpec;
  readonly samples?: readonly Sample[];
  readonly grades?: readonly Sample[];
  readonly current: string | undefined;
  readonly memory?: PolicyMemory;
  readonly now?: number;
  readonly expect: Partial<Record<'action' | 'to' | 'wanted', string>> & { reason?: RegExp };
}

function check(c: Case): void {
  const outcome = decide({
    spec: c.spec,
    now: c.now ?? NOW,
    samples: c.samples ?? [],
    ...(c.grades ? { grades: c.grades } : {}),
    currentArray: c.current,
    memory: c.memory ?? EMPTY_MEMORY,
  });
  const { reason, ...fields } = c.expect;
  expect(outcome).toMatchObject(fields);
  if (reason) expect(outcome.reason).toMatch(reason);
}

const at30 = (values: number[]) => endingAt(NOW, 30, values);
const at60 = (values: number[]) => endingAt(NOW, 60, values);
const migratedAt = (...minutesAgo: number[]): PolicyMemory => ({ migrations: minutesAgo.map((m) => NOW - m * MIN).sort((a, b) => a - b) });

describe('policy 1: Threshold', () => {
  const spec = thresholdSpec(); // high 0.8 for 5 samples of 30s, arrays a1 a2 a3, cooldown 10m, 4/h
  const cases: Case[] = [
    {
      name: 'exactly highFor samples at or above high: move to the next array',
      spec,
      samples: at30([0.5, 0.93, 0.8, 0.9, 0.85, 0.93]),
      current: 'a1',
      expect: { action: 'migrate', to: 'a2', reason: /^value 0\.93 >= high 0\.8 for 5 of 5 samples: move from a1 to a2$/ },
    },
    { name: 'highFor − 1 samples: stay, saying n of N', spec, samples: at30([0.5, 0.9, 0.9, 0.9, 0.9]), current: 'a1', expect: { action: 'stay', reason: /for 4 of 5 samples: stay in a1/ } },
    { name: 'fewer samples than needed at all', spec, samples: at30([0.9, 0.9]), current: 'a1', expect: { action: 'stay', reason: /2 of 5 samples/ } },
    { name: 'no samples', spec, samples: [], current: 'a1', expect: { action: 'stay', reason: /no samples yet \(0 of 5\)/ } },
    { name: 'below high: stay', spec, samples: at30([0.9, 0.9, 0.9, 0.9, 0.9, 0.79]), current: 'a1', expect: { action: 'stay', reason: /value 0\.79 < high 0\.8/ } },
    {
      name: 'flapping around the threshold never reaches the count',
      spec,
      samples: at30([0.81, 0.79, 0.81, 0.79, 0.81, 0.79, 0.81, 0.8, 0.81, 0.79, 0.9]),
      current: 'a1',
      expect: { action: 'stay', reason: /1 of 5/ },
    },
    { name: 'wraps from the last array to the first', spec, samples: at30([0.9, 0.9, 0.9, 0.9, 0.9]), current: 'a3', expect: { action: 'migrate', to: 'a1' } },
    { name: 'VM in no array: the first array', spec, samples: at30([0.9, 0.9, 0.9, 0.9, 0.9]), current: undefined, expect: { action: 'migrate', to: 'a1', reason: /move from no array to a1/ } },
    { name: 'unknown current array counts as none', spec, samples: at30([0.9, 0.9, 0.9, 0.9, 0.9]), current: 'elsewhere', expect: { action: 'migrate', to: 'a1' } },
    {
      name: 'a single array: nowhere else to go',
      spec: thresholdSpec({ arrays: [{ name: 'only', nodeSelector: {}, cost: 1 }] }),
      samples: at30([0.9, 0.9, 0.9, 0.9, 0.9]),
      current: 'only',
      expect: { action: 'stay', reason: /only is the only array/ },
    },
    {
      name: 'a gap of more than 2 × sampleInterval restarts the count',
      spec,
      samples: [...endingAt(NOW - 4 * MIN, 30, [0.9, 0.9, 0.9]), ...at30([0.9, 0.9, 0.9])],
      current: 'a1',
      expect: { action: 'stay', reason: /3 of 5/ },
    },
    {
      name: 'a gap of exactly 2 × sampleInterval does not',
      spec,
      samples: [150, 120, 60, 30, 0].map((s) => ({ at: NOW - s * 1000, value: 0.9 })), // 120 → 60: a gap of exactly 60s
      current: 'a1',
      expect: { action: 'migrate', to: 'a2' },
    },
    {
      name: 'stale samples: the newest is older than 2 × sampleInterval',
      spec,
      samples: endingAt(NOW - 5 * MIN, 30, [0.9, 0.9, 0.9, 0.9, 0.9]),
      current: 'a1',
      expect: { action: 'stay', reason: /newest sample is 5m old/ },
    },
    {
      name: 'samples from before the last migration do not count',
      spec: thresholdSpec({ cooldown: '1m' }),
      samples: at30([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]),
      current: 'a2',
      memory: migratedAt(2),
      expect: { action: 'stay', reason: /4 of 5/ },
    },
    {
      name: 'only samples from before the last migration: none to count',
      spec: thresholdSpec({ cooldown: '1m' }),
      samples: endingAt(NOW - 2 * MIN, 30, [0.9, 0.9, 0.9]),
      current: 'a2',
      memory: migratedAt(2),
      expect: { action: 'stay', reason: /^no samples since the migration at 2026-05-06T11:58:00Z \(0 of 5\): stay in a2$/ },
    },
    {
      name: 'NaN (a failed scrape) breaks the run',
      spec,
      samples: at30([0.9, 0.9, Number.NaN, 0.9, 0.9, 0.9, 0.9]),
      current: 'a1',
      expect: { action: 'stay', reason: /4 of 5/ },
    },
    {
      name: 'within cooldown: hold, naming the wanted array',
      spec,
      samples: at30([0.9, 0.9, 0.9, 0.9, 0.9]),
      current: 'a2',
      memory: migratedAt(4),
      expect: { action: 'hold', wanted: 'a3', reason: /move from a2 to a3; held: cooldown 10m after the migration 4m ago \(until 2026-05-06T12:06:00Z\)/ },
    },
    {
      name: 'cooldown over: migrate (samples all after the migration)',
      spec: thresholdSpec({ cooldown: '2m' }),
      samples: at30([0.9, 0.9, 0.9, 0.9, 0.9]),
      current: 'a2',
      memory: migratedAt(3),
      expect: { action: 'migrate', to: 'a3' },
    },
    {
      name: 'maxMigrationsPerHour reached: hold with when the next is allowed',
      spec: thresholdSpec({ cooldown: '1m', maxMigrationsPerHour: 2 }),
      samples: at30([0.9, 0.9, 0.9, 0.9, 0.9]),
      current: 'a1',
      memory: migratedAt(50, 10),
      expect: { action: 'hold', wanted: 'a2', reason: /held: 2 migrations in the last hour, maxMigrationsPerHour is 2 \(next allowed at 2026-05-06T12:10:00Z\)/ },
    },
    {
      name: 'migrations older than an hour do not count against the maximum',
      spec: thresholdSpec({ cooldown: '1m', maxMigrationsPerHour: 2 }),
      samples: at30([0.9, 0.9, 0.9, 0.9, 0.9]),
      current: 'a1',
      memory: migratedAt(61, 10),
      expect: { action: 'migrate', to: 'a2' },
    },
  ];
  it.each(cases)('$name', check);
});

describe('policy 2: Base', () => {
  const spec = baseSpec(); // high 0.85 ×4, low 0.2 ×10, 1m samples, base, preferred fast, faster; cooldown 15m, 2/h
  const low10 = at60(Array(10).fill(0.1));
  const high4 = at60([0.5, 0.9, 0.9, 0.9, 0.95]);
  const cases: Case[] = [
    { name: 'low for lowFor samples away from base: move to base', spec, samples: low10, current: 'fast', expect: { action: 'migrate', to: 'base', reason: /value 0\.1 <= low 0\.2 for 10 of 10 samples: move from fast to base \(base\)/ } },
    { name: 'low for lowFor − 1: stay', spec, samples: at60([0.5, ...Array(9).fill(0.2)]), current: 'fast', expect: { action: 'stay', reason: /for 9 of 10 samples: stay in fast/ } },
    { name: 'low at base: already there', spec, samples: low10, current: 'base', expect: { action: 'stay', reason: /already at base \(base\)/ } },
    { name: 'high at base: to preferred', spec, samples: high4, current: 'base', expect: { action: 'migrate', to: 'fast', reason: /value 0\.95 >= high 0\.85 for 4 of 4 samples: move from base to fast/ } },
    { name: 'high at base, no preferred: the first non-base array', spec: baseSpec({ preferred: undefined, arrays: [...spec.arrays].reverse() }), samples: high4, current: 'base', expect: { action: 'migrate', to: 'faster' } },
    { name: 'high away from base: the next non-base array', spec, samples: high4, current: 'fast', expect: { action: 'migrate', to: 'faster' } },
    { name: 'high at the last non-base array wraps, skipping base', spec, samples: high4, current: 'faster', expect: { action: 'migrate', to: 'fast' } },
    {
      name: 'high at the only non-base array: stay',
      spec: baseSpec({ arrays: spec.arrays.slice(0, 2) }),
      samples: high4,
      current: 'fast',
      expect: { action: 'stay', reason: /fast is the only array other than base/ },
    },
    { name: 'high for highFor − 1: stay', spec, samples: at60([0.5, 0.5, 0.9, 0.9, 0.9]), current: 'base', expect: { action: 'stay', reason: /3 of 4/ } },
    { name: 'between low and high: stay', spec, samples: at60([0.9, 0.9, 0.9, 0.5]), current: 'fast', expect: { action: 'stay', reason: /value 0\.5 between low 0\.2 and high 0\.85: stay in fast/ } },
    { name: 'VM in no array, high: preferred', spec, samples: high4, current: undefined, expect: { action: 'migrate', to: 'fast' } },
    { name: 'VM in no array, low: base', spec, samples: low10, current: undefined, expect: { action: 'migrate', to: 'base' } },
    {
      name: 'flapping between low and high moves nowhere',
      spec,
      samples: at60([0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9]),
      current: 'fast',
      expect: { action: 'stay', reason: /1 of 4/ },
    },
    { name: 'a gap breaks the low run', spec, samples: [...endingAt(NOW - 10 * MIN, 60, Array(6).fill(0.1)), ...at60(Array(5).fill(0.1))], current: 'fast', expect: { action: 'stay', reason: /5 of 10/ } },
    { name: 'cooldown holds the move to base', spec, samples: low10, current: 'fast', memory: { migrations: [NOW - 11 * MIN] }, expect: { action: 'hold', wanted: 'base', reason: /held: cooldown 15m/ } },
    {
      name: 'max per hour holds the move to preferred',
      spec: baseSpec({ cooldown: '1m' }),
      samples: high4,
      current: 'base',
      memory: migratedAt(40, 20),
      expect: { action: 'hold', wanted: 'fast', reason: /2 migrations in the last hour/ },
    },
  ];
  it.each(cases)('$name', check);
});

describe('policy 4: Site', () => {
  const spec = siteSpec(); // bigJobGrade 8, home → burst; enter after 1 sample, done after 3; 30s; cooldown 5m
  const running = (minutesAgo: number): PolicyMemory => ({ migrations: [NOW - minutesAgo * MIN], site: { job: 'running', since: NOW - minutesAgo * MIN } });
  const cases: Case[] = [
    { name: 'big grade at home: move to fast, job running', spec, grades: at30([2, 3, 9]), current: 'home', expect: { action: 'migrate', to: 'burst', reason: /grade 9 >= big-job grade 8 for 1 of 1 sample: big job: move from home to burst/ } },
    { name: 'small grades at home: stay', spec, grades: at30([2, 3, 7.9]), current: 'home', expect: { action: 'stay', reason: /stay at home \(home\)/ } },
    { name: 'no grades: stay, n of N', spec, grades: [], current: 'home', expect: { action: 'stay', reason: /0 of 3/ } },
    { name: 'the metric samples are not the grade', spec, samples: at30([9, 9, 9]), current: 'home', expect: { action: 'stay', reason: /no grade samples/ } },
    {
      name: 'highFor sets how many big samples are needed',
      spec: siteSpec({ highFor: 2 }),
      grades: at30([2, 9]),
      current: 'home',
      expect: { action: 'stay', reason: /1 of 2 samples: stay in home/ },
    },
    { name: 'job running at fast, grade still big: stay', spec, grades: at30([9, 9, 9, 10]), current: 'burst', memory: running(10), expect: { action: 'stay', reason: /job running since 2026-05-06T11:50:00Z, grade 10 >= big-job grade 8: stay in burst/ } },
    {
      name: 'grade switches mid-queue (dips below and back): no bounce',
      spec,
      grades: at30([9, 9, 3, 2, 9, 9]),
      current: 'burst',
      memory: running(10),
      expect: { action: 'stay' },
    },
    { name: 'grade dips for lowFor − 1 samples: still running', spec, grades: at30([9, 9, 3, 2]), current: 'burst', memory: running(10), expect: { action: 'stay', reason: /2 of 3 samples: stay in burst/ } },
    { name: 'queue done (below big for 3 samples): come home', spec, grades: at30([9, 9, 3, 2, 0]), current: 'burst', memory: running(10), expect: { action: 'migrate', to: 'home', reason: /for 3 of 3 samples: queue done: move from burst to home/ } },
    {
      name: 'grades from before the move to fast do not end the job',
      spec,
      grades: at30([2, 2, 2, 2]),
      current: 'burst',
      memory: running(1),
      expect: { action: 'stay', reason: /job running/ },
    },
    { name: 'queue done but within cooldown: hold', spec, grades: at30([0, 0, 0]), current: 'burst', memory: running(3), expect: { action: 'hold', wanted: 'home', reason: /held: cooldown 5m/ } },
    {
      name: 'job running but the VM is at home (the move failed): ask for fast again',
      spec,
      grades: at30([9, 9]),
      current: 'home',
      memory: running(10),
      expect: { action: 'migrate', to: 'burst', reason: /the job belongs at burst/ },
    },
    { name: 'no job, VM at fast, low grades: come home', spec, grades: at30([1, 1, 1]), current: 'burst', expect: { action: 'migrate', to: 'home' } },
    { name: 'no job, VM in no array, big grade: fast', spec, grades: at30([9]), current: undefined, expect: { action: 'migrate', to: 'burst' } },
    { name: 'no job, VM at fast, big grade: stay, job now running', spec, grades: at30([9]), current: 'burst', expect: { action: 'stay', reason: /already at burst/ } },
  ];
  it.each(cases)('$name', check);

  it('remember() keeps the job state through a queue and back home', () => {
    let memory = EMPTY_MEMORY;
    let current = 'home';
    const grades: Sample[] = [];
    const trace: string[] = [];
    // One sample every 30s: idle, a big queue whose grade wobbles, done, idle.
    const values = [1, 2, 9, 9, 9, 4, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 1];
    values.forEach((value, i) => {
      const now = NOW + i * 30_000;
      grades.push({ at: now, value });
      const outcome = decide({ spec, now, samples: [], grades, currentArray: current, memory });
      memory = remember(memory, outcome, now);
      if (outcome.action === 'migrate') current = outcome.to;
      trace.push(`${outcome.action}${outcome.action === 'migrate' ? `:${outcome.to}` : ''}:${memory.site?.job ?? '-'}`);
    });
    expect(trace.filter((t) => !t.startsWith('stay'))).toEqual(['migrate:burst:running', 'migrate:home:none']);
    expect(trace[2]).toBe('migrate:burst:running');
    expect(trace.indexOf('migrate:home:none')).toBe(16); // third 0 at i=16, 7m after the move: cooldown 5m over
    expect(memory.site).toEqual({ job: 'none', since: NOW + 16 * 30_000 });
  });
});

describe('remember', () => {
  it('adds a migration, drops those older than an hour but keeps the newest', () => {
    const m = remember({ migrations: [NOW - 90 * MIN, NOW - 30 * MIN] }, { action: 'migrate', to: 'a2', reason: '' }, NOW);
    expect(m.migrations).toEqual([NOW - 30 * MIN, NOW]);
    const old = remember({ migrations: [NOW - 3 * 60 * MIN, NOW - 2 * 60 * MIN] }, { action: 'stay', reason: '' }, NOW);
    expect(old.migrations).toEqual([NOW - 2 * 60 * MIN]);
  });

  it('changes nothing on a hold or a sleep except pruning', () => {
    const memory: PolicyMemory = { migrations: [NOW - MIN], site: { job: 'running', since: NOW - MIN } };
    expect(remember(memory, { action: 'hold', wanted: 'x', reason: '' }, NOW)).toEqual(memory);
    expect(remember(memory, { action: 'sleep', until: NOW + 1, reason: '' }, NOW)).toEqual(memory);
  });

  it('is JSON round-trippable', () => {
    const memory = remember(EMPTY_MEMORY, { action: 'migrate', to: 'burst', reason: '', job: 'running' }, NOW);
    expect(JSON.parse(JSON.stringify(memory))).toEqual(memory);
    expect(memory).toEqual({ migrations: [NOW], site: { job: 'running', since: NOW } });
  });

  it('leaves EMPTY_MEMORY untouched', () => {
    remember(EMPTY_MEMORY, { action: 'migrate', to: 'a', reason: '' }, NOW);
    expect(EMPTY_MEMORY).toEqual({ migrations: [] });
  });
});

describe('samplesNeeded', () => {
  it.each([
    ['Threshold', thresholdSpec(), 5],
    ['Base', baseSpec(), 10],
    ['Site (defaults 1 and 3)', siteSpec(), 3],
    ['Site with highFor 4', siteSpec({ highFor: 4 }), 4],
  ] as const)('%s', (_name, spec, n) => expect(samplesNeeded(spec)).toBe(n));
});
