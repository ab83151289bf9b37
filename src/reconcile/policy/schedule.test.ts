// Policy 3 (Schedule): working windows in local time across DST changes, 24:00 ends, weekends;
// and the window arithmetic underneath.
import { describe, expect, it } from 'vitest';
import type { MigrationPolicySpec } from '../../crds/migrationpolicy.js';
import { decide, EMPTY_MEMORY, nextSampleAt, type PolicyMemory } from './index.js';
import { endingAt, scheduleSpec, T } from './fixtures.js';
import { localInstant, nextWindowStart, workingPeriod, type Schedule } from './schedule.js';

const weekdays = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri'] as const;
const stockholm: Schedule = { timeZone: 'Europe/Stockholm', windows: [{ days: [...weekdays], start: '08:00', end: '17:00' }] };
const newYork: Schedule = { timeZone: 'America/New_York', windows: [{ days: [...weekdays], start: '09:00', end: '17:00' }] };
const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString().replace('.000Z', 'Z'));
const period = (s: Schedule, at: string) => {
  const p = workingPeriod(s, T(at));
  return p ? `${iso(p.start)}..${iso(p.end)}` : 'outside';
};

describe('working windows', () => {
  it.each([
    // Stockholm, spring forward on Sun 2026-03-29: 08:00 CET is 07:00Z before, 08:00 CEST is 06:00Z after.
    ['Fri before the change, 08:00 CET', stockholm, '2026-03-27T07:00:00Z', '2026-03-27T07:00:00Z..2026-03-27T16:00:00Z'],
    ['Fri 07:59 CET', stockholm, '2026-03-27T06:59:59Z', 'outside'],
    ['Fri 17:00 CET: the end is exclusive', stockholm, '2026-03-27T16:00:00Z', 'outside'],
    ['Sat: a weekend day', stockholm, '2026-03-28T10:00:00Z', 'outside'],
    ['Mon after the change, 08:00 CEST', stockholm, '2026-03-30T06:00:00Z', '2026-03-30T06:00:00Z..2026-03-30T15:00:00Z'],
    ['Mon 07:59 CEST', stockholm, '2026-03-30T05:59:00Z', 'outside'],
    // Fall back on Sun 2026-10-25.
    ['Fri before, 08:00 CEST', stockholm, '2026-10-23T06:00:00Z', '2026-10-23T06:00:00Z..2026-10-23T15:00:00Z'],
    ['Mon after, 07:30 CET', stockholm, '2026-10-26T06:30:00Z', 'outside'],
    ['Mon after, 08:00 CET', stockholm, '2026-10-26T07:00:00Z', '2026-10-26T07:00:00Z..2026-10-26T16:00:00Z'],
    // New York: spring forward Sun 2026-03-08, fall back Sun 2026-11-01.
    ['NY Fri 09:00 EST', newYork, '2026-03-06T14:00:00Z', '2026-03-06T14:00:00Z..2026-03-06T22:00:00Z'],
    ['NY Mon 09:00 EDT', newYork, '2026-03-09T13:00:00Z', '2026-03-09T13:00:00Z..2026-03-09T21:00:00Z'],
    ['NY Fri 09:00 EDT', newYork, '2026-10-30T13:00:00Z', '2026-10-30T13:00:00Z..2026-10-30T21:00:00Z'],
    ['NY Mon 08:30 EST', newYork, '2026-11-02T13:30:00Z', 'outside'],
  ] as const)('%s', (_name, schedule, at, expected) => expect(period(schedule, at)).toBe(expected));

  it('a window ending 24:00 runs to the next local midnight, DST-correct', () => {
    const evening: Schedule = { timeZone: 'Europe/Stockholm', windows: [{ days: ['Sat'], start: '18:00', end: '24:00' }] };
    // Sat 2026-03-28 is CET; its midnight is 23:00Z (the change to CEST comes at 01:00Z on Sunday).
    expect(period(evening, '2026-03-28T22:59:59Z')).toBe('2026-03-28T17:00:00Z..2026-03-28T23:00:00Z');
    expect(period(evening, '2026-03-28T23:00:00Z')).toBe('outside');
    expect(period(evening, '2026-04-04T21:59:00Z')).toBe('2026-04-04T16:00:00Z..2026-04-04T22:00:00Z');
  });

  it('windows that touch or cover whole days are one period', () => {
    const allWeek: Schedule = { timeZone: 'UTC', windows: [{ days: ['Mon', 'Tue'], start: '00:00', end: '24:00' }, { days: ['Wed'], start: '00:00', end: '12:00' }] };
    // 2026-05-04 is a Monday.
    expect(period(allWeek, '2026-05-05T10:00:00Z')).toBe('2026-05-04T00:00:00Z..2026-05-06T12:00:00Z');
  });

  it('windows on the DST days themselves use the wall clock', () => {
    const night: Schedule = { timeZone: 'Europe/Stockholm', windows: [{ days: ['Sun'], start: '01:00', end: '04:00' }] };
    // Spring: 01:00 CET = 00:00Z … 04:00 CEST = 02:00Z (two real hours).
    expect(period(night, '2026-03-29T01:30:00Z')).toBe('2026-03-29T00:00:00Z..2026-03-29T02:00:00Z');
    // Autumn: 01:00 CEST = 23:00Z the day before … 04:00 CET = 03:00Z (four real hours).
    expect(period(night, '2026-10-25T02:30:00Z')).toBe('2026-10-24T23:00:00Z..2026-10-25T03:00:00Z');
  });

  it('a start in the skipped hour is the jump; an ambiguous one its first occurrence', () => {
    expect(iso(localInstant(2026, 3, 29, 2 * 60 + 30, 'Europe/Stockholm'))).toBe('2026-03-29T01:00:00Z');
    expect(iso(localInstant(2026, 10, 25, 2 * 60 + 30, 'Europe/Stockholm'))).toBe('2026-10-25T00:30:00Z');
    expect(iso(localInstant(2026, 3, 8, 2 * 60 + 30, 'America/New_York'))).toBe('2026-03-08T07:00:00Z');
    expect(iso(localInstant(2026, 11, 1, 1 * 60 + 30, 'America/New_York'))).toBe('2026-11-01T05:30:00Z');
  });

  it.each([
    ['Sat before the spring change → Mon 08:00 CEST', stockholm, '2026-03-28T12:00:00Z', '2026-03-30T06:00:00Z'],
    ['Fri after hours before the autumn change → Mon 08:00 CET', stockholm, '2026-10-23T15:00:00Z', '2026-10-26T07:00:00Z'],
    ['inside a window → the next day', stockholm, '2026-03-30T06:00:00Z', '2026-03-31T06:00:00Z'],
    ['NY Sat → Mon 09:00 EDT', newYork, '2026-03-07T12:00:00Z', '2026-03-09T13:00:00Z'],
    ['NY Sat → Mon 09:00 EST', newYork, '2026-10-31T12:00:00Z', '2026-11-02T14:00:00Z'],
  ] as const)('next window start: %s', (_name, schedule, at, expected) => expect(iso(nextWindowStart(schedule, T(at)))).toBe(expected));
});

describe('policy 3: Schedule', () => {
  const spec = scheduleSpec(); // Stockholm Mon–Fri 08:00–17:00; base, preferred fast, faster; high 0.85 ×3, low 0.2 ×5, 1m; cooldown 20m
  const inside = T('2026-03-30T09:00:00Z'); // Mon 11:00 CEST
  const run = (now: number, values: number[], current: string | undefined, memory: PolicyMemory = EMPTY_MEMORY, s: MigrationPolicySpec = spec) =>
    decide({ spec: s, now, samples: endingAt(now, 60, values), currentArray: current, memory });

  it('inside a window behaves as Base', () => {
    expect(run(inside, [0.5, 0.9, 0.9, 0.9], 'base')).toMatchObject({ action: 'migrate', to: 'fast' });
    expect(run(inside, [0.1, 0.1, 0.1, 0.1, 0.1], 'fast')).toMatchObject({ action: 'migrate', to: 'base' });
    expect(run(inside, [0.5], 'fast')).toMatchObject({ action: 'stay', reason: expect.stringMatching(/between low 0.2 and high 0.85/) });
  });

  it('counts restart at the window start: samples from before 08:00 do not count', () => {
    const start = T('2026-03-30T06:00:00Z');
    const outcome = run(start + 60_000, [0.9, 0.9, 0.9, 0.9], 'base');
    expect(outcome).toMatchObject({ action: 'stay', reason: expect.stringMatching(/2 of 3/) });
  });

  it('outside the windows at base: sleep until the next window start', () => {
    const outcome = run(T('2026-03-28T12:00:00Z'), [0.9, 0.9, 0.9], 'base');
    expect(outcome).toEqual({ action: 'sleep', until: T('2026-03-30T06:00:00Z'), reason: 'outside working hours: at base (base), no sampling until Mon 2026-03-30 08:00 Europe/Stockholm' });
  });

  it('outside the windows elsewhere: move to base, even within cooldown or over the hourly maximum', () => {
    const now = T('2026-03-27T16:00:00Z'); // Fri 17:00 CET, the end of the window
    const busy: PolicyMemory = { migrations: [now - 5 * 60_000, now - 3 * 60_000] };
    expect(run(now, [0.9, 0.9, 0.9], 'fast', busy)).toEqual({
      action: 'migrate',
      to: 'base',
      reason: 'outside working hours (next window Mon 2026-03-30 08:00 Europe/Stockholm): move from fast to base (base)',
    });
    expect(run(now, [], undefined)).toMatchObject({ action: 'migrate', to: 'base' });
  });

  it('autumn: the Monday window opens at 07:00Z, not 06:00Z', () => {
    expect(run(T('2026-10-26T06:30:00Z'), [0.5], 'base')).toMatchObject({ action: 'sleep', until: T('2026-10-26T07:00:00Z') });
    expect(run(T('2026-10-26T07:05:00Z'), [0.9, 0.9, 0.9], 'base')).toMatchObject({ action: 'migrate', to: 'fast' });
  });

  it('New York across its spring change', () => {
    const ny = scheduleSpec({ schedule: newYork as NonNullable<MigrationPolicySpec['schedule']> });
    expect(run(T('2026-03-07T15:00:00Z'), [0.5], 'base', EMPTY_MEMORY, ny)).toMatchObject({ action: 'sleep', until: T('2026-03-09T13:00:00Z') });
    expect(run(T('2026-03-09T13:05:00Z'), [0.9, 0.9, 0.9], 'base', EMPTY_MEMORY, ny)).toMatchObject({ action: 'migrate', to: 'fast' });
  });

  it('weekend-only windows', () => {
    const weekend = scheduleSpec({ schedule: { timeZone: 'Europe/Stockholm', windows: [{ days: ['Sat', 'Sun'], start: '10:00', end: '14:00' }] } });
    expect(run(T('2026-03-28T10:00:00Z'), [0.9, 0.9, 0.9], 'base', EMPTY_MEMORY, weekend)).toMatchObject({ action: 'migrate', to: 'fast' }); // Sat 11:00 CET
    expect(run(T('2026-03-30T10:00:00Z'), [0.9], 'base', EMPTY_MEMORY, weekend)).toMatchObject({ action: 'sleep', until: T('2026-04-04T08:00:00Z') }); // Mon → Sat 10:00 CEST
  });

  it('nextSampleAt: the interval inside, clipped to the window end; the next start outside', () => {
    expect(nextSampleAt(spec, inside)).toBe(inside + 60_000);
    expect(nextSampleAt(spec, T('2026-03-30T14:59:30Z'))).toBe(T('2026-03-30T15:00:00Z'));
    expect(nextSampleAt(spec, T('2026-03-28T12:00:00Z'))).toBe(T('2026-03-30T06:00:00Z'));
    const evening = scheduleSpec({ schedule: { timeZone: 'Europe/Stockholm', windows: [{ days: ['Sat'], start: '18:00', end: '24:00' }] } });
    expect(nextSampleAt(evening, T('2026-03-28T22:59:45Z'))).toBe(T('2026-03-28T23:00:00Z'));
  });
});
