// The one way to skip (test/support/skip.ts): locally a reason, recorded for the run's summary;
// in CI an error, so a missing prerequisite can never turn a run green by skipping.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { skipReason } from './skip.js';

const ci = process.env['CI'];
afterEach(() => {
  if (ci === undefined) delete process.env['CI'];
  else process.env['CI'] = ci;
});

describe('skipReason', () => {
  it('lets tests run when nothing is missing, in CI too', () => {
    process.env['CI'] = 'true';
    expect(skipReason('tests needing X', undefined, 'install x')).toBeUndefined();
  });

  it('throws in CI, naming what is missing and how to get it', () => {
    process.env['CI'] = 'true';
    expect(() => skipReason('tests needing X', 'x is not installed', 'apt-get install x')).toThrow(/nothing may skip: tests needing X: x is not installed — apt-get install x/);
  });

  it('skips locally with the reason and records it once for the summary at the end of the run', () => {
    delete process.env['CI'];
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {}); // no made-up SKIPPED line in the run's output
    const what = `tests needing Y (${process.pid})`;
    // Its own log: the run's summary must list only real skips.
    const log = join(mkdtempSync(join(tmpdir(), 'recontext-skip-test-')), 'skips');
    expect(skipReason(what, 'y is off', 'unset it', { log })).toBe('y is off');
    expect(skipReason(what, 'y is off', 'unset it', { log })).toBe('y is off');
    const recorded = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    expect(recorded).toEqual([`${what}: y is off — unset it`]);
    expect(warn.mock.calls).toEqual([[`SKIPPED: ${what}: y is off — unset it`]]);
    warn.mockRestore();
  });
});
