import { describe, expect, it } from 'vitest';
import { mapMatches, parseLabels, selectorMatches } from './labels.js';

describe('label selectors', () => {
  const labels = { app: 'web', tier: 'front' };
  it('matches like Kubernetes', () => {
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'web' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'db' } }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'x', operator: 'Exists' }] }, labels)).toBe(false);
  });
  it('matches plain node selectors', () => {
    expect(mapMatches({}, labels)).toBe(true);
    expect(mapMatches({ app: 'web' }, labels)).toBe(true);
    expect(mapMatches({ app: 'web', zone: 'a' }, labels)).toBe(false);
  });
  it('parses k=v lists', () => {
    expect(parseLabels('a=1, b=x=y')).toEqual({ a: '1', b: 'x=y' });
    expect(() => parseLabels('novalue')).toThrow(/key=value/);
  });
});
