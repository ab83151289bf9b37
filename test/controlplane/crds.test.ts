// The generated CRDs (config/crd, from src/crds) on a real kube-apiserver: they install and
// become Established, kubectl explain shows their descriptions, valid objects are stored, and
// the server itself rejects invalid ones with our CEL/OpenAPI messages. Every document of the
// invalid corpus (test/fixtures/invalid) is classified: rejected by the server (and how), or
// only caught by `recontext validate` / the operator (and why the schema cannot).
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { controlPlaneSkipReason, crdFiles, installCrds, useControlPlane, type SharedControlPlane } from './shared.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const INVALID = join(REPO, 'test', 'fixtures', 'invalid');
const EXAMPLES = join(REPO, 'examples');

/**
 * How the server answers each invalid fixture. 'expect-line': the fixture's `# expect: <field>:
 * <message>` line (our own CEL message) appears verbatim as `<field>: ... <message>` in the
 * server's error. A string: that text appears in the server's error (OpenAPI/list-map checks,
 * worded by the server). client-only: the server accepts it; only the local validator catches it.
 */
type Expectation = 'expect-line' | { server: string } | { clientOnly: string } | { noSuchKind: string };

const CORPUS: Record<string, Expectation> = {
  'bad-name.yaml': { server: 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' },
  'content-and-contentfrom.yaml': 'expect-line',
  'contentfrom-both-refs.yaml': 'expect-line',
  'hook-relative-command.yaml': 'expect-line',
  'hook-two-actions.yaml': 'expect-line',
  'duplicate-key.yaml': { clientOnly: 'a YAML-level error: kubectl\'s YAML parser keeps the last key, the server sees valid JSON' },
  'duplicate-path.yaml': { server: 'spec.files[1]: Duplicate value' },
  'file-directory-clash.yaml': { clientOnly: 'a relation between two entries (file vs directory) that the schema does not express' },
  'invalid-yaml.yaml': { clientOnly: 'not parseable YAML: kubectl fails before any request' },
  'missing-class.yaml': { server: 'spec.class: Required value' },
  'missing-name.yaml': { server: 'metadata.name: Required value' },
  'mode-out-of-range.yaml': { server: 'spec.files[0].mode in body should be less than or equal to 511' },
  'neither-content.yaml': 'expect-line',
  'no-files.yaml': 'expect-line',
  'oversized-content.yaml': { server: 'spec.files[0].content: Too long: may not be more than 262144 bytes' },
  'path-absolute.yaml': 'expect-line',
  'path-backslash.yaml': 'expect-line',
  'path-control-char.yaml': 'expect-line',
  'path-dot-segment.yaml': 'expect-line',
  'path-empty-segment.yaml': 'expect-line',
  'path-reserved.yaml': 'expect-line',
  'path-segment-too-long.yaml': 'expect-line',
  'path-too-long.yaml': { server: 'spec.files[0].path: Too long: may not be more than 1024 bytes' },
  'path-trailing-slash.yaml': 'expect-line',
  'path-traversal-middle.yaml': 'expect-line',
  'path-traversal.yaml': 'expect-line',
  'policy-bad-duration.yaml': { server: 'spec.cooldown in body should match' },
  'policy-bad-timezone.yaml': { clientOnly: 'IANA time zone names are checked against the tz database, not by a schema pattern' },
  'policy-base-missing-low.yaml': 'expect-line',
  'policy-base-not-an-array.yaml': 'expect-line',
  'policy-high-not-number.yaml': { server: 'spec.high in body must be of type number' },
  'policy-low-ge-high.yaml': 'expect-line',
  'policy-no-arrays.yaml': { server: 'spec.arrays in body should have at least 1 items' },
  'policy-schedule-missing.yaml': 'expect-line',
  'policy-site-same-arrays.yaml': 'expect-line',
  'policy-threshold-missing-high.yaml': 'expect-line',
  'policy-two-metrics.yaml': 'expect-line',
  'policy-unknown-type.yaml': { server: 'spec.type: Unsupported value: "Random"' },
  'policy-window-reversed.yaml': 'expect-line',
  'priority-not-integer.yaml': { server: 'spec.priority in body must be of type integer' },
  'priority-too-high.yaml': { server: 'spec.priority in body should be less than or equal to 1000' },
  'selector-bad-expression.yaml': 'expect-line',
  'source-both.yaml': 'expect-line',
  'source-directory-traversal.yaml': 'expect-line',
  'template-syntax.yaml': { clientOnly: 'template syntax is parsed by the renderer, not by the API server' },
  'template-unknown-root.yaml': { clientOnly: 'template names are resolved by the renderer, not by the API server' },
  'too-many-files.yaml': { server: 'spec.files: Too many: 257: must have at most 256 items' },
  'unknown-class.yaml': { server: 'spec.class: Unsupported value: "network"' },
  'unknown-field.yaml': { server: 'strict decoding error: unknown field "spec.filez"' },
  'unknown-kind.yaml': { noSuchKind: 'no matches for kind "ContextLayers" in version "recontext.dev/v1alpha1"' },
  'unknown-top-level-field.yaml': { server: 'strict decoding error: unknown field "data"' },
  'vmcontext-bad-trigger.yaml': { server: 'spec.recontextOn[0]: Unsupported value: "Reboot"' },
  'vmcontext-duplicate-layer.yaml': { server: 'spec.layers[1]: Duplicate value' },
  'vmcontext-no-target.yaml': { server: 'spec.target: Required value' },
  'vmcontext-two-targets.yaml': 'expect-line',
  'wrong-api-version.yaml': { noSuchKind: 'no matches for kind "ContextLayer" in version "recontext.dev/v1"' },
};

interface CrdDocument {
  spec: {
    names: { kind: string; plural: string };
    versions: { name: string; schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, { description?: string }> } } } } }[];
  };
}

const collapse = (text: string): string => text.replace(/\s+/g, ' ').trim();

describe.skipIf(controlPlaneSkipReason())('CRDs on a real kube-apiserver', () => {
  let plane: SharedControlPlane;
  const namespace = `crds-${process.pid}`;

  beforeAll(async () => {
    plane = await useControlPlane();
    await installCrds(plane);
    const created = await plane.kubectl(['create', 'namespace', namespace]);
    expect(created.code, created.stderr).toBe(0);
  });

  it('installs every CRD in config/crd and each becomes Established', async () => {
    // Deprecations, CEL cost or schema trouble come back as "Warning:" lines; there must be none.
    const again = await plane.kubectl(['apply', '--server-side', '--dry-run=server', '--field-manager=recontext-tests', ...crdFiles().flatMap((f) => ['-f', f])]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toBe('');
    for (const file of crdFiles()) {
      const crd = parse(readFileSync(file, 'utf8')) as { metadata: { name: string } };
      const got = await plane.kubectl(['get', 'crd', crd.metadata.name, '-o', 'json']);
      expect(got.code, got.stderr).toBe(0);
      const status = JSON.parse(got.stdout) as { status: { conditions: { type: string; status: string; message: string }[] } };
      const byType = Object.fromEntries(status.status.conditions.map((c) => [c.type, c]));
      expect(byType['Established']?.status, JSON.stringify(status.status.conditions)).toBe('True');
      expect(byType['NamesAccepted']?.status).toBe('True');
      // A structural-schema or CEL problem shows up as NonStructuralSchema / a rejected apply.
      expect(byType['NonStructuralSchema']).toBeUndefined();
    }
  });

  it('kubectl explain shows the field descriptions from src/crds for every kind', async () => {
    for (const file of crdFiles()) {
      const crd = parse(readFileSync(file, 'utf8')) as CrdDocument;
      const kind = crd.spec.names.kind.toLowerCase();
      const version = crd.spec.versions[0];
      expect(version).toBeDefined();
      // The server publishes OpenAPI for a new CRD a moment after Established: retry briefly.
      let explained = await plane.kubectl(['explain', `${kind}.spec`]);
      for (let attempt = 0; attempt < 50 && explained.code !== 0; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        explained = await plane.kubectl(['explain', `${kind}.spec`]);
      }
      expect(explained.code, explained.stderr).toBe(0);
      const text = collapse(explained.stdout);
      for (const [field, schema] of Object.entries(version?.schema.openAPIV3Schema.properties.spec.properties ?? {})) {
        expect(text).toContain(field);
        if (schema.description) expect(text, `${kind}.spec.${field}`).toContain(collapse(schema.description));
      }
    }
  });

  it('accepts and stores the examples (a valid object of every kind)', async () => {
    const files = readdirSync(EXAMPLES, { recursive: true, encoding: 'utf8' })
      // hosts.yaml is standalone mode's hosts file, not a Kubernetes object (recontext validate checks it);
      // examples/kubevirt holds a KubeVirt VirtualMachine, whose API this server does not have.
      .filter((f) => f.endsWith('.yaml') && !f.endsWith('hosts.yaml') && !f.startsWith('kubevirt/'))
      .map((f) => join(EXAMPLES, f));
    const applied = await plane.kubectl(['apply', '--server-side', '-n', namespace, ...files.flatMap((f) => ['-f', f])]);
    expect(applied.code, applied.stderr).toBe(0);
    const stored = await plane.kubectl(['get', 'contextlayers,vmcontexts,migrationpolicies', '-n', namespace, '-o', 'json']);
    expect(stored.code, stored.stderr).toBe(0);
    const kinds = new Set((JSON.parse(stored.stdout) as { items: { kind: string }[] }).items.map((i) => i.kind));
    expect([...kinds].sort()).toEqual(['ContextLayer', 'MigrationPolicy', 'VMContext']);
  });

  it('classifies every document of the invalid corpus', () => {
    const fixtures = readdirSync(INVALID).filter((f) => f.endsWith('.yaml')).sort();
    expect(fixtures).toEqual(Object.keys(CORPUS).sort());
  });

  // One test per fixture so a failure names the document; server-side dry run stores nothing.
  describe('rejects invalid objects with our messages', () => {
    for (const [fixture, expectation] of Object.entries(CORPUS)) {
      if (typeof expectation === 'object' && 'clientOnly' in expectation) {
        it(`${fixture}: not a server check (${expectation.clientOnly})`, async () => {
          const result = await dryRun(plane, namespace, fixture);
          // Documents the boundary: if the server starts rejecting one, move it to a server row.
          if (fixture === 'invalid-yaml.yaml') expect(result.stderr).toContain('error parsing');
          else expect(result.code, result.stderr).toBe(0);
        });
        continue;
      }
      it(`${fixture}`, async () => {
        const result = await dryRun(plane, namespace, fixture);
        expect(result.code, result.stdout).not.toBe(0);
        const error = result.stderr;
        if (expectation === 'expect-line') {
          const { field, message } = expectLine(fixture);
          expect(error).toContain(`${field}: `);
          expect(error).toContain(message);
        } else if ('server' in expectation) {
          expect(error).toContain(expectation.server);
        } else {
          expect(error).toContain(expectation.noSuchKind);
        }
      });
    }
  });

  it('names the exact messages the lead asked about', async () => {
    const traversal = await apply(plane, namespace, layer({ path: '../etc/passwd', content: 'x' }));
    expect(traversal.stderr).toContain("spec.files[0].path: Invalid value: \"string\": must be normalized: no '.' or '..' segments");
    const both = await apply(plane, namespace, layer({ path: 'etc/a', content: 'x', contentFrom: { configMapKeyRef: { name: 'cm', key: 'k' } } }));
    expect(both.stderr).toContain('spec.files[0]: Invalid value: "object": exactly one of content and contentFrom must be set');
    const policy = readFileSync(join(INVALID, 'policy-low-ge-high.yaml'), 'utf8');
    const lowHigh = await plane.kubectl(['create', '--dry-run=server', '-n', namespace, '-f', '-'], { input: policy });
    expect(lowHigh.stderr).toContain('low must be less than high');
  });
});

function layer(file: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'recontext.dev/v1alpha1',
    kind: 'ContextLayer',
    metadata: { name: 'probe' },
    spec: { class: 'service', files: [file] },
  });
}

function apply(plane: SharedControlPlane, namespace: string, document: string) {
  return plane.kubectl(['create', '--dry-run=server', '-n', namespace, '-f', '-'], { input: document });
}

function dryRun(plane: SharedControlPlane, namespace: string, fixture: string) {
  return plane.kubectl(['create', '--dry-run=server', '-o', 'name', '-n', namespace, '-f', join(INVALID, fixture)]);
}

/** `# expect: spec.files[0].path: must be normalized` → field and message. */
function expectLine(fixture: string): { field: string; message: string } {
  const first = readFileSync(join(INVALID, fixture), 'utf8').split('\n')[0] ?? '';
  const match = /^# expect: (\S+): (.+)$/.exec(first);
  if (!match?.[1] || !match[2]) throw new Error(`${basename(fixture)} has no '# expect: <field>: <message>' line`);
  return { field: match[1], message: match[2] };
}
