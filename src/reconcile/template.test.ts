import { describe, expect, it } from 'vitest';
import { parseTemplate, renderTemplate, TemplateError, type TemplateData } from './template.js';

const data: TemplateData = {
  node: { name: 'node-a', zone: 'zone-a', labels: { 'topology.kubernetes.io/zone': 'zone-a' } },
  vm: { name: 'vm1', namespace: 'ns', labels: {} },
  values: { cacheHost: 'cache-a', empty: '' },
};
const render = (source: string) => renderTemplate(parseTemplate(source), data);

describe('template', () => {
  it('substitutes node, vm and values, with bracket keys', () => {
    expect(render('{{ vm.name }}@{{node.name}} {{ node.labels["topology.kubernetes.io/zone"] }} {{ values.cacheHost }}')).toBe('vm1@node-a zone-a cache-a');
  });

  it('leaves text without expressions alone, including single braces', () => {
    expect(render('a { b } c')).toBe('a { b } c');
  });

  it('fails on missing values instead of rendering an empty string', () => {
    expect(() => render('x = {{ values.nope }}')).toThrow(/values.nope is not set/);
    expect(() => render('{{ node.labels["missing"] }}')).toThrow(TemplateError);
  });

  it('applies default, lower and upper', () => {
    expect(render('{{ values.nope | default "x" }} {{ values.empty | default "e" }} {{ node.zone | upper }} {{ "ABC" | lower }}')).toBe('x e ZONE-A abc');
  });

  it('allows a literal {{ through a string expression', () => {
    expect(render('{{ "{{" }} not a template }}')).toBe('{{ not a template }}');
  });

  it('reports the roots a template reads', () => {
    expect([...parseTemplate('{{ values.a }} {{ vm.name }}').roots].sort()).toEqual(['values', 'vm']);
    expect(parseTemplate('{{ node.zone }}').roots.has('node')).toBe(true);
  });

  it.each([
    ['{{ values.a', /unclosed/],
    ['{{ }}', /empty expression/],
    ['{{ secret.token }}', /unknown name "secret"/],
    ['{{ process.env.HOME }}', /unknown name "process"/],
    ['{{ values.a | shell "rm" }}', /unknown filter "shell"/],
    ['{{ values.a b }}', /expected \| before a filter/],
    ['{{ values[1] }}', /unexpected character "1"|quoted key/],
    ['{{ "abc }}', /unclosed|unterminated/],
  ])('rejects %s with a position', (source, message) => {
    expect(() => parseTemplate(source)).toThrow(message);
  });

  it('gives line and column of the failing expression', () => {
    try {
      render('line one\n  x = {{ values.nope }}');
      expect.unreachable();
    } catch (error: unknown) {
      expect(error).toBeInstanceOf(TemplateError);
      expect((error as TemplateError).line).toBe(2);
      expect((error as TemplateError).column).toBe(7);
    }
  });

  it('parses many expressions in linear time, with their positions', () => {
    // 256 KiB (a file's limit) of small expressions: was quadratic, a minute of blocked event loop.
    // No stopwatch here (speed is measured by benches): the quadratic parser took about a minute
    // on this input, far past this test's timeout; the linear one takes milliseconds.
    const source = '{{ "x" }}\n'.repeat(26_000);
    const parsed = parseTemplate(source);
    expect(parsed.parts.filter((p) => p.kind === 'expr')).toHaveLength(26_000);
    expect(() => parseTemplate(`${source}  {{ nope }}`)).toThrow(/^line 26001, column 3: /);
    expect(() => parseTemplate('a {{ "x" }} b {{ nope }}')).toThrow(/^line 1, column 15: /);
  }, 15_000);

  it('does not walk into prototypes', () => {
    expect(() => render('{{ values.constructor }}')).toThrow(/not set/);
    expect(() => render('{{ values["__proto__"] }}')).toThrow(/not set/);
  });
});
