// The files derived from src/crds must be current, and the CRDs must be what Kubernetes accepts
// as structural schemas with documentation everywhere (kubectl explain teaches the API).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generatedFiles, REPO_ROOT } from '../../src/crds/generate.js';

type Schema = Record<string, unknown>;

describe('generated files', () => {
  it.each([...generatedFiles().keys()])('%s is up to date (run npm run generate)', (path) => {
    expect(readFileSync(join(REPO_ROOT, path), 'utf8')).toBe(generatedFiles().get(path));
  });
});

describe('CRDs', () => {
  const crds = [...generatedFiles()].filter(([path]) => path.startsWith('config')).map(([, text]) => parse(text) as Schema);

  it('are three namespaced v1alpha1 CRDs in group recontext.dev and category recontext, with status subresources', () => {
    expect(crds.map((c) => (c.metadata as Schema).name).sort()).toEqual(['contextlayers.recontext.dev', 'migrationpolicies.recontext.dev', 'vmcontexts.recontext.dev']);
    for (const crd of crds) {
      const spec = crd.spec as Schema;
      expect(spec.scope).toBe('Namespaced');
      expect((spec.names as Schema).categories).toEqual(['recontext']);
      const version = (spec.versions as Schema[])[0]!;
      expect(version.name).toBe('v1alpha1');
      expect(version.subresources).toEqual({ status: {} });
      expect((version.additionalPrinterColumns as unknown[]).length).toBeGreaterThanOrEqual(3);
    }
  });

  it("use short names that do not clash with KubeVirt's", () => {
    const kubevirt = ['vm', 'vms', 'vmi', 'vmis', 'vmim', 'vmims', 'vmipreset', 'vmirs', 'vmpool', 'kv', 'kvs', 'dv', 'dvs', 'cdi', 'cdis', 'vmsnapshot', 'vmexport'];
    const ours = crds.flatMap((c) => ((c.spec as Schema).names as Schema).shortNames as string[]);
    expect(ours.filter((s) => kubevirt.includes(s))).toEqual([]);
  });

  it('are structural, described everywhere, bounded, and free of constructs the API server rejects', () => {
    const problems: string[] = [];
    const visit = (node: Schema, path: string, root: boolean) => {
      if (!root && path !== '.metadata' && typeof node.description !== 'string') problems.push(`${path}: no description`);
      if (typeof node.type !== 'string') problems.push(`${path}: no type`);
      for (const banned of ['anyOf', 'oneOf', 'allOf', 'not', '$ref', 'patternProperties', 'const']) if (banned in node) problems.push(`${path}: ${banned}`);
      if (node.additionalProperties === false) problems.push(`${path}: additionalProperties: false`);
      if (node.properties && typeof node.additionalProperties === 'object') problems.push(`${path}: properties and additionalProperties`);
      if (node.type === 'string' && !node.enum && node.maxLength === undefined && !['.apiVersion', '.kind'].includes(path)) problems.push(`${path}: unbounded string`);
      if (node.type === 'array' && node.maxItems === undefined) problems.push(`${path}: unbounded array`);
      for (const [name, child] of Object.entries((node.properties as Record<string, Schema>) ?? {})) visit(child, `${path}.${name}`, false);
      if (node.type === 'array') visit(node.items as Schema, `${path}[]`, false);
      if (typeof node.additionalProperties === 'object') visit(node.additionalProperties as Schema, `${path}{}`, false);
    };
    for (const crd of crds) visit((((crd.spec as Schema).versions as Schema[])[0]!.schema as Schema).openAPIV3Schema as Schema, '', true);
    expect(problems).toEqual([]);
  });
});
