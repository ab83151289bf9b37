// Every document in test/fixtures/invalid must be rejected by `recontext validate` with a
// message naming the field. Each fixture states what it expects in its first line:
//   # expect: <field path>: <message fragment>      ((yaml) for parse errors, which have no field)
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatReport, validatePaths } from '../../src/cli/validate.js';

const corpus = join(import.meta.dirname, '..', 'fixtures', 'invalid');
const fixtures = readdirSync(corpus).filter((f) => f.endsWith('.yaml')).sort();

describe('invalid corpus', () => {
  it('has at least 30 documents', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(30);
  });

  it.each(fixtures)('%s is rejected naming the field', (name) => {
    const file = join(corpus, name);
    const header = /^# expect: (\S+): (.+)$/m.exec(readFileSync(file, 'utf8').split('\n')[0] ?? '');
    expect(header, `${name} needs a "# expect: FIELD: MESSAGE" first line`).not.toBeNull();
    const [, field, message] = header!;
    const report = validatePaths([file]);
    expect(report.problems.length).toBeGreaterThan(0);
    const match = report.problems.find((p) => (field === '(yaml)' ? p.field === undefined : p.field === field) && p.message.includes(message!));
    expect(match, `expected "${field}: ${message}", got:\n${formatReport(report)}`).toBeDefined();
    // Every problem points at a line of the file, so editors and CI annotations can jump to it.
    for (const problem of report.problems) expect(problem.line).toBeGreaterThan(0);
  });
});
