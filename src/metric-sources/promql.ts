// Substitution of a VM's identity into a PromQL query template ({{ vm.name }}, {{ vm.namespace }}).
//
// A VM's name is data, never PromQL: the template is lexed (as Prometheus' lexer does: strings in
// "…", '…' and `…`, comments from # to the end of the line) and each placeholder is escaped for
// the place it stands in:
//   - inside "…" or '…': backslashes, the enclosing quote and control characters are escaped, so
//     the value cannot close the string;
//   - inside a string that is the right-hand side of a regex matcher (=~ or !~): RE2
//     metacharacters are escaped first, so a name like `.*` matches only itself (and `a.b` does
//     not match `axb`);
//   - inside `…` (raw strings have no escapes): a value containing a backtick is refused;
//   - outside any string: refused — a placeholder must stand inside a string literal;
//   - inside a comment: line breaks are removed (they would end the comment).
import type { VMIdentity } from './source.js';

/** A query template that cannot be used (bad placeholder, placeholder outside a string). */
export class QueryTemplateError extends Error {
  override readonly name = 'QueryTemplateError';
}

const PLACEHOLDER = /\{\{\s*vm\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/y;
const LOOSE_PLACEHOLDER = /\{\{\s*vm\b[^}]*\}\}/y;
const KEYS = ['name', 'namespace'] as const;
type Key = (typeof KEYS)[number];

type Context = { kind: 'code' } | { kind: 'comment' } | { kind: 'string'; quote: '"' | "'" | '`'; regex: boolean };

/**
 * The query with the VM's identity substituted, each value escaped for where it stands (see the
 * file comment). Throws QueryTemplateError for an unknown placeholder ({{ vm.uid }}), a placeholder
 * outside a string literal, or a value a raw string cannot hold.
 */
export function substituteIdentity(query: string, vm: VMIdentity): string {
  return render(query, (key) => vm[key]);
}

/**
 * Why the template cannot be used, or undefined when it can: for a policy's status condition
 * before any VM is sampled. Does not parse the PromQL itself (Prometheus does, QueryError).
 */
export function checkQueryTemplate(query: string): string | undefined {
  try {
    render(query, () => 'x');
    return undefined;
  } catch (error: unknown) {
    if (error instanceof QueryTemplateError) return error.message;
    throw error;
  }
}

function render(query: string, value: (key: Key) => string): string {
  let out = '';
  let context: Context = { kind: 'code' };
  let i = 0;
  while (i < query.length) {
    const c = query[i]!;
    if (c === '{' && query[i + 1] === '{') {
      PLACEHOLDER.lastIndex = i;
      const match = PLACEHOLDER.exec(query);
      if (match) {
        const key = match[1]!;
        if (!(KEYS as readonly string[]).includes(key)) {
          throw new QueryTemplateError(`unknown placeholder {{ vm.${key} }} at offset ${i}: only {{ vm.name }} and {{ vm.namespace }} are substituted`);
        }
        out += place(value(key as Key), context, key, i);
        i += match[0].length;
        continue;
      }
      LOOSE_PLACEHOLDER.lastIndex = i;
      const loose = LOOSE_PLACEHOLDER.exec(query);
      if (loose) throw new QueryTemplateError(`malformed placeholder ${loose[0]} at offset ${i}: write {{ vm.name }} or {{ vm.namespace }}`);
    }
    out += c;
    i += 1;
    switch (context.kind) {
      case 'code':
        if (c === '"' || c === "'" || c === '`') context = { kind: 'string', quote: c, regex: /[=!]~\s*$/.test(out.slice(0, -1)) };
        else if (c === '#') context = { kind: 'comment' };
        break;
      case 'comment':
        if (c === '\n') context = { kind: 'code' };
        break;
      case 'string':
        if (c === '\\' && context.quote !== '`' && i < query.length) {
          // An escape in the template itself: copy the escaped character verbatim.
          out += query[i]!;
          i += 1;
        } else if (c === context.quote) {
          context = { kind: 'code' };
        }
        break;
    }
  }
  return out;
}

function place(raw: string, context: Context, key: string, offset: number): string {
  switch (context.kind) {
    case 'comment':
      return raw.replace(/[\r\n]/g, ' ');
    case 'code':
      throw new QueryTemplateError(`{{ vm.${key} }} at offset ${offset} stands outside a string literal: write it inside quotes, e.g. name="{{ vm.${key} }}"`);
    case 'string': {
      const value = context.regex ? escapeRegex(raw) : raw;
      if (context.quote === '`') {
        if (value.includes('`')) throw new QueryTemplateError(`the VM's ${key} contains a backtick, which a raw string (\`…\`) cannot hold: use "…" in the query`);
        return value;
      }
      return escapeString(value, context.quote);
    }
  }
}

/** RE2 metacharacters escaped so the value matches itself only (Prometheus anchors the regex). */
export function escapeRegex(value: string): string {
  return value.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

/** The value as the inside of a PromQL "…" or '…' literal (Go string escapes). */
export function escapeString(value: string, quote: '"' | "'"): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}
