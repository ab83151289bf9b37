// CRD reference documentation (docs/reference/crds.md), generated from the same schemas.
import { toStructural } from './crd.js';
import { API_VERSION, RESOURCES, type ResourceDefinition } from './index.js';

type JsonSchema = { [key: string]: unknown };
type Rule = { rule: string; message: string };

export function referenceMarkdown(): string {
  const parts = [
    '<!-- Generated from src/crds by `npm run generate`. Do not edit by hand. -->',
    '# CRD reference',
    '',
    `API group and version: \`${API_VERSION}\`. All resources are namespaced and in the category \`recontext\` (\`kubectl get recontext\`).`,
    'Fields marked *required* must be set; defaults are filled in by the API server. Rules are CEL',
    '`x-kubernetes-validations` the API server enforces; `recontext validate` checks the same rules offline.',
    '',
  ];
  for (const resource of RESOURCES) parts.push(...resourceSection(resource));
  return parts.join('\n') + '\n';
}

function resourceSection(resource: ResourceDefinition): string[] {
  const lines = [
    `## ${resource.kind}`,
    '',
    resource.description,
    '',
    `\`kubectl get ${resource.plural}.recontext.dev\` · short name${resource.shortNames.length > 1 ? 's' : ''}: ${resource.shortNames.map((s) => `\`${s}\``).join(', ')}`,
    '',
  ];
  for (const [section, schema] of [
    ['spec', resource.spec],
    ['status', resource.status],
  ] as const) {
    lines.push(`### ${resource.kind}.${section}`, '', '| Field | Type | Description |', '| --- | --- | --- |');
    walk(toStructural(schema), section, true, lines);
    lines.push('');
  }
  return lines;
}

function walk(schema: JsonSchema, path: string, isRoot: boolean, out: string[]): void {
  const rules = (schema['x-kubernetes-validations'] as Rule[] | undefined) ?? [];
  if (isRoot && rules.length > 0) out.push(`| \`${path}\` | rules | ${rules.map((r) => escape(r.message)).join('; ')} |`);
  const properties = (schema.properties as Record<string, JsonSchema> | undefined) ?? {};
  const required = new Set((schema.required as string[] | undefined) ?? []);
  for (const [name, child] of Object.entries(properties)) {
    const childPath = `${path}.${name}`;
    out.push(`| \`${childPath}\` | ${typeOf(child)} | ${describe(child, required.has(name))} |`);
    const element = child.type === 'array' ? (child.items as JsonSchema) : child;
    if (element.type === 'object' && element.properties) walk(element, child.type === 'array' ? `${childPath}[]` : childPath, false, out);
  }
}

function typeOf(schema: JsonSchema): string {
  if (schema.type === 'array') return `[]${typeOf(schema.items as JsonSchema)}`;
  if (schema.type === 'object' && !schema.properties && schema.additionalProperties) return 'map[string]string';
  return String(schema.type);
}

function describe(schema: JsonSchema, required: boolean): string {
  const notes: string[] = [];
  if (required) notes.push('*required*');
  if (schema.enum) notes.push(`one of ${(schema.enum as string[]).map((v) => `\`${v}\``).join(', ')}`);
  const items = schema.type === 'array' ? (schema.items as JsonSchema) : undefined;
  if (items?.enum) notes.push(`each one of ${(items.enum as string[]).map((v) => `\`${v}\``).join(', ')}`);
  if (schema.default !== undefined) notes.push(`default \`${JSON.stringify(schema.default)}\``);
  const bounds: Array<[string, string]> = [
    ['minimum', '≥'],
    ['maximum', '≤'],
    ['minLength', 'min length'],
    ['maxLength', 'max length'],
    ['minItems', 'min items'],
    ['maxItems', 'max items'],
    ['maxProperties', 'max entries'],
  ];
  for (const [key, label] of bounds) if (schema[key] !== undefined) notes.push(`${label} ${String(schema[key])}`);
  if (schema.pattern) notes.push(`pattern \`${String(schema.pattern)}\``);
  const element = schema.type === 'array' ? (schema.items as JsonSchema) : schema;
  const rules = (element['x-kubernetes-validations'] as Rule[] | undefined) ?? [];
  if (rules.length > 0) notes.push(`rules: ${rules.map((r) => r.message).join('; ')}`);
  const text = String(schema.description ?? '');
  return escape(notes.length > 0 ? `${text} (${notes.join(', ')})` : text);
}

function escape(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}
