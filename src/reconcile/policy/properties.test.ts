// Properties of decide/remember over random policies, series and memories (fast-check), plus
// parseDuration and arrayOf.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MigrationPolicySpec } from '../../crds/migrationpolicy.js';
import { arrayOf, decide, EMPTY_MEMORY, nextSampleAt, parseDuration, remember, type PolicyMemory, type Sample } from './index.js';
import { baseSpec, scheduleSpec, siteSpec, thresholdSpec, T } from './fixtures.js';

const START = T('2026-03-27T06:00:00Z'); // Fri, two days before Stockholm's spring change

const specArb: fc.Arbitrary<MigrationPolicySpec> = fc
  .record({
    type: fc.constantFrom('Threshold', 'Base', 'Schedule', 'Site'),
    highFor: fc.integer({ min: 1, max: 4 }),
    lowFor: fc.integer({ min: 1, max: 4 }),
    arrays: fc.integer({ min: 2, max: 4 }),
    cooldownMin: fc.integer({ min: 0, max: 30 }),
    max: fc.integer({ min: 1, max: 5 }),
    preferred: fc.boolean(),
  })
  .map(({ type, highFor, lowFor, arrays, cooldownMin, max, preferred }) => {
    const names = ['base', 'fast', 'faster', 'fastest'].slice(0, arrays);
    const common = {
      highFor,
      lowFor,
      arrays: names.map((name, i) => ({ name, nodeSelector: { array: name }, cost: i + 1 })),
      cooldown: cooldownMin === 0 ? '0s' : `${cooldownMin}m`,
      maxMigrationsPerHour: max,
      sampleInterval: '1m',
    };
    if (type === 'Threshold') return thresholdSpec({ ...common, high: 0.8 });
    if (type === 'Site') return siteSpec({ ...common, site: { grade: { reported: { key: 'g' } }, bigJobGrade: 0.8, home: 'base', fast: names[arrays - 1]! } });
    const spec = type === 'Base' ? baseSpec(common) : scheduleSpec(common);
    return preferred ? spec : { ...spec, preferred: undefined };
  });

// A series of samples, one a minute with occasional gaps, values around the thresholds.
const seriesArb: fc.Arbitrary<Sample[]> = fc.array(fc.record({ gap: fc.constantFrom(1, 1, 1, 1, 3), value: fc.constantFrom(0.1, 0.2, 0.5, 0.8, 0.9, Number.NaN) }), { maxLength: 200 }).map((steps) => {
  let at = START;
  return steps.map(({ gap, value }) => ({ at: (at += gap * 60_000), value }));
});

const currentArb = fc.constantFrom<string | undefined>('base', 'fast', 'faster', 'fastest', undefined);
const memoryArb: fc.Arbitrary<PolicyMemory> = fc.record({
  migrations: fc.array(fc.integer({ min: 0, max: 200 }).map((m) => START + m * 60_000), { maxLength: 5 }).map((a) => a.sort((x, y) => x - y)),
  site: fc.option(fc.record({ job: fc.constantFrom<'none' | 'running'>('none', 'running'), since: fc.constant(START) }), { nil: undefined }),
}).map((m) => (m.site ? m : { migrations: m.migrations }));

describe('decide properties', () => {
  it('never names the current array as target, and names only arrays of the policy', () => {
    fc.assert(
      fc.property(specArb, seriesArb, currentArb, memoryArb, fc.integer({ min: 0, max: 300 }), (spec, samples, current, memory, minute) => {
        const now = START + minute * 60_000;
        const outcome = decide({ spec, now, samples, grades: samples, currentArray: current, memory });
        const target = outcome.action === 'migrate' ? outcome.to : outcome.action === 'hold' ? outcome.wanted : undefined;
        if (target !== undefined) {
          expect(target).not.toBe(current);
          expect(spec.arrays.map((a) => a.name)).toContain(target);
        }
        expect(outcome.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });

  it('is deterministic and does not modify its input', () => {
    fc.assert(
      fc.property(specArb, seriesArb, currentArb, memoryArb, (spec, samples, current, memory) => {
        const now = START + 120 * 60_000;
        const input = { spec, now, samples, grades: samples, currentArray: current, memory };
        const frozen = JSON.stringify(input);
        expect(decide(input)).toEqual(decide(structuredClone(input)));
        expect(JSON.stringify(input)).toBe(frozen);
      }),
      { numRuns: 200 },
    );
  });

  it('a replay never requests more than maxMigrationsPerHour in any hour, nor two within cooldown (Schedule\'s forced move to base aside)', () => {
    fc.assert(
      fc.property(
        specArb.filter((s) => s.type !== 'Schedule'),
        seriesArb,
        (spec, samples) => {
          let memory = EMPTY_MEMORY;
          let current: string | undefined = spec.arrays[0]!.name;
          const requested: number[] = [];
          for (let i = 0; i < samples.length; i++) {
            const now = samples[i]!.at;
            const seen = samples.slice(0, i + 1);
            const outcome = decide({ spec, now, samples: seen, grades: seen, currentArray: current, memory });
            memory = remember(memory, outcome, now);
            if (outcome.action === 'migrate') {
              requested.push(now);
              current = outcome.to;
            }
          }
          const cooldown = parseDuration(spec.cooldown);
          for (let i = 0; i < requested.length; i++) {
            const inHour = requested.filter((t) => t > requested[i]! - 3_600_000 && t <= requested[i]!).length;
            expect(inHour).toBeLessThanOrEqual(spec.maxMigrationsPerHour);
            if (i > 0) expect(requested[i]! - requested[i - 1]!).toBeGreaterThanOrEqual(cooldown);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('nextSampleAt is always after now', () => {
    fc.assert(
      fc.property(specArb, fc.integer({ min: 0, max: 14 * 24 * 60 }), (spec, minute) => {
        const now = START + minute * 60_000;
        expect(nextSampleAt(spec, now)).toBeGreaterThan(now);
      }),
      { numRuns: 300 },
    );
  });
});

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['1m30s', 90_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    ['1h2m3s4ms', 3_723_004],
    ['0s', 0],
  ])('%s → %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', '10', '1d', '-1s', '1 m', 's', '1.s'])('rejects %j', (text) => expect(() => parseDuration(text)).toThrow(/invalid duration/));
});

describe('arrayOf', () => {
  const spec = thresholdSpec({
    arrays: [
      { name: 'eu', nodeSelector: { region: 'eu', tier: 'std' }, cost: 1 },
      { name: 'eu-any', nodeSelector: { region: 'eu' }, cost: 1 },
      { name: 'us', nodeSelector: { region: 'us' }, cost: 1 },
    ],
  });
  it('the first array whose selector matches all labels', () => {
    expect(arrayOf(spec, { region: 'eu', tier: 'std', zone: 'a' })).toBe('eu');
    expect(arrayOf(spec, { region: 'eu', tier: 'big' })).toBe('eu-any');
    expect(arrayOf(spec, { region: 'us' })).toBe('us');
    expect(arrayOf(spec, { region: 'ap' })).toBeUndefined();
    expect(arrayOf(spec, {})).toBeUndefined();
  });
});
