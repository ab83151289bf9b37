import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isNotReadyReason, kindOf, REASONS, type NotReadyReason } from './reasons.js';

const ALL = Object.values(REASONS).flat() as NotReadyReason[];

describe('the VMContext not-ready reasons', () => {
  it('each has exactly one kind', () => {
    expect(new Set(ALL).size).toBe(ALL.length);
    for (const [kind, reasons] of Object.entries(REASONS)) for (const reason of reasons) expect(kindOf(reason)).toBe(kind);
    expect(isNotReadyReason('Converged')).toBe(false);
    expect(isNotReadyReason('toString')).toBe(false);
  });

  it('are each documented in docs/troubleshooting.md with their kind', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'troubleshooting.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## VMContext'), doc.indexOf('## MigrationPolicy'));
    const documented = new Map<string, string>();
    for (const row of section.split('\n').filter((l) => l.startsWith('| `Ready=False`'))) {
      const [first, kind] = row.split(' | ');
      for (const [, reason] of (first ?? '').matchAll(/`(\w+)`/g)) if (reason !== 'Ready') documented.set(reason!, kind!.trim());
    }
    documented.delete('Attaching'); // a step of converging, not a reason of the vocabulary
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(ALL.map((r) => [r, kindOf(r)])));
  });
});

describe('the sample alert RecontextFailing', () => {
  it('leaves out exactly the reasons that pass by themselves (pending and retry)', () => {
    const rules = readFileSync(join(import.meta.dirname, '..', '..', 'charts', 'recontext', 'alerts', 'recontext-rules.yaml'), 'utf8');
    const excluded = /recontext_recontext_failures_total\{reason!~"([^"]+)"\}/.exec(rules)?.[1]?.split('|');
    expect(excluded?.sort()).toEqual([...REASONS.pending, ...REASONS.retry].sort());
  });
});
