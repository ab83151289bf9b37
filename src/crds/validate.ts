// Offline validation of recontext objects: the same checks the API server applies (structural
// schema, strict unknown fields, CEL x-kubernetes-validations), run without a cluster, so GitOps
// repositories can be checked in CI. The CEL rules are evaluated from the schemas themselves
// (cel-js), not re-implemented, so the two cannot drift apart.
import { evaluate } from '@marcbachmann/cel-js';
import type { TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import { closestMatch } from 'leven';
import { API_VERSION, GROUP, RESOURCES, resourceByKind, type ResourceDefinition } from './index.js';
import { OBJECT_NAME_PATTERN, type CelRule } from './kit.js';

/** One problem with one field of one object. `path` is a dotted field path, e.g. spec.files[0].path. */
export interface FieldProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

export type ObjectVerdict =
  | { readonly kind: 'ours'; readonly resource: ResourceDefinition; readonly problems: readonly FieldProblem[] }
  | { readonly kind: 'foreign' };

/**
 * Validates one decoded document. Objects of other API groups are `foreign` (a GitOps directory
 * holds ConfigMaps, VirtualMachines …); an object that claims our group or one of our kinds is
 * checked in full.
 */
export function validateObject(object: unknown): ObjectVerdict {
  if (!isRecord(object)) return { kind: 'ours', resource: RESOURCES[0]!, problems: [{ path: [], message: 'document is not a mapping' }] };
  const apiVersion = object.apiVersion;
  const kindName = object.kind;
  const resource = typeof kindName === 'string' ? resourceByKind(kindName) : undefined;
  const claimsGroup = typeof apiVersion === 'string' && apiVersion.split('/')[0] === GROUP;
  if (!claimsGroup && !(resource && typeof apiVersion === 'string' && /recontext/i.test(apiVersion))) return { kind: 'foreign' };
  if (!resource) {
    return {
      kind: 'ours',
      resource: RESOURCES[0]!,
      problems: [{ path: ['kind'], message: `unknown kind ${JSON.stringify(kindName)}; expected one of ${RESOURCES.map((r) => r.kind).join(', ')}` }],
    };
  }
  const problems: FieldProblem[] = [];
  if (apiVersion !== API_VERSION) problems.push({ path: ['apiVersion'], message: `unsupported apiVersion ${JSON.stringify(apiVersion)}; expected ${API_VERSION}` });
  problems.push(...metadataProblems(object.metadata));
  for (const key of Object.keys(object)) {
    if (!TOP_LEVEL_FIELDS.includes(key)) problems.push({ path: [key], message: unknownField(key, TOP_LEVEL_FIELDS) });
  }
  if (object.spec === undefined) problems.push({ path: ['spec'], message: 'required field is missing' });
  else problems.push(...schemaProblems(resource.spec, object.spec, ['spec']));
  return { kind: 'ours', resource, problems };
}

const TOP_LEVEL_FIELDS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

/**
 * `unknown field "prio" (did you mean "priority"?)`: a prefix of a known field (an abbreviation),
 * else the closest known field within an edit distance of about a third of the name (a typo).
 */
export function unknownField(name: string, known: readonly string[]): string {
  const suggestion = didYouMean(name, known);
  return `unknown field "${name}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`;
}

export function didYouMean(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const byPrefix = lower.length >= 3 ? known.filter((k) => k.toLowerCase().startsWith(lower)) : [];
  if (byPrefix.length === 1) return byPrefix[0];
  return closestMatch(name, known, { maxDistance: Math.max(2, Math.floor(name.length / 3)) });
}

/** metav1.ObjectMeta's fields: the API server's strict decoding refuses any other. */
const OBJECT_META_FIELDS = new Set([
  'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp',
  'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields',
]);

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** A label or annotation key, as the API server checks it (prefix/name). */
function isQualifiedName(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !new RegExp(OBJECT_NAME_PATTERN).test(prefix))) return false;
  return name.length > 0 && LABEL_VALUE.test(name);
}

function metadataProblems(metadata: unknown): FieldProblem[] {
  if (!isRecord(metadata)) return [{ path: ['metadata'], message: 'required field is missing (metadata.name)' }];
  const problems: FieldProblem[] = [];
  const name = metadata.name;
  if (typeof name !== 'string' || name.length === 0) {
    if (metadata.generateName === undefined) problems.push({ path: ['metadata', 'name'], message: 'required field is missing' });
  } else if (name.length > 253 || !new RegExp(OBJECT_NAME_PATTERN).test(name)) {
    problems.push({
      path: ['metadata', 'name'],
      message: 'must be a lowercase RFC 1123 subdomain (a-z, 0-9, "-" and ".", at most 253 characters, starting and ending alphanumeric)',
    });
  }
  const namespace = metadata.namespace;
  if (namespace !== undefined && (typeof namespace !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace))) {
    problems.push({ path: ['metadata', 'namespace'], message: 'must be a lowercase RFC 1123 label (at most 63 characters)' });
  }
  for (const key of Object.keys(metadata)) {
    if (!OBJECT_META_FIELDS.has(key)) problems.push({ path: ['metadata', key], message: unknownField(key, [...OBJECT_META_FIELDS]) });
  }
  for (const field of ['labels', 'annotations'] as const) {
    const map = metadata[field];
    if (map === undefined) continue;
    if (!isRecord(map) || Object.values(map).some((v) => typeof v !== 'string')) {
      problems.push({ path: ['metadata', field], message: 'must be a map of strings' });
      continue;
    }
    for (const [key, value] of Object.entries(map)) {
      if (!isQualifiedName(key)) problems.push({ path: ['metadata', field, key], message: 'key must be a qualified name: an optional DNS subdomain prefix and "/", then at most 63 alphanumerics, "-", "_" or ".", starting and ending alphanumeric' });
      else if (field === 'labels' && !LABEL_VALUE.test(value as string)) problems.push({ path: ['metadata', field, key], message: 'value must be empty or at most 63 alphanumerics, "-", "_" or ".", starting and ending alphanumeric' });
    }
  }
  return problems;
}

/**
 * Structural validation, then CEL. Defaults are applied first, as the API server does. CEL rules
 * run only on subtrees without structural errors (their types would not be what the rule assumes).
 */
export function schemaProblems(schema: TSchema, value: unknown, prefix: readonly (string | number)[]): FieldProblem[] {
  const defaulted = withDefaults(schema, withoutNullFields(structuredClone(value)));
  const structural = oncePerMissingField([...Value.Errors(schema, defaulted)].filter(isReportable).map((e) => structuralProblem(e, prefix)));
  const brokenPaths = structural.map((p) => p.path.join('\u0000'));
  const cel: FieldProblem[] = [];
  walkRules(schema, defaulted, [...prefix], (rules, node, path) => {
    const key = path.join('\u0000');
    if (brokenPaths.some((broken) => broken === key || broken.startsWith(key + '\u0000'))) return;
    for (const rule of rules) {
      const outcome = evaluateRule(rule, schemaOf(node), node.value);
      if (outcome !== true) {
        const at = rule.fieldPath ? [...path, ...rule.fieldPath.split('.').filter(Boolean)] : path;
        cel.push({ path: at, message: outcome === false ? rule.message : `${rule.message} (rule could not be evaluated: ${outcome})` });
      }
    }
  });
  return dedupe([...structural, ...cel]);
}

/**
 * Fills in the defaults of absent fields, as the API server does. Not TypeBox's Value.Default: it
 * also replaces a present value of the wrong type with the default (`template: "yes"` became
 * false, `recontextOn: {}` the default list), hiding errors the server reports.
 */
function withDefaults(schema: TSchema, value: unknown): unknown {
  const s = schema as unknown as Record<string, unknown>;
  if (s.type === 'object' && isRecord(value)) {
    for (const [name, child] of Object.entries((s.properties as Record<string, Record<string, unknown>> | undefined) ?? {})) {
      if (value[name] === undefined && child.default !== undefined) value[name] = structuredClone(child.default);
      else if (value[name] !== undefined) value[name] = withDefaults(child as unknown as TSchema, value[name]);
    }
    if (isRecord(s.additionalProperties)) {
      const properties = (s.properties as Record<string, unknown> | undefined) ?? {};
      for (const name of Object.keys(value)) if (!(name in properties)) value[name] = withDefaults(s.additionalProperties as unknown as TSchema, value[name]);
    }
  }
  if (s.type === 'array' && Array.isArray(value)) return value.map((item) => withDefaults(s.items as TSchema, item));
  return value;
}

/**
 * The API server drops object fields whose value is null (none of ours is nullable) before it
 * validates, so `values:` with nothing under it, as templating often leaves, means "not set".
 */
function withoutNullFields(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNullFields);
  if (!isRecord(value)) return value;
  for (const key of Object.keys(value)) {
    if (value[key] === null) delete value[key];
    else value[key] = withoutNullFields(value[key]);
  }
  return value;
}

type Node = { schema: Record<string, unknown>; value: unknown };
const schemaOf = (node: Node) => node.schema;

function walkRules(
  schema: TSchema,
  value: unknown,
  path: (string | number)[],
  visit: (rules: readonly CelRule[], node: Node, path: (string | number)[]) => void,
): void {
  const s = schema as unknown as Record<string, unknown>;
  if (value === undefined) return;
  const rules = s['x-kubernetes-validations'] as readonly CelRule[] | undefined;
  if (rules?.length) visit(rules, { schema: s, value }, path);
  if (s.type === 'object' && isRecord(value)) {
    const properties = (s.properties as Record<string, TSchema> | undefined) ?? {};
    for (const [name, child] of Object.entries(properties)) walkRules(child, value[name], [...path, name], visit);
    if (isRecord(s.additionalProperties)) {
      for (const [name, child] of Object.entries(value)) {
        if (!(name in properties)) walkRules(s.additionalProperties as unknown as TSchema, child, [...path, name], visit);
      }
    }
  }
  if (s.type === 'array' && Array.isArray(value)) value.forEach((item, i) => walkRules(s.items as TSchema, item, [...path, i], visit));
}

/** true when the rule holds, false when it does not, or the evaluation error text. */
function evaluateRule(rule: CelRule, schema: Record<string, unknown>, value: unknown): boolean | string {
  try {
    return evaluate(rule.rule, { self: toCel(schema, value) }) === true;
  } catch (error: unknown) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** CEL distinguishes int from double: integer-typed fields become BigInt, as Kubernetes types them. */
function toCel(schema: Record<string, unknown> | undefined, value: unknown): unknown {
  if (schema?.type === 'integer' && typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (Array.isArray(value)) return value.map((item) => toCel(schema?.items as Record<string, unknown> | undefined, item));
  if (isRecord(value)) {
    const properties = (schema?.properties as Record<string, Record<string, unknown>> | undefined) ?? {};
    const extra = isRecord(schema?.additionalProperties) ? (schema.additionalProperties as Record<string, unknown>) : undefined;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCel(properties[k] ?? extra, v)]));
  }
  return value;
}

// TypeBox reports a failed union/object twice (the member and the parent); keep the precise ones.
// It measures strings in UTF-16 code units; the API server counts characters (code points), so a
// length error stands only if the characters are too many (or too few) as well.
function isReportable(error: ValueError): boolean {
  if (error.type === ValueErrorType.StringMaxLength) return characters(error.value as string) > Number((error.schema as { maxLength?: number }).maxLength);
  if (error.type === ValueErrorType.StringMinLength) return characters(error.value as string) < Number((error.schema as { minLength?: number }).minLength);
  return error.type !== ValueErrorType.Intersect && error.type !== ValueErrorType.Union;
}

/** Length as the API server measures a string: code points (an emoji is one, not two). */
export function characters(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

function structuralProblem(error: ValueError, prefix: readonly (string | number)[]): FieldProblem & { missing?: boolean } {
  const path = [...prefix, ...pointerToPath(error.path)];
  const schema = error.schema as unknown as Record<string, unknown>;
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return { path, message: unknownField(String(path[path.length - 1]), Object.keys((schema.properties as Record<string, unknown> | undefined) ?? {})) };
    case ValueErrorType.ObjectRequiredProperty:
      // TypeBox hands over the missing field's own schema here.
      return { path, message: `required field is missing (${expected(schema)})`, missing: true };
    case ValueErrorType.Kind:
      if (Array.isArray(schema.enum)) return { path, message: `must be one of: ${(schema.enum as string[]).join(', ')} (got ${JSON.stringify(error.value)})` };
      return { path, message: error.message };
    case ValueErrorType.StringMaxLength:
      return { path, message: `must be at most ${String(schema.maxLength)} characters (got ${String(characters(error.value as string))})` };
    case ValueErrorType.StringMinLength:
      return { path, message: `must be at least ${String(schema.minLength)} characters` };
    case ValueErrorType.StringPattern:
      return { path, message: `must match the pattern ${String(schema.pattern)}` };
    case ValueErrorType.ArrayMaxItems:
      return { path, message: `must have at most ${String(schema.maxItems)} items (got ${String((error.value as unknown[]).length)})` };
    case ValueErrorType.ArrayMinItems:
      return { path, message: `must have at least ${String(schema.minItems)} items` };
    case ValueErrorType.ObjectMaxProperties:
      return { path, message: `must have at most ${String(schema.maxProperties)} entries` };
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return { path, message: `must be at most ${String(schema.maximum)} (got ${String(error.value)})` };
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return { path, message: `must be at least ${String(schema.minimum)} (got ${String(error.value)})` };
    case ValueErrorType.Integer:
      return { path, message: `must be an integer (got ${JSON.stringify(error.value)})` };
    case ValueErrorType.String:
    case ValueErrorType.Number:
    case ValueErrorType.Boolean:
    case ValueErrorType.Object:
    case ValueErrorType.Array:
      return { path, message: `must be of type ${String(schema.type)} (got ${describeType(error.value)})` };
    default:
      return { path, message: error.message };
  }
}

/** What a field takes, for "required field is missing (a number from 0 to 100)". */
function expected(schema: Record<string, unknown>): string {
  if (Array.isArray(schema.enum)) return `one of: ${(schema.enum as string[]).join(', ')}`;
  const range =
    schema.minimum !== undefined && schema.maximum !== undefined
      ? ` from ${String(schema.minimum)} to ${String(schema.maximum)}`
      : schema.minimum !== undefined
        ? ` of at least ${String(schema.minimum)}`
        : '';
  switch (schema.type) {
    case 'integer':
      return `an integer${range}`;
    case 'number':
      return `a number${range}`;
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    default:
      return 'a mapping';
  }
}

/**
 * TypeBox reports an absent required field twice: missing, and of the wrong type (got undefined).
 * Keep the first, which says what the field takes.
 */
function oncePerMissingField(problems: (FieldProblem & { missing?: boolean })[]): FieldProblem[] {
  const missing = new Set(problems.filter((p) => p.missing).map((p) => p.path.join('\u0000')));
  return problems
    .filter((p) => p.missing || !missing.has(p.path.join('\u0000')))
    .map(({ path, message }) => ({ path, message }));
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value === 'object' ? 'object' : `${typeof value} ${JSON.stringify(value)}`;
}

function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((token) => (/^\d+$/.test(token) ? Number(token) : token));
}

function dedupe(problems: FieldProblem[]): FieldProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${formatPath(p.path)}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** spec.files[0].path — the notation kubectl uses in its error messages. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(part)) out += out ? `.${part}` : part;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out || '(document)';
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
