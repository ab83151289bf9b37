// Checks beyond what the API server can enforce: template syntax, file/directory clashes, time
// zones. Used by `recontext validate` and by the controllers (an Invalid condition with a reason),
// so an object the server accepted but that cannot work is reported the same way everywhere.
import { validateObject, type FieldProblem, type ObjectVerdict } from '../crds/validate.js';
import type { ContextLayerSpec, MigrationPolicySpec, VMContextSpec } from '../crds/index.js';
import { pathSegmentProblem } from './render.js';
import { parseTemplate, TemplateError } from './template.js';

/** Schema + CEL + the semantic checks below, for one decoded document. */
export function checkObject(object: unknown): ObjectVerdict {
  const verdict = validateObject(object);
  if (verdict.kind !== 'ours' || verdict.problems.length > 0) return verdict;
  const spec = (object as { spec: unknown }).spec;
  const semantic =
    verdict.resource.kind === 'ContextLayer'
      ? contextLayerProblems(spec as ContextLayerSpec)
      : verdict.resource.kind === 'VMContext'
        ? vmContextProblems(spec as VMContextSpec)
        : migrationPolicyProblems(spec as MigrationPolicySpec);
  return { ...verdict, problems: semantic };
}

export function contextLayerProblems(spec: ContextLayerSpec): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const files = spec.files ?? [];
  const seen = new Map<string, number>();
  files.forEach((file, i) => {
    const pathProblem = pathSegmentProblem(file.path);
    if (pathProblem) problems.push({ path: ['spec', 'files', i, 'path'], message: pathProblem });
    const earlier = seen.get(file.path);
    if (earlier !== undefined) problems.push({ path: ['spec', 'files', i, 'path'], message: `duplicate path (also spec.files[${earlier}])` });
    seen.set(file.path, i);
    if (file.template && file.content !== undefined) {
      try {
        parseTemplate(file.content);
      } catch (error: unknown) {
        if (!(error instanceof TemplateError)) throw error;
        problems.push({ path: ['spec', 'files', i, 'content'], message: `template: ${error.message}` });
      }
    }
  });
  files.forEach((file, i) => {
    const segments = file.path.split('/');
    for (let depth = 1; depth < segments.length; depth++) {
      const parent = seen.get(segments.slice(0, depth).join('/'));
      if (parent !== undefined) {
        problems.push({ path: ['spec', 'files', i, 'path'], message: `spec.files[${parent}] is a file at ${segments.slice(0, depth).join('/')}, so it cannot be a directory here` });
      }
    }
  });
  (spec.sources ?? []).forEach((source, i) => {
    const pathProblem = source.directory === undefined ? undefined : pathSegmentProblem(source.directory);
    if (pathProblem) problems.push({ path: ['spec', 'sources', i, 'directory'], message: pathProblem });
  });
  const variantValues = (spec.variants ?? []).map((v) => v.name);
  if (new Set(variantValues).size !== variantValues.length) problems.push({ path: ['spec', 'variants'], message: 'variant names must be unique' });
  return problems;
}

export function vmContextProblems(spec: VMContextSpec): FieldProblem[] {
  const names = (spec.layers ?? []).map((l) => l.name);
  const duplicate = names.findIndex((n, i) => names.indexOf(n) !== i);
  return duplicate >= 0 ? [{ path: ['spec', 'layers', duplicate, 'name'], message: `layer ${names[duplicate]} is listed twice` }] : [];
}

export function migrationPolicyProblems(spec: MigrationPolicySpec): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const timeZone = spec.schedule?.timeZone;
  if (timeZone !== undefined && !isTimeZone(timeZone)) {
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
