import { describe, expect, it } from 'vitest';
import { characters, validateObject } from './validate.js';

const layer = (spec: object) => ({ apiVersion: 'recontext.dev/v1alpha1', kind: 'ContextLayer', metadata: { name: 'x' }, spec });
const problems = (object: object) => {
  const verdict = validateObject(object);
  return verdict.kind === 'ours' ? verdict.problems.map((p) => `${p.path.join('.')}: ${p.message}`) : [];
};

describe('string lengths, counted as the API server counts them', () => {
  it('counts code points, not UTF-16 units: 4096 emoji fit a 4096-character value', () => {
    expect(characters('\u{1F600}'.repeat(3))).toBe(3);
    expect(problems(layer({ class: 'service', values: { a: '\u{1F600}'.repeat(4096) }, files: [{ path: 'a', content: 'x' }] }))).toEqual([]);
    expect(problems(layer({ class: 'service', values: { a: '\u{1F600}'.repeat(4097) }, files: [{ path: 'a', content: 'x' }] }))).toEqual(['spec.values.a: must be at most 4096 characters (got 4097)']);
    expect(problems(layer({ class: 'service', files: [{ path: `${'\u{1F600}'.repeat(20)}/a`, content: 'x' }], hooks: [{ name: 'h', paths: ['é'.repeat(1024)], run: ['/bin/true'] }] }))).toEqual([]);
  });
});
