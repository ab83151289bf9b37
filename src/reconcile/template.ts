// The template language of context files: `{{ node.zone }}`, `{{ values.cacheHost }}`,
// `{{ node.labels["topology.kubernetes.io/region"] | default "eu" }}`. Deliberately tiny and
// strict: no code, no loops, no access beyond the data the operator passes (node, vm, values),
// and a missing value is an error, never a silent empty string. See docs/templates.md.
import { didYouMean } from '../crds/validate.js';

export const TEMPLATE_ROOTS = ['node', 'vm', 'values'] as const;
export type TemplateRoot = (typeof TEMPLATE_ROOTS)[number];

export class TemplateError extends Error {
  override readonly name = 'TemplateError';
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`line ${line}, column ${column}: ${message}`);
  }
}

type Filter = { name: 'default'; arg: string } | { name: 'lower' } | { name: 'upper' };
type Expression = { kind: 'ref'; root: TemplateRoot; keys: string[]; source: string } | { kind: 'string'; value: string };
type Part = { kind: 'text'; text: string } | { kind: 'expr'; expr: Expression; filters: Filter[]; line: number; column: number };

export interface ParsedTemplate {
  readonly parts: readonly Part[];
  /** Roots the template reads: a template that reads `node` must be re-rendered when the VM moves. */
  readonly roots: ReadonlySet<TemplateRoot>;
}

export type TemplateData = { readonly [K in TemplateRoot]: unknown };

/** The fields of vm and node a template can read (render.ts fills them); labels and annotations are maps. */
export const TEMPLATE_FIELDS: { readonly [K in Exclude<TemplateRoot, 'values'>]: readonly string[] } = {
  vm: ['name', 'namespace', 'labels'],
  node: ['name', 'zone', 'region', 'labels', 'annotations'],
};
const MAP_FIELDS = new Set(['labels', 'annotations']);

export interface TemplateReference {
  readonly root: TemplateRoot;
  readonly keys: readonly string[];
  /** As written, e.g. vm.nmae or node.labels["zone"]. */
  readonly source: string;
  readonly line: number;
  readonly column: number;
  /** Has a `| default "…"`: an unset value is then not an error. */
  readonly defaulted: boolean;
}

export function templateReferences(template: ParsedTemplate): TemplateReference[] {
  return template.parts.flatMap((part) =>
    part.kind === 'expr' && part.expr.kind === 'ref'
      ? [{ root: part.expr.root, keys: part.expr.keys, source: part.expr.source, line: part.line, column: part.column, defaulted: part.filters.some((f) => f.name === 'default') }]
      : [],
  );
}

/**
 * Why a reference to vm or node can never have a value (a typo, a map without a key), or
 * undefined. values.* is checked against the layer's values by the caller.
 */
export function referenceProblem(reference: TemplateReference): string | undefined {
  if (reference.root === 'values') return reference.keys.length === 1 ? undefined : `${reference.source}: write values.NAME (one name; values are strings)`;
  const known = TEMPLATE_FIELDS[reference.root];
  const [field, ...rest] = reference.keys;
  if (field === undefined) return `${reference.source} is not a value: name a field (${known.map((k) => `${reference.root}.${k}`).join(', ')})`;
  if (!known.includes(field)) {
    const guess = didYouMean(field, known);
    return `unknown name ${reference.root}.${field}${guess ? ` (did you mean ${reference.root}.${guess}?)` : ''}; ${reference.root} has ${known.join(', ')}`;
  }
  if (MAP_FIELDS.has(field) && rest.length !== 1) return `${reference.source}: ${reference.root}.${field} is a map; name one key, e.g. ${reference.root}.${field}["app"]`;
  if (!MAP_FIELDS.has(field) && rest.length > 0) return `${reference.source}: ${reference.root}.${field} is a string and has no fields`;
  return undefined;
}

export function parseTemplate(source: string): ParsedTemplate {
  const parts: Part[] = [];
  const roots = new Set<TemplateRoot>();
  let cursor = 0;
  const positionOf = positions(source);
  while (cursor < source.length) {
    const open = source.indexOf('{{', cursor);
    if (open < 0) {
      parts.push({ kind: 'text', text: source.slice(cursor) });
      break;
    }
    if (open > cursor) parts.push({ kind: 'text', text: source.slice(cursor, open) });
    const { line, column } = positionOf(open);
    const close = findClose(source, open + 2);
    if (close < 0) throw new TemplateError('unclosed {{', line, column);
    const { expr, filters } = parseExpression(source.slice(open + 2, close), line, column);
    if (expr.kind === 'ref') roots.add(expr.root);
    parts.push({ kind: 'expr', expr, filters, line, column });
    cursor = close + 2;
  }
  return { parts, roots };
}

export function renderTemplate(template: ParsedTemplate, data: TemplateData): string {
  let out = '';
  for (const part of template.parts) {
    if (part.kind === 'text') {
      out += part.text;
      continue;
    }
    let value: string | undefined = part.expr.kind === 'string' ? part.expr.value : lookup(data, part.expr.root, part.expr.keys);
    for (const filter of part.filters) {
      if (filter.name === 'default') value = value === undefined || value === '' ? filter.arg : value;
      else if (value !== undefined) value = filter.name === 'lower' ? value.toLowerCase() : value.toUpperCase();
    }
    if (value === undefined) {
      const source = part.expr.kind === 'ref' ? part.expr.source : '';
      throw new TemplateError(`${source} is not set (add | default "…" or set it)`, part.line, part.column);
    }
    out += value;
  }
  return out;
}

function lookup(data: TemplateData, root: TemplateRoot, keys: readonly string[]): string | undefined {
  let current: unknown = data[root];
  for (const key of keys) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  if (typeof current === 'string') return current;
  if (typeof current === 'number' || typeof current === 'boolean') return String(current);
  return undefined; // maps and lists are not printable values
}

function findClose(source: string, from: number): number {
  let quote: string | undefined;
  for (let i = from; i < source.length - 1; i++) {
    const c = source[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '}' && source[i + 1] === '}') return i;
  }
  return -1;
}

/**
 * Line and column of increasing offsets, scanning each character once: a file of many small
 * expressions must not cost O(n²) (26 000 expressions in 256 KiB took a minute, long enough to
 * block the operator's event loop past its leader lease).
 */
function positions(source: string): (offset: number) => { line: number; column: number } {
  let scanned = 0;
  let line = 1;
  let lineStart = 0;
  return (offset) => {
    for (; scanned < offset; scanned++) {
      if (source.charCodeAt(scanned) === 10) {
        line++;
        lineStart = scanned + 1;
      }
    }
    return { line, column: offset - lineStart + 1 };
  };
}

/** A small hand-written tokenizer: identifiers, strings, '.', '[', ']', '|'. */
function parseExpression(text: string, line: number, column: number): { expr: Expression; filters: Filter[] } {
  const fail: (message: string) => never = (message) => {
    throw new TemplateError(`${message} in {{${text}}}`, line, column);
  };
  const tokens = tokenize(text, fail);
  let i = 0;
  const peek = () => tokens[i];
  const next = () => tokens[i++] ?? fail('unexpected end of expression');

  let expr: Expression;
  const first = next();
  if (first.type === 'string') expr = { kind: 'string', value: first.value };
  else if (first.type === 'ident') {
    if (!(TEMPLATE_ROOTS as readonly string[]).includes(first.value)) fail(`unknown name "${first.value}" (use node, vm or values)`);
    const keys: string[] = [];
    while (peek() && (peek()!.type === '.' || peek()!.type === '[')) {
      const sep = next();
      if (sep.type === '.') {
        const key = next();
        if (key.type !== 'ident') fail('expected a name after "."');
        keys.push(key.value);
      } else {
        const key = next();
        if (key.type !== 'string') fail('expected a quoted key inside [ ]');
        keys.push(key.value);
        if (next().type !== ']') fail('expected ]');
      }
    }
    expr = { kind: 'ref', root: first.value as TemplateRoot, keys, source: text.split('|')[0]!.trim() };
  } else return fail('expected a name or a quoted string');

  const filters: Filter[] = [];
  while (peek()) {
    if (next().type !== '|') fail('expected | before a filter');
    const name = next();
    if (name.type !== 'ident') fail('expected a filter name after |');
    if (name.value === 'default') {
      const arg = next();
      if (arg.type !== 'string') fail('default needs a quoted string');
      filters.push({ name: 'default', arg: arg.value });
    } else if (name.value === 'lower' || name.value === 'upper') filters.push({ name: name.value });
    else fail(`unknown filter "${name.value}" (default, lower, upper)`);
  }
  return { expr, filters };
}

type Token = { type: 'ident' | 'string'; value: string } | { type: '.' | '[' | ']' | '|'; value?: undefined };

function tokenize(text: string, fail: (message: string) => never): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) i++;
    else if (c === '.' || c === '[' || c === ']' || c === '|') {
      tokens.push({ type: c });
      i++;
    } else if (c === '"' || c === "'") {
      let value = '';
      i++;
      while (i < text.length && text[i] !== c) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i];
        i++;
      }
      if (i >= text.length) fail('unterminated string');
      i++;
      tokens.push({ type: 'string', value });
    } else {
      const match = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(text.slice(i));
      if (!match) fail(`unexpected character "${c}"`);
      tokens.push({ type: 'ident', value: match![0] });
      i += match![0].length;
    }
  }
  if (tokens.length === 0) fail('empty expression');
  return tokens;
}
