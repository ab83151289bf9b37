// Test fixtures for the policy engine: policies as the examples write them, and sample series.
import type { MigrationPolicySpec } from '../../crds/migrationpolicy.js';
import type { Sample } from './index.js';

const array = (name: string, cost = 1) => ({ name, nodeSelector: { 'recontext.dev/array': name }, cost });

export function thresholdSpec(over: Partial<MigrationPolicySpec> = {}): MigrationPolicySpec {
  return {
    type: 'Threshold',
    vmSelector: {},
    metric: { reported: { key: 'latency' } },
    sampleInterval: '30s',
    high: 0.8,
    highFor: 5,
    arrays: [array('a1'), array('a2'), array('a3')],
    cooldown: '10m',
    maxMigrationsPerHour: 4,
    dryRun: false,
    ...over,
  } as MigrationPolicySpec;
}

export function baseSpec(over: Partial<MigrationPolicySpec> = {}): MigrationPolicySpec {
  return {
    type: 'Base',
    vmSelector: {},
    metric: { reported: { key: 'cpu' } },
    sampleInterval: '1m',
    high: 0.85,
    highFor: 4,
    low: 0.2,
    lowFor: 10,
    base: 'base',
    preferred: 'fast',
    arrays: [array('base', 0.2), array('fast', 1), array('faster', 2)],
    cooldown: '15m',
    maxMigrationsPerHour: 2,
    dryRun: false,
    ...over,
  } as MigrationPolicySpec;
}

export function scheduleSpec(over: Partial<MigrationPolicySpec> = {}): MigrationPolicySpec {
  return baseSpec({
    type: 'Schedule',
    highFor: 3,
    lowFor: 5,
    schedule: { timeZone: 'Europe/Stockholm', windows: [{ days: ['Mon', 'Tue', 'Wed', 'Thu', 'Fri'], start: '08:00', end: '17:00' }] },
    cooldown: '20m',
    ...over,
  });
}

export function siteSpec(over: Partial<MigrationPolicySpec> = {}): MigrationPolicySpec {
  return {
    type: 'Site',
    vmSelector: {},
    site: { grade: { reported: { key: 'grade' } }, bigJobGrade: 8, home: 'home', fast: 'burst' },
    sampleInterval: '30s',
    arrays: [array('home', 0.5), array('burst', 2.5)],
    cooldown: '5m',
    maxMigrationsPerHour: 4,
    dryRun: false,
    ...over,
  } as MigrationPolicySpec;
}

/** Samples `values` every `stepSeconds`, the last one at `end` (epoch ms). */
export function endingAt(end: number, stepSeconds: number, values: readonly number[]): Sample[] {
  return values.map((value, i) => ({ at: end - (values.length - 1 - i) * stepSeconds * 1000, value }));
}

export const T = (iso: string): number => Date.parse(iso);
