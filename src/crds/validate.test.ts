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

  it('treats a null field as unset, as the API server does (it drops them), but not a null list item', () => {
    expect(problems(layer({ class: 'service', values: null, priority: null, files: [{ path: 'a', content: 'x', mode: null }] }))).toEqual([]);
    expect(problems(layer({ class: 'service', files: [null] })).length).toBeGreaterThan(0);
  });

  it('refuses unknown metadata fields, as the API server\'s strict decoding does', () => {
    expect(problems({ ...layer({ class: 'service', files: [{ path: 'a', content: 'x' }] }), metadata: { name: 'x', 'files ': 'y', '': 1, labels: { a: 'b' }, finalizers: ['f'] } })).toEqual([
      'metadata.files : unknown field "files "',
      'metadata.: unknown field ""',
    ]);
  });

  it('reports a wrong type where the schema has a default (defaults fill absent fields only)', () => {
    const vm = (spec: object) => ({ apiVersion: 'recontext.dev/v1alpha1', kind: 'VMContext', metadata: { name: 'x' }, spec: { target: { libvirt: { domain: 'a' } }, ...spec } });
    expect(problems(vm({ recontextOn: { a: 1 } }))).toEqual(['spec.recontextOn: must be of type array (got object)']);
    expect(problems(layer({ class: 'service', files: [{ path: 'a', content: 'x', template: 'yes' }] }))).toEqual(['spec.files.0.template: must be of type boolean (got string "yes")']);
    expect(problems(vm({}))).toEqual([]);
  });

  it('checks label and annotation keys and label values as the API server does', () => {
    const labelled = (metadata: object) => problems({ ...layer({ class: 'service', files: [{ path: 'a', content: 'x' }] }), metadata: { name: 'x', ...metadata } });
    expect(labelled({ labels: { app: 'web', 'recontext.dev/tier': '', 'a.b/c_d.e': 'v-1' }, annotations: { 'example.com/note': 'any text at all' } })).toEqual([]);
    expect(labelled({ labels: { 'files ': 'x', 'a/b/c': 'x', '/x': 'y', ok: 'not ok', long: 'x'.repeat(64) }, annotations: { 'bad key': 'x' } }).map((p) => p.replace(/: (key|value).*/, ': $1'))).toEqual([
      'metadata.labels.files : key',
      'metadata.labels.a/b/c: key',
      'metadata.labels./x: key',
      'metadata.labels.ok: value',
      'metadata.labels.long: value',
      'metadata.annotations.bad key: key',
    ]);
  });
});
