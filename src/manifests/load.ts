// Reads Kubernetes YAML manifests from files and directories, as kubectl would: YAML 1.1 (so
// `mode: 0644` is octal), several documents per file, and with source lines so that every
// problem can be reported as file:line.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document } from 'yaml';

export interface ManifestDocument {
  readonly file: string;
  /** 1-based position of the document in its file. */
  readonly index: number;
  readonly object: unknown;
  /** Line (1-based) of the value at a field path, or of the document start when the path is absent. */
  lineOf(path: readonly (string | number)[]): number;
  /**
   * Scalars at or under a field path that YAML 1.1 turned into booleans although they were not
   * written true/false (`y`, `yes`, `on`, `off` …): a common reason a string field gets a boolean.
   */
  yamlBooleanWords(path: readonly (string | number)[]): { path: (string | number)[]; word: string }[];
}

/** The YAML 1.1 boolean spellings other than true and false (YAML 1.2 and JSON read them as strings). */
const YAML11_BOOLEAN_WORD = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/;

export interface ManifestProblem {
  readonly file: string;
  readonly index?: number;
  readonly line?: number;
  readonly message: string;
}

export interface LoadedManifests {
  readonly documents: readonly ManifestDocument[];
  readonly problems: readonly ManifestProblem[];
  readonly files: readonly string[];
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
/** Manifests bigger than this are not Kubernetes objects (etcd stores at most ~1.5 MiB each). */
export const MAX_MANIFEST_FILE_BYTES = 8 * 1024 * 1024;

/** Expands directories (recursively, sorted, hidden entries skipped) into manifest files. */
export function manifestFiles(paths: readonly string[]): { files: string[]; problems: ManifestProblem[] } {
  const files: string[] = [];
  const problems: ManifestProblem[] = [];
  const visit = (path: string, explicit: boolean): void => {
    let stats;
    try {
      stats = statSync(path);
    } catch {
      problems.push({ file: path, message: 'no such file or directory' });
      return;
    }
    if (stats.isDirectory()) {
      for (const entry of readdirSync(path).sort()) if (!entry.startsWith('.')) visit(join(path, entry), false);
    } else if (explicit || MANIFEST_EXTENSIONS.has(extname(path))) {
      files.push(path);
    }
  };
  for (const path of paths) visit(path, true);
  return { files, problems };
}

export function loadManifests(paths: readonly string[]): LoadedManifests {
  const { files, problems } = manifestFiles(paths);
  const documents: ManifestDocument[] = [];
  for (const file of files) {
    const size = statSync(file).size;
    if (size > MAX_MANIFEST_FILE_BYTES) {
      problems.push({ file, message: `file is ${size} bytes; manifests over ${MAX_MANIFEST_FILE_BYTES} bytes are not read` });
      continue;
    }
    const parsed = parseManifestText(readFileSync(file, 'utf8'), file);
    documents.push(...parsed.documents);
    problems.push(...parsed.problems);
  }
  return { documents, problems, files };
}

export function parseManifestText(text: string, file: string): { documents: ManifestDocument[]; problems: ManifestProblem[] } {
  const lineCounter = new LineCounter();
  const documents: ManifestDocument[] = [];
  const problems: ManifestProblem[] = [];
  const parsed = parseAllDocuments(text, { version: '1.1', lineCounter, uniqueKeys: true, prettyErrors: false });
  const all: Document[] = Array.isArray(parsed) ? parsed : [];
  all.forEach((doc, i) => {
    const index = i + 1;
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        problems.push({ file, index, line: lineCounter.linePos(error.pos[0]).line, message: `invalid YAML: ${error.message.split('\n')[0]}` });
      }
      return;
    }
    const object: unknown = doc.toJS({ maxAliasCount: 100 });
    if (object === null || object === undefined) return; // an empty document between separators
    const startLine = lineCounter.linePos(doc.range?.[0] ?? 0).line;
    documents.push({
      file,
      index,
      object,
      lineOf(path) {
        for (let depth = path.length; depth > 0; depth--) {
          const node = doc.getIn(path.slice(0, depth), true) as { range?: [number, number, number] } | undefined;
          if (node && typeof node === 'object' && node.range) return lineCounter.linePos(node.range[0]).line;
        }
        return startLine;
      },
      yamlBooleanWords(path) {
        const found: { path: (string | number)[]; word: string }[] = [];
        const walk = (node: unknown, at: (string | number)[]): void => {
          if (isScalar(node)) {
            const word = node.range ? text.slice(node.range[0], node.range[1]) : '';
            if (typeof node.value === 'boolean' && YAML11_BOOLEAN_WORD.test(word)) found.push({ path: at, word });
          } else if (isMap(node)) {
            for (const pair of node.items) walk(pair.value, [...at, String(isScalar(pair.key) ? pair.key.value : pair.key)]);
          } else if (isSeq(node)) node.items.forEach((item, i) => walk(item, [...at, i]));
        };
        walk(path.length === 0 ? doc.contents : doc.getIn(path, true), [...path]);
        return found;
      },
    });
  });
  return { documents, problems };
}
