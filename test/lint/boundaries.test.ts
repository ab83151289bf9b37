// The dependency rules of the source tree, checked on the import statements (docs/architecture.md):
// shared plumbing (src/runtime) is imported by everything and imports nothing above it; pure
// decisions (src/reconcile) and the format library (src/iso) import no I/O of the project; drivers
// and the image server never reach into src/controllers. (The guest agent, guest/agent, is a Go
// module of its own: it cannot import the operator's TypeScript.)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

interface Rule {
  /** Files the rule is about: repository paths starting with this folder. */
  readonly from: string;
  /** Project folders those files may import (their own folder always). undefined: any but `never`. */
  readonly only?: readonly string[];
  /** Project folders those files must not import. */
  readonly never?: readonly string[];
  readonly why: string;
}

export const RULES: readonly Rule[] = [
  { from: 'src/iso', only: [], why: 'a format library: the on-disk layout and nothing of the project' },
  { from: 'src/reconcile', only: ['src/crds'], why: 'pure decisions: no client, driver, controller or runtime' },
  { from: 'src/runtime', only: ['src/kube'], why: 'shared plumbing: imported by everything, imports nothing above it' },
  { from: 'src/kube', only: ['src/crds'], why: 'the API client: below every controller and driver' },
  { from: 'src/crds', only: [], why: 'the API types and schemas: the bottom of the tree' },
  { from: 'src/drivers', never: ['src/controllers', 'src/standalone', 'src/cli'], why: 'drivers are called by the controllers, never the other way round' },
  { from: 'src/images', never: ['src/controllers', 'src/drivers', 'src/standalone', 'src/cli'], why: 'the image store and server sit below the controllers and drivers' },
  { from: 'src/metric-sources', never: ['src/controllers', 'src/drivers', 'src/standalone', 'src/cli'], why: 'metric sources sit below the controllers' },
  { from: 'src/controllers', never: ['src/cli', 'src/standalone'], why: 'the reconcilers know no process shell but their own' },
];

/** The project folder a repository path belongs to, for the rules: src/<folder>, or its top folder. */
function folderOf(path: string): string {
  const [top, second] = path.split('/');
  return top === 'src' && second !== undefined && !second.endsWith('.ts') ? `src/${second}` : (top ?? path);
}

/** Relative import specifiers of a TypeScript source (import/export … from, import(), bare import). */
export function importsOf(source: string): string[] {
  const found: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;
  for (const match of source.matchAll(pattern)) if (match[1]) found.push(match[1]);
  return found;
}

export interface Violation {
  readonly file: string;
  readonly imports: string;
  readonly why: string;
}

/** Pure: every import of `files` (repository path → source) that breaks a rule. */
export function violations(files: ReadonlyMap<string, string>, rules: readonly Rule[] = RULES): Violation[] {
  const found: Violation[] = [];
  for (const [file, source] of files) {
    const rule = rules.find((r) => file === r.from || file.startsWith(`${r.from}/`));
    if (!rule) continue;
    for (const specifier of importsOf(source)) {
      const target = relative('.', join(dirname(file), specifier));
      const folder = folderOf(target);
      if (folder === rule.from || target.startsWith(`${rule.from}/`)) continue;
      const outsideProject = target.startsWith('..') || target.startsWith('node_modules');
      const forbidden = rule.only ? !outsideProject && !rule.only.includes(folder) : (rule.never ?? []).some((f) => folder === f || target.startsWith(`${f}/`));
      if (forbidden) found.push({ file, imports: target, why: rule.why });
    }
  }
  return found;
}

function sources(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (at: string): void => {
    for (const name of readdirSync(at)) {
      if (name === 'node_modules' || name === 'dist' || name === 'test' || name.startsWith('.')) continue;
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      // Tests (*.test.ts, test/ folders) may reach across; the rules are about shipped code.
      else if (/\.(ts|mts)$/.test(name) && !/\.test\.ts$/.test(name) && !name.endsWith('.d.ts')) files.set(relative(ROOT, path), readFileSync(path, 'utf8'));
    }
  };
  walk(join(ROOT, dir));
  return files;
}

describe('dependency rules of the source tree', () => {
  it('hold for src/', () => {
    const files = sources('src');
    expect(files.size).toBeGreaterThan(50);
    expect(violations(files)).toEqual([]);
  });

  it('catch a forbidden import (a driver importing a controller, pure code importing a driver)', () => {
    const files = new Map([
      ['src/drivers/kubevirt/driver.ts', "import { ClusterOperator } from '../../controllers/cluster-operator.js';\nimport { Informer } from '../../runtime/informer.js';\n"],
      ['src/reconcile/vmcontext.ts', "import type { Driver } from '../drivers/driver.js';\nimport { layerSchema } from '../crds/index.js';\nimport { x } from './layers.js';\n"],
      ['src/iso/build.ts', "export { writer } from '../images/layer-image.js';\n"],
    ]);
    expect(violations(files).map((v) => `${v.file} → ${v.imports}`)).toEqual([
      'src/drivers/kubevirt/driver.ts → src/controllers/cluster-operator.js',
      'src/reconcile/vmcontext.ts → src/drivers/driver.js',
      'src/iso/build.ts → src/images/layer-image.js',
    ]);
  });
});
