import { describe, expect, it } from 'vitest';
import { checkQueryTemplate, escapeRegex, escapeString, substituteIdentity, QueryTemplateError } from './promql.js';

const vm = { name: 'web-1', namespace: 'shop' };

describe('substituteIdentity', () => {
  it('substitutes name and namespace, whitespace-tolerant', () => {
    expect(substituteIdentity('x{name="{{ vm.name }}",namespace="{{vm.namespace}}"}', vm)).toBe('x{name="web-1",namespace="shop"}');
    expect(substituteIdentity('x{a="{{   vm.name\t}}"}', vm)).toBe('x{a="web-1"}');
    expect(substituteIdentity("x{a='{{ vm.name }}'}", vm)).toBe("x{a='web-1'}");
    expect(substituteIdentity('x{a=`{{ vm.name }}`}', vm)).toBe('x{a=`web-1`}');
  });

  it('works on the example policies', () => {
    expect(
      substituteIdentity('histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{vm="{{ vm.name }}"}[2m])))', vm),
    ).toBe('histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{vm="web-1"}[2m])))');
    expect(substituteIdentity('max(job_queue_grade{vm="{{ vm.name }}"})', vm)).toBe('max(job_queue_grade{vm="web-1"})');
  });

  it('leaves a template without placeholders alone, and {{ that is not a vm placeholder', () => {
    expect(substituteIdentity('sum(rate(x[5m]))', vm)).toBe('sum(rate(x[5m]))');
    expect(substituteIdentity('x{a="{{ not ours }}"}', vm)).toBe('x{a="{{ not ours }}"}');
  });

  it('keeps escapes already in the template', () => {
    expect(substituteIdentity('x{a="q\\"{{ vm.name }}\\\\"}', vm)).toBe('x{a="q\\"web-1\\\\"}');
  });

  describe('injection attempts cannot leave the string literal', () => {
    const attempts = [
      '"} or vm_cpu{name=~".+',
      'a",namespace=~".*',
      '\\"} or up{x="',
      'x\\',
      "'} or up{x='",
      'line\nbreak',
      'tab\tand\u0001control',
    ];
    for (const name of attempts) {
      it(`double-quoted: ${JSON.stringify(name)}`, () => {
        const out = substituteIdentity('vm_cpu{name="{{ vm.name }}"}', { name, namespace: 'ns' });
        expect(out.startsWith('vm_cpu{name="')).toBe(true);
        expect(out.endsWith('"}')).toBe(true);
        expect(goUnquote(out.slice('vm_cpu{name='.length, -1))).toBe(name);
      });
      it(`single-quoted: ${JSON.stringify(name)}`, () => {
        const out = substituteIdentity("vm_cpu{name='{{ vm.name }}'}", { name, namespace: 'ns' });
        expect(goUnquote(out.slice('vm_cpu{name='.length, -1))).toBe(name);
      });
    }
  });

  it('escapes regex metacharacters after =~ and !~, so a name matches only itself', () => {
    expect(substituteIdentity('x{name=~"{{ vm.name }}"}', { name: '.*', namespace: 'ns' })).toBe('x{name=~"\\\\.\\\\*"}');
    expect(substituteIdentity('x{name !~ "{{ vm.name }}"}', { name: 'a.b', namespace: 'ns' })).toBe('x{name !~ "a\\\\.b"}');
    expect(substituteIdentity('x{name=~"prefix-{{ vm.name }}-.*"}', { name: 'a|b', namespace: 'ns' })).toBe('x{name=~"prefix-a\\\\|b-.*"}');
    // Not after = (equality): the dot stays as is.
    expect(substituteIdentity('x{name="{{ vm.name }}"}', { name: 'a.b', namespace: 'ns' })).toBe('x{name="a.b"}');
    // Unquoted by Prometheus, the regex is a\.b: a literal dot.
    const out = substituteIdentity('x{name=~"{{ vm.name }}"}', { name: 'a.b', namespace: 'ns' });
    expect(new RegExp(`^(?:${goUnquote(out.slice('x{name=~'.length, -1))})$`).test('axb')).toBe(false);
  });

  it('refuses a placeholder outside a string literal', () => {
    expect(() => substituteIdentity('vm_cpu_{{ vm.name }}', vm)).toThrow(QueryTemplateError);
    expect(() => substituteIdentity('x{name="a"} or {{ vm.name }}', vm)).toThrow(/outside a string literal/);
    // After a string closed.
    expect(() => substituteIdentity('x{name="a",b=""}{{ vm.name }}', vm)).toThrow(QueryTemplateError);
  });

  it('refuses unknown and malformed placeholders', () => {
    expect(() => substituteIdentity('x{a="{{ vm.uid }}"}', vm)).toThrow(/unknown placeholder \{\{ vm\.uid \}\}/);
    expect(() => substituteIdentity('x{a="{{ vm.name | upper }}"}', vm)).toThrow(/malformed placeholder/);
  });

  it('refuses a backtick in a value for a raw string', () => {
    expect(() => substituteIdentity('x{a=`{{ vm.name }}`}', { name: 'a`} or up{b=`', namespace: 'ns' })).toThrow(/backtick/);
  });

  it('removes line breaks in comments (a break would end the comment)', () => {
    expect(substituteIdentity('x # for {{ vm.name }}\n+ 1', { name: 'a\nup', namespace: 'ns' })).toBe('x # for a up\n+ 1');
  });

  it('tracks quotes inside comments and other quote kinds correctly', () => {
    // A double quote inside a single-quoted string does not open a string.
    expect(substituteIdentity(`x{a='"',b="{{ vm.name }}"}`, { name: 'q"', namespace: 'ns' })).toBe(`x{a='"',b="q\\""}`);
    // A quote in a comment does not open a string: the placeholder after it is outside one.
    expect(() => substituteIdentity('x # it\'s\n{{ vm.name }}', vm)).toThrow(QueryTemplateError);
  });
});

describe('checkQueryTemplate', () => {
  it('accepts usable templates and explains unusable ones', () => {
    expect(checkQueryTemplate('avg(x{name="{{ vm.name }}",namespace="{{ vm.namespace }}"})')).toBeUndefined();
    expect(checkQueryTemplate('x{{ vm.name }}')).toMatch(/outside a string literal/);
    expect(checkQueryTemplate('x{a="{{ vm.node }}"}')).toMatch(/unknown placeholder/);
  });
});

describe('escapes', () => {
  it('escapeString', () => {
    expect(escapeString('a"b\'c\\d', '"')).toBe('a\\"b\'c\\\\d');
    expect(escapeString('a"b\'c', "'")).toBe('a"b\\\'c');
    expect(escapeString('\u0000\u007f\r', '"')).toBe('\\x00\\x7f\\r');
    expect(escapeString('ünï→', '"')).toBe('ünï→');
  });
  it('escapeRegex', () => {
    expect(escapeRegex('a.b*c+d?e(f)g|h[i]j{k}l^m$n\\o')).toBe('a\\.b\\*c\\+d\\?e\\(f\\)g\\|h\\[i\\]j\\{k\\}l\\^m\\$n\\\\o');
  });
});

/** Go's strconv.Unquote for "…" and '…' strings, as Prometheus' lexer/parser reads them. */
function goUnquote(literal: string): string {
  const quote = literal[0]!;
  expect(['"', "'"]).toContain(quote);
  expect(literal.at(-1)).toBe(quote);
  let out = '';
  for (let i = 1; i < literal.length - 1; i++) {
    const c = literal[i]!;
    if (c === quote) throw new Error(`unescaped ${quote} at ${i} in ${literal}`);
    if (c === '\n') throw new Error(`raw line break in ${literal}`);
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = literal[++i]!;
    const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', [quote]: quote };
    if (e in simple) out += simple[e];
    else if (e === 'x') {
      out += String.fromCharCode(parseInt(literal.slice(i + 1, i + 3), 16));
      i += 2;
    } else throw new Error(`unknown escape \\${e} in ${literal}`);
  }
  return out;
}
