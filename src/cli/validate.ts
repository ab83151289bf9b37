// `recontext validate FILE|DIR...`: offline validation of manifests, for GitOps CI.
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import { formatPath } from '../crds/validate.js';
import { loadManifests } from '../manifests/load.js';
import { checkObject } from '../reconcile/checks.js';
import { HOSTS_FILE, readHostsFile } from '../standalone/hosts.js';

export interface ValidationReport {
  readonly files: number;
  readonly documents: number;
  readonly checked: number;
  readonly skipped: readonly string[];
  readonly problems: readonly { file: string; line?: number; document?: number; object?: string; field?: string; message: string }[];
}

export function validatePaths(paths: readonly string[]): ValidationReport {
  const loaded = loadManifests(paths);
  const problems: ValidationReport['problems'][number][] = loaded.problems.map((p) => ({
    file: p.file,
    ...(p.line !== undefined ? { line: p.line } : {}),
    ...(p.index !== undefined ? { document: p.index } : {}),
    message: p.message,
  }));
  const skipped: string[] = [];
  let checked = 0;
  for (const document of loaded.documents) {
    const verdict = checkObject(document.object);
    const object = document.object as { kind?: unknown; metadata?: { name?: unknown } } | null;
    if (verdict.kind === 'foreign' && basename(document.file) === HOSTS_FILE) {
      // Standalone mode's hosts file lives beside the manifests: check it too.
      checked++;
      try {
        readHostsFile(document.file);
      } catch (error: unknown) {
        problems.push({ file: document.file, document: document.index, object: 'hosts file', message: error instanceof Error ? error.message.replace(`${document.file}: `, '') : String(error) });
      }
      continue;
    }
    if (verdict.kind === 'foreign') {
      skipped.push(String(object?.kind ?? 'unknown'));
      continue;
    }
    checked++;
    const label = `${String(object?.kind ?? '?')}/${String(object?.metadata?.name ?? '?')}`;
    for (const problem of verdict.problems) {
      problems.push({
        file: document.file,
        line: document.lineOf(problem.path),
        document: document.index,
        object: label,
        field: formatPath(problem.path),
        message: problem.message,
      });
    }
  }
  if (loaded.files.length === 0 && loaded.problems.length === 0) problems.push({ file: paths.join(' '), message: 'no manifest files (.yaml, .yml, .json) found' });
  // Nothing of ours to check is a mistake (a wrong path, an empty file), not "valid".
  else if (checked === 0 && problems.length === 0)
    problems.push({ file: paths.join(' '), message: `no ContextLayer, VMContext or MigrationPolicy found${skipped.length > 0 ? ` (only ${[...new Set(skipped)].sort().join(', ')})` : ''}` });
  return { files: loaded.files.length, documents: loaded.documents.length, checked, skipped, problems };
}

export function formatReport(report: ValidationReport): string {
  const lines = report.problems.map((p) => {
    const where = `${p.file}${p.line !== undefined ? `:${p.line}` : ''}`;
    const what = p.document !== undefined ? ` document ${p.document}${p.object ? ` (${p.object})` : ''}` : '';
    return `${where}:${what ? `${what}:` : ''} ${p.field ? `${p.field}: ` : ''}${p.message}`;
  });
  const skippedNote = report.skipped.length > 0 ? `; ${report.skipped.length} other document${report.skipped.length === 1 ? '' : 's'} skipped (${[...new Set(report.skipped)].sort().join(', ')})` : '';
  const files = `${report.files} file${report.files === 1 ? '' : 's'}`;
  lines.push(
    report.problems.length === 0
      ? `valid: ${report.checked} recontext document${report.checked === 1 ? '' : 's'} in ${files}${skippedNote}`
      : `invalid: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'} in ${files} (${report.checked} recontext documents checked)${skippedNote}`,
  );
  return lines.join('\n') + '\n';
}

export function validateCommand(): Command {
  return new Command('validate')
    .description(
      `Validate ContextLayer, VMContext and MigrationPolicy manifests offline: schema, unknown fields and the CEL rules the API server enforces, plus template syntax; and standalone mode's ${HOSTS_FILE}. Other kinds are skipped.`,
    )
    .argument('<paths...>', 'YAML/JSON files or directories (searched recursively)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText('after', '\nExit status: 0 when everything is valid, 1 when any problem is found, 2 on usage errors.\nExample: recontext validate examples/')
    .action((paths: string[], options: { output: 'text' | 'json' }) => {
      const report = validatePaths(paths);
      process.stdout.write(options.output === 'json' ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
      process.exitCode = report.problems.length === 0 ? 0 : 1;
    });
}
