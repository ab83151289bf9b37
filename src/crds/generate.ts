// `npm run generate`: writes the files derived from src/crds. test/crds checks they are current.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crdFileName, crdYaml } from './crd.js';
import { RESOURCES } from './index.js';
import { referenceMarkdown } from './reference.js';

/** Every generated file, by path relative to the repository root. */
export function generatedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const resource of RESOURCES) {
    // The chart ships the same CRDs in its crds/ (helm installs those before anything else).
    for (const dir of [join('config', 'crd'), join('charts', 'recontext', 'crds')]) files.set(join(dir, crdFileName(resource)), crdYaml(resource));
  }
  files.set(join('docs', 'reference', 'crds.md'), referenceMarkdown());
  return files;
}

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [path, content] of generatedFiles()) {
    mkdirSync(dirname(join(REPO_ROOT, path)), { recursive: true });
    writeFileSync(join(REPO_ROOT, path), content);
    console.log(`wrote ${path}`);
  }
}
