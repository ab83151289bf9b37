// The operator's duration flags: Go durations (15s), the old milliseconds accepted with a
// deprecation warning, and each default taken from the one place it is defined.
import { describe, expect, it } from 'vitest';
import { durationFlag, operatorCommand } from '../../src/cli/operator.js';
import { DEFAULT_WATCHDOG_MS } from '../../src/runtime/informer.js';
import { LEADER_ELECTION_DEFAULTS } from '../../src/runtime/leader.js';

describe('recontext operator duration flags', () => {
  it('reads Go durations', () => {
    const warnings: string[] = [];
    expect(durationFlag('lease-duration', '15s', (m) => warnings.push(m))).toBe(15_000);
    expect(durationFlag('watchdog', '1m30s', (m) => warnings.push(m))).toBe(90_000);
    expect(durationFlag('retry-period', '500ms', (m) => warnings.push(m))).toBe(500);
    expect(warnings).toEqual([]);
  });

  it('accepts a number of milliseconds with a deprecation warning that says what to write', () => {
    const warnings: string[] = [];
    expect(durationFlag('lease-duration', '15000', (m) => warnings.push(m))).toBe(15_000);
    expect(durationFlag('retry-period', '1500', (m) => warnings.push(m))).toBe(1500);
    expect(warnings).toEqual([
      '--lease-duration 15000: a number of milliseconds is deprecated; write a Go duration: --lease-duration 15s',
      '--retry-period 1500: a number of milliseconds is deprecated; write a Go duration: --retry-period 1500ms',
    ]);
  });

  it.each(['0', '0s', '-1s', '15 s', 'soon', ''])('refuses %j', (value) => {
    expect(() => durationFlag('lease-duration', value, () => undefined)).toThrow(/^--lease-duration must be (a Go duration such as 15s, 1m30s or 500ms|longer than 0)/);
  });

  it('shows the defaults as Go durations, taken from the runtime', () => {
    const defaults = Object.fromEntries(operatorCommand().options.map((o) => [o.long, o.defaultValue as unknown]));
    expect(defaults).toMatchObject({ '--lease-duration': '15s', '--renew-deadline': '10s', '--retry-period': '2s', '--watchdog': '1m30s', '--kubevirt-wait': '1m' });
    expect(durationFlag('lease-duration', defaults['--lease-duration'] as string, () => undefined)).toBe(LEADER_ELECTION_DEFAULTS.leaseDurationMs);
    expect(durationFlag('watchdog', defaults['--watchdog'] as string, () => undefined)).toBe(DEFAULT_WATCHDOG_MS);
    expect(operatorCommand().helpInformation()).toMatch(/--lease-duration <duration>/);
  });
});
