// `recontext validate FILE|DIR...`: offline validation of manifests, for GitOps CI. The input is
// checked as one set, as `kubectl apply -f` would create it: every document on its own (schema,
// CEL, templates), then the documents together (src/manifests/set-checks.ts).
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import { formatPath } from '../crds/validate.js';
import { loadManifests, type ManifestDocument } from '../manifests/load.js';
import { setProblems, type HostsInSet } from '../manifests/set-checks.js';
import { checkObject } from '../reconcile/checks.js';
import { HOSTS_FILE, readHostsFile } from '../standalone/hosts.js';

export interface ValidationProblem {
  readonly file: string;
  readonly line?: number;
  readonly document?: number;
  readonly object?: string;
  readonly field?: string;
  readonly message: string;
  /** warning: not wrong in itself (a reference the cluster may satisfy, a drive a restart adds); it fails validation only with --strict. */
  readonly severity: 'error' | 'warning';
}

export interface ValidationReport {
  readonly files: number;
  readonly documents: number;
  readonly checked: number;
  readonly skipped: readonly string[];
  /** Errors (and, with --strict, what would otherwise be warnings): any makes the input invalid. */
  readonly problems: readonly ValidationProblem[];
  readonly warnings: readonly ValidationProblem[];
}

export interface ValidateOptions {
  /** References to ConfigMaps, Secrets and a hosts file must be satisfied inside the set. */
  readonly strict?: boolean;
  /** Namespace of objects that set none (as kubectl apply -n). */
  readonly namespace?: string;
}

export function validatePaths(paths: readonly string[], options: ValidateOptions = {}): ValidationReport {
  const loaded = loadManifests(paths);
  const found: ValidationProblem[] = loaded.problems.map((p) => ({
    file: p.file,
    ...(p.line !== undefined ? { line: p.line } : {}),
    ...(p.index !== undefined ? { document: p.index } : {}),
    message: p.message,
    severity: 'error',
  }));
  const at = (document: ManifestDocument, path: readonly (string | number)[], message: string, severity: ValidationProblem['severity'] = 'error'): ValidationProblem => {
    const object = document.object as { kind?: unknown; metadata?: { name?: unknown } } | null;
    return {
      file: document.file,
      line: document.lineOf(path),
      document: document.index,
      object: `${String(object?.kind ?? '?')}/${String(object?.metadata?.name ?? '?')}`,
      field: formatPath(path),
      message: message + yamlBooleanHint(document, path),
      severity,
    };
  };
  const skipped: string[] = [];
  const wellFormed = new Set<ManifestDocument>();
  let hosts: HostsInSet | undefined;
  let checked = 0;
  for (const document of loaded.documents) {
    const verdict = checkObject(document.object);
    if (verdict.kind === 'foreign' && basename(document.file) === HOSTS_FILE) {
      // Standalone mode's hosts file lives beside the manifests: check it too.
      checked++;
      try {
        hosts = { document, hosts: readHostsFile(document.file) };
      } catch (error: unknown) {
        found.push({ file: document.file, document: document.index, object: 'hosts file', message: error instanceof Error ? error.message.replace(`${document.file}: `, '') : String(error), severity: 'error' });
      }
      continue;
    }
    if (verdict.kind === 'foreign') {
      skipped.push(String((document.object as { kind?: unknown } | null)?.kind ?? 'unknown'));
      continue;
    }
    checked++;
    if (verdict.problems.length === 0) wellFormed.add(document);
    for (const problem of verdict.problems) found.push(at(document, problem.path, problem.message));
  }
  const namespace = options.namespace ?? 'default';
  for (const problem of setProblems({ documents: loaded.documents, wellFormed, ...(hosts ? { hosts } : {}), defaultNamespace: namespace, hostsFileName: HOSTS_FILE })) {
    const severity = problem.warning && !options.strict ? 'warning' : 'error';
    found.push(at(problem.document, problem.path, problem.message, severity));
  }
  const unique = dedupe(found);
  const problems = unique.filter((p) => p.severity === 'error');
  if (loaded.files.length === 0 && loaded.problems.length === 0) problems.push({ file: paths.join(' '), message: 'no manifest files (.yaml, .yml, .json) found', severity: 'error' });
  // Nothing of ours to check is a mistake (a wrong path, an empty file), not "valid".
  else if (checked === 0 && problems.length === 0)
    problems.push({ file: paths.join(' '), message: `no ContextLayer, VMContext or MigrationPolicy found${skipped.length > 0 ? ` (only ${[...new Set(skipped)].sort().join(', ')})` : ''}`, severity: 'error' });
  return { files: loaded.files.length, documents: loaded.documents.length, checked, skipped, problems, warnings: unique.filter((p) => p.severity === 'warning') };
}

/** `values.debug: y` is a boolean in YAML 1.1 (kubectl's YAML): say so where a string was expected. */
function yamlBooleanHint(document: ManifestDocument, path: readonly (string | number)[]): string {
  const [word] = document.yamlBooleanWords(path);
  if (!word) return '';
  const where = formatPath(word.path) === formatPath(path) ? '' : ` at ${formatPath(word.path)}`;
  return ` — YAML 1.1 (as kubectl reads it) takes ${word.word}${where} for a boolean; quote it: "${word.word}"`;
}

/** Each problem once, in file order. */
function dedupe(problems: readonly ValidationProblem[]): ValidationProblem[] {
  const seen = new Set<string>();
  const unique = problems.filter((p) => {
    const key = `${p.file}\u0000${p.document ?? ''}\u0000${p.field ?? ''}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return unique.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : (a.line ?? 0) - (b.line ?? 0)));
}

export function formatProblem(p: ValidationProblem): string {
  const where = `${p.file}${p.line !== undefined ? `:${p.line}` : ''}`;
  const what = p.document !== undefined ? ` document ${p.document}${p.object ? ` (${p.object})` : ''}` : '';
  return `${where}:${what ? `${what}:` : ''} ${p.severity === 'warning' ? 'warning: ' : ''}${p.field ? `${p.field}: ` : ''}${p.message}`;
}

export function formatReport(report: ValidationReport): string {
  const lines = [...report.problems, ...report.warnings].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : (a.line ?? 0) - (b.line ?? 0))).map(formatProblem);
  const skippedNote = report.skipped.length > 0 ? `; ${report.skipped.length} other document${report.skipped.length === 1 ? '' : 's'} skipped (${[...new Set(report.skipped)].sort().join(', ')})` : '';
  const warnings = report.warnings.length > 0 ? `; ${report.warnings.length} warning${report.warnings.length === 1 ? '' : 's'} (--strict makes them errors)` : '';
  const files = `${report.files} file${report.files === 1 ? '' : 's'}`;
  lines.push(
    report.problems.length === 0
      ? `valid: ${report.checked} recontext document${report.checked === 1 ? '' : 's'} in ${files}${skippedNote}${warnings}`
      : `invalid: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'} in ${files} (${report.checked} recontext documents checked)${skippedNote}${warnings}`,
  );
  return lines.join('\n') + '\n';
}

export function validateCommand(): Command {
  return new Command('validate')
    .description(
      `Validate ContextLayer, VMContext and MigrationPolicy manifests offline, as one set: each document (schema, unknown fields, the CEL rules the API server enforces, template syntax and names), then all together (the same name twice, VMContexts naming layers the set does not have, ConfigMap/Secret keys, a KubeVirt VirtualMachine's empty CD-ROM ctx-<layer> per layer, and standalone mode's ${HOSTS_FILE}: each libvirt VM's layers must render on every host). Documents of other kinds are not checked on their own.`,
    )
    .argument('<paths...>', 'YAML/JSON files or directories (searched recursively), taken together')
    .option('--strict', 'warnings are errors: a ConfigMap or Secret that layers name, or a hosts file that templates need, must be in the set (they may live in the cluster), and a VirtualMachine in the set needs its ctx-<layer> drives (else a restart delivers the layer)', false)
    .option('-n, --namespace <namespace>', 'namespace of objects that set none, as with kubectl apply -n', 'default')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText(
      'after',
      [
        '',
        'Every problem is printed once, as FILE:LINE: document N (Kind/name): field.path: message.',
        'Exit status:',
        '  0  valid (warnings may be printed)',
        '  1  invalid: at least one problem (with --strict, warnings count)',
        '  2  usage error (unknown option, missing path)',
        'Example: recontext validate examples/gluster',
      ].join('\n'),
    )
    .action((paths: string[], options: { strict: boolean; namespace: string; output: 'text' | 'json' }) => {
      const report = validatePaths(paths, { strict: options.strict, namespace: options.namespace });
      process.stdout.write(options.output === 'json' ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
      process.exitCode = report.problems.length === 0 ? 0 : 1;
    });
}
