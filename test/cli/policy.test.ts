// `recontext policy simulate` as a real process (test/support/run-cli.ts) on the example policies
// and series, plus its error paths.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatSimulation, parseSeries, simulate, type Simulation } from '../../src/cli/policy.js';
import { baseSpec } from '../../src/reconcile/policy/fixtures.js';

const REPO = join(import.meta.dirname, '..', '..');
const CLI = join(REPO, 'test', 'support', 'run-cli.ts');
const policies = join(REPO, 'examples', 'policies');

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const simulateExample = async (name: string, ...extra: string[]) => {
  const { code, stdout, stderr } = await cli('policy', 'simulate', '-f', join(policies, `${name}.yaml`), '--series', join(policies, `${name}.csv`), '-o', 'json', ...extra);
  expect(stderr).toBe('');
  expect(code).toBe(0);
  return JSON.parse(stdout) as Simulation;
};

const moves = (sim: Simulation) => sim.events.filter((e) => e.action === 'migrate').map((e) => `${e.time} ${e.from}→${e.to}`);

// Each case starts the CLI (tsx, a few seconds cold): run them side by side.
describe.concurrent('recontext policy simulate', () => {
  it('Threshold: moves on after 5 slow samples, holds through the cooldown, moves back', async () => {
    const sim = await simulateExample('threshold');
    expect(moves(sim)).toEqual(['2026-01-05T00:07:00Z rack-a→rack-b', '2026-01-05T00:17:00Z rack-b→rack-a']);
    expect(sim.holds).toBe(5);
    expect(sim.events.find((e) => e.action === 'hold')).toMatchObject({ wanted: 'rack-a', times: 5, reason: expect.stringContaining('held: cooldown 10m') });
    expect(sim.arrays).toEqual([
      { name: 'rack-a', seconds: 1800, costPerHour: 1, cost: 0.5 },
      { name: 'rack-b', seconds: 600, costPerHour: 1, cost: 0.1667 },
    ]);
  });

  it('Base: to fast and back to base; holds by cooldown, then by maxMigrationsPerHour', async () => {
    const sim = await simulateExample('base');
    expect(moves(sim)).toEqual(['2026-01-05T00:18:00Z base→fast', '2026-01-05T00:39:00Z fast→base', '2026-01-05T01:18:00Z base→fast', '2026-01-05T02:10:00Z fast→base']);
    const holds = sim.events.filter((e) => e.action === 'hold');
    expect(holds.map((h) => h.times)).toEqual([6, 24]);
    expect(holds[1]!.reason).toContain('maxMigrationsPerHour is 2');
    expect(sim.total).toEqual({ seconds: 3 * 3600, cost: 1.5733 });
  });

  it('Schedule: to base when the window closes, asleep over the weekend and the DST change, awake at 08:00 CEST', async () => {
    const sim = await simulateExample('schedule');
    expect(moves(sim)).toEqual([
      '2026-03-27T15:02:00Z base→fast',
      '2026-03-27T17:00:00Z fast→base', // Fri 18:00 CET
      '2026-03-30T06:32:00Z base→fast', // Mon 08:32 CEST
      '2026-03-30T06:54:00Z fast→base',
    ]);
    expect(sim.events[1]!.reason).toMatch(/^outside working hours \(next window Mon 2026-03-30 08:00 Europe\/Stockholm\)/);
    expect(sim.arrays.find((a) => a.name === 'base')!.seconds).toBeGreaterThan(60 * 3600);
  });

  it('Site: a big queue moves the VM to burst, a mid-queue dip does not bounce it, done queues bring it home', async () => {
    const sim = await simulateExample('site');
    expect(moves(sim)).toEqual(['2026-01-05T00:05:30Z home→burst', '2026-01-05T00:16:30Z burst→home', '2026-01-05T00:25:30Z home→burst', '2026-01-05T00:30:30Z burst→home']);
    expect(sim.events.filter((e) => e.action === 'hold')).toHaveLength(1);
  });

  it('--start-array and the table output', async () => {
    const { code, stdout } = await cli('policy', 'simulate', '-f', join(policies, 'base.yaml'), '--series', join(policies, 'base.csv'), '--start-array', 'fast');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^policy batch-cpu \(Base\), 181 samples from 2026-01-05T00:00:00Z to 2026-01-05T03:00:00Z, starting in fast\n/);
    expect(stdout).toMatch(/\nTIME +IN +ACTION +TO +REASON\n/);
    expect(stdout).toMatch(/\nARRAY +TIME +COST\/H +COST\n/);
    expect(stdout).toMatch(/\n\d+ migrations, \d+ holds; staying in fast throughout would cost 3\.00\n$/);
  });

  it('an invalid policy: the problems as recontext validate prints them, exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'policy-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      ['apiVersion: recontext.dev/v1alpha1', 'kind: MigrationPolicy', 'metadata: {name: bad}', 'spec:', '  type: Base', '  vmSelector: {}', '  metric: {reported: {key: x}}', '  high: 1', '  highFor: 2', '  arrays:', '    - {name: a, nodeSelector: {}, cost: 1}'].join('\n'),
    );
    writeFileSync(join(dir, 's.csv'), 'time,value\n0,1\n');
    const { code, stdout, stderr } = await cli('policy', 'simulate', '-f', file, '--series', join(dir, 's.csv'));
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain(`${file}:5: document 1 (MigrationPolicy/bad): spec.low: low, lowFor and base are required for Base and Schedule`);
    expect(stderr).toMatch(/invalid: \d+ problems? in 1 file/);
  });

  it('a series that cannot be read: file:line on stderr, exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'policy-'));
    writeFileSync(join(dir, 's.csv'), 'time,value\n60,1\n30,1\n');
    const { code, stdout, stderr } = await cli('policy', 'simulate', '-f', join(policies, 'threshold.yaml'), '--series', join(dir, 's.csv'));
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(`recontext: ${join(dir, 's.csv')}:3: times must increase (2026-01-05T00:00:30Z is not after 2026-01-05T00:01:00Z)\n`);
  });

  it('--help documents each CSV form with an example; a policy without costs and a values-only series simulate', async () => {
    const help = await cli('policy', 'simulate', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('  time,value: a sample per row; time in seconds from --start or RFC 3339\n      time,value\n      0,0.31\n');
    expect(help.stdout).toContain('  time,value,grade: Site: the grade column (else value) is the queue grade\n      time,value,grade\n');
    expect(help.stdout).toContain("  value: values only: one sample per the policy's sampleInterval from --start\n      value\n      0.31\n");
    const dir = mkdtempSync(join(tmpdir(), 'policy-'));
    const policy = join(dir, 'p.yaml');
    writeFileSync(
      policy,
      'apiVersion: recontext.dev/v1alpha1\nkind: MigrationPolicy\nmetadata: {name: p}\nspec:\n  type: Threshold\n  vmSelector: {}\n  metric: {reported: {key: p95}}\n  high: 1\n  highFor: 2\n  arrays:\n    - {name: a, nodeSelector: {x: a}}\n    - {name: b, nodeSelector: {x: b}}\n',
    );
    writeFileSync(join(dir, 's.csv'), 'value\n0.5\n2\n2\n2\n');
    const run = await cli('policy', 'simulate', '-f', policy, '--series', join(dir, 's.csv'));
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^2026-01-05T00:01:00Z\s+a\s+migrate\s+b\s/m);
    expect(run.stdout).toMatch(/^total\s+1m30s\s+-$/m);
  });

  it('an unknown --start-array: exit 1; a missing option: usage error, exit 2', async () => {
    const bad = await cli('policy', 'simulate', '-f', join(policies, 'base.yaml'), '--series', join(policies, 'base.csv'), '--start-array', 'moon');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--start-array "moon" is not one of the policy\'s arrays (base, fast)');
    const usage = await cli('policy', 'simulate', '-f', join(policies, 'base.yaml'));
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("required option '--series <file>' not specified");
  });
});

describe('parseSeries', () => {
  it.each([
    ['a wrong header', 'when,value\n0,1\n', /s\.csv:1: unknown header "when,value"; write a header first, one of: time,value \| time,value,grade \| value \(see recontext policy simulate --help\)/],
    ['no header: values only', '0.5\n0.7\n', /s\.csv:1: no header \(this line is data\); write a header first, one of: time,value \| time,value,grade \| value/],
    ['a bad time', 'time,value\nnoon,1\n', /s\.csv:2: time "noon" is neither RFC 3339 nor seconds from the start/],
    ['times going back', 'time,value\n60,1\n30,1\n', /s\.csv:3: times must increase/],
    ['a bad value', 'time,value\n0,fast\n', /s\.csv:2: value "fast" is not a number/],
    ['too many columns', 'time,value\n0,1,2\n', /s\.csv:2: 3 columns, the header time,value has 2/],
    ['no rows', '# nothing\ntime,value\n', /s\.csv: no samples after the header/],
  ])('rejects %s with file:line', (_name, csv, message) => expect(() => parseSeries(csv, 's.csv', 0, 30_000)).toThrow(message));

  it('reads a values-only series as one sample per sample interval from the start', () => {
    expect(parseSeries('# p95\nvalue\n0.5\n\n0.7\n1\n', 's.csv', 1000, 30_000)).toEqual([
      { at: 1000, value: 0.5 },
      { at: 31_000, value: 0.7 },
      { at: 61_000, value: 1 },
    ]);
  });

  it('reads comments, blank lines, empty cells and a grade column', () => {
    expect(parseSeries('# c\n\ntime,value,grade\n0,,9\n30,0.5,\n2026-01-01T00:01:00Z,1,2\n', 's.csv', Date.parse('2026-01-01T00:00:00Z'))).toEqual([
      { at: Date.parse('2026-01-01T00:00:00Z'), grade: 9 },
      { at: Date.parse('2026-01-01T00:00:30Z'), value: 0.5 },
      { at: Date.parse('2026-01-01T00:01:00Z'), value: 1, grade: 2 },
    ]);
  });
});

describe('simulate() in process', () => {
  it('cost is optional: arrays without one report time only, and the totals say so', () => {
    const spec = baseSpec({ highFor: 1, lowFor: 1, cooldown: '0s', maxMigrationsPerHour: 60 });
    const uncosted = { ...spec, arrays: spec.arrays.map(({ cost: _cost, ...array }) => array) };
    const sim = simulate('p', uncosted, parseSeries('time,value\n0,0.5\n1800,0.9\n3600,0.1\n7200,0.5\n', 's.csv', 0), 'base');
    expect(sim.arrays.map((a) => [a.name, a.seconds, a.costPerHour, a.cost])).toEqual([
      ['base', 5400, null, null],
      ['fast', 1800, null, null],
      ['faster', 0, null, null],
    ]);
    expect(sim.total).toEqual({ seconds: 7200, cost: null });
    expect(sim.stayCost).toBeNull();
    const text = formatSimulation(sim);
    expect(text).toMatch(/^base\s+1h30m\s+-\s+-$/m);
    expect(text).toMatch(/^total\s+2h\s+-$/m);
    expect(text).not.toContain('would cost');
  });

  it('accounts time in each array and the cost, RFC 3339 and numeric times alike', () => {
    const spec = baseSpec({ highFor: 1, lowFor: 1, cooldown: '0s', maxMigrationsPerHour: 60 });
    const rows = parseSeries('time,value\n0,0.5\n1800,0.9\n3600,0.1\n7200,0.5\n', 's.csv', Date.parse('2026-01-05T00:00:00Z'));
    const sim = simulate('p', spec, rows, 'base');
    expect(sim.arrays.map((a) => [a.name, a.seconds, a.cost])).toEqual([
      ['base', 1800 + 3600, 0.3],
      ['fast', 1800, 0.5],
      ['faster', 0, 0],
    ]);
    expect(sim.total).toEqual({ seconds: 7200, cost: 0.8 });
    expect(sim.stayCost).toBe(0.4);
    const same = parseSeries('time,value\n2026-01-05T00:00:00Z,0.5\n2026-01-05T00:30:00+00:00,0.9\n2026-01-05T02:00:00+01:00,0.1\n2026-01-05T02:00:00Z,0.5\n', 's.csv', 0);
    expect(simulate('p', spec, same, 'base').arrays).toEqual(sim.arrays);
  });
});
