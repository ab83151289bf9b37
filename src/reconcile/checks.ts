// Checks beyond what the API server can enforce: template syntax and names, file/directory
// clashes, time zones. Used by `recontext validate` and by the controllers (an Invalid condition
// with a reason), so an object the server accepted but that cannot work is reported the same way
// everywhere.
import { Value } from '@sinclair/typebox/value';
import { didYouMean, validateObject, type FieldProblem, type ObjectVerdict } from '../crds/validate.js';
import { LayerFile, LayerSource, LayerVariant, type ContextLayerSpec, type MigrationPolicySpec, type VMContextSpec } from '../crds/index.js';
import { pathSegmentProblem } from './render.js';
import { parseTemplate, referenceProblem, templateReferences, TemplateError } from './template.js';

/**
 * Schema + CEL + the semantic checks below, for one decoded document. The semantic checks run
 * even when the schema check found problems (on the entries that are well-formed), so one run
 * reports everything instead of one round per kind of mistake.
 */
export function checkObject(object: unknown): ObjectVerdict {
  const verdict = validateObject(object);
  // An unknown kind is reported as such; its spec means nothing to check.
  if (verdict.kind !== 'ours' || !isRecord(object) || !isRecord(object.spec) || object.kind !== verdict.resource.kind) return verdict;
  const spec = object.spec;
  const semantic =
    verdict.resource.kind === 'ContextLayer'
      ? contextLayerProblems(spec as ContextLayerSpec)
      : verdict.resource.kind === 'VMContext'
        ? vmContextProblems(spec as VMContextSpec)
        : migrationPolicyProblems(spec as MigrationPolicySpec);
  const seen = new Set(verdict.problems.map((p) => `${p.path.join('.')}\u0000${p.message}`));
  return { ...verdict, problems: [...verdict.problems, ...semantic.filter((p) => !seen.has(`${p.path.join('.')}\u0000${p.message}`))] };
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
/** The entries of a list field that have the schema's shape, with their index (others are reported by the schema check). */
const wellFormed = <T>(list: unknown, schema: Parameters<typeof Value.Check>[0]): [T, number][] =>
  Array.isArray(list) ? list.flatMap((item, i) => (Value.Check(schema, item) ? [[item as T, i] as [T, number]] : [])) : [];

export function contextLayerProblems(spec: ContextLayerSpec): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const files = wellFormed<LayerFile>(spec.files, LayerFile);
  const variants = wellFormed<LayerVariant>(spec.variants, LayerVariant).map(([v]) => v);
  const values = new Set([...Object.keys(isRecord(spec.values) ? spec.values : {}), ...variants.flatMap((v) => Object.keys(v.values))]);
  const seen = new Map<string, number>();
  files.forEach(([file, i]) => {
    const pathProblem = pathSegmentProblem(file.path);
    if (pathProblem) problems.push({ path: ['spec', 'files', i, 'path'], message: pathProblem });
    const earlier = seen.get(file.path);
    if (earlier !== undefined) problems.push({ path: ['spec', 'files', i, 'path'], message: `duplicate path (also spec.files[${earlier}])` });
    seen.set(file.path, i);
    if (file.template && file.content !== undefined) {
      try {
        for (const reference of templateReferences(parseTemplate(file.content))) {
          const where = `template: line ${reference.line}, column ${reference.column}`;
          const problem = referenceProblem(reference);
          if (problem) problems.push({ path: ['spec', 'files', i, 'content'], message: `${where}: ${problem}` });
          else if (reference.root === 'values' && !reference.defaulted && !values.has(reference.keys[0]!)) {
            const guess = didYouMean(reference.keys[0]!, [...values]);
            problems.push({
              path: ['spec', 'files', i, 'content'],
              message: `${where}: values.${reference.keys[0]} is not set in spec.values or any variant${guess ? ` (did you mean values.${guess}?)` : ''}; set it or add | default "…"`,
            });
          }
        }
      } catch (error: unknown) {
        if (!(error instanceof TemplateError)) throw error;
        problems.push({ path: ['spec', 'files', i, 'content'], message: `template: ${error.message}` });
      }
    }
  });
  files.forEach(([file, i]) => {
    const segments = file.path.split('/');
    for (let depth = 1; depth < segments.length; depth++) {
      const parent = seen.get(segments.slice(0, depth).join('/'));
      if (parent !== undefined) {
        problems.push({ path: ['spec', 'files', i, 'path'], message: `spec.files[${parent}] is a file at ${segments.slice(0, depth).join('/')}, so it cannot be a directory here` });
      }
    }
  });
  wellFormed<LayerSource>(spec.sources, LayerSource).forEach(([source, i]) => {
    const pathProblem = source.directory === undefined ? undefined : pathSegmentProblem(source.directory);
    if (pathProblem) problems.push({ path: ['spec', 'sources', i, 'directory'], message: pathProblem });
  });
  const variantValues = variants.map((v) => v.name);
  if (new Set(variantValues).size !== variantValues.length) problems.push({ path: ['spec', 'variants'], message: 'variant names must be unique' });
  return problems;
}

export function vmContextProblems(spec: VMContextSpec): FieldProblem[] {
  const names = (Array.isArray(spec.layers) ? spec.layers : []).map((l: unknown) => (isRecord(l) ? l.name : undefined));
  const duplicate = names.findIndex((n, i) => names.indexOf(n) !== i);
  return duplicate >= 0 ? [{ path: ['spec', 'layers', duplicate, 'name'], message: `layer ${names[duplicate]} is listed twice` }] : [];
}

export function migrationPolicyProblems(spec: MigrationPolicySpec): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const timeZone = spec.schedule?.timeZone;
  if (typeof timeZone === 'string' && !isTimeZone(timeZone)) {
    problems.push({ path: ['spec', 'schedule', 'timeZone'], message: `unknown IANA time zone ${JSON.stringify(timeZone)} (e.g. Europe/Stockholm, UTC)` });
  }
  return problems;
}

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
