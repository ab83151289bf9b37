// Hostile input, generated: a few hundred ContextLayers, VMContexts and MigrationPolicies made by
// mutating valid ones with fast-check (huge strings at and over each limit, deep nesting, path
// traversal in every spelling, unicode lookalikes and overrides, templates that reach for
// secrets, other namespaces or prototypes, unknown fields, wrong types) go
//   (a) to the real API server, with `recontext operator` (a real process) reconciling the
//       namespace meanwhile: each object is accepted or rejected with a message (never a 5xx);
//       every accepted one ends with a Ready condition (True, or False with a reason), each
//       accepted layer also through a VMContext that renders it; the operator is alive and
//       healthy afterwards and logged no unhandled error;
//   (b) to `recontext validate` (in-process per object, and the CLI once over all of them): it
//       reports and never throws, it flags everything the API server rejected, and its schema and
//       CEL part passes everything the server accepted.
// The generation is seeded (FUZZ_SEED, printed on failure) and bounded (FUZZ_RUNS, default 240).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { validatePaths } from '../../src/cli/validate.js';
import { validateObject } from '../../src/crds/validate.js';
import { ApiError, KubeClient } from '../../src/kube/client.js';
import { controlPlaneSkipReason, installCrds, useControlPlane } from '../controlplane/shared.js';
import { startOperatorProcess, type OperatorProcess } from '../support/operator-process.js';
import { REPO, strict, until } from './scenario.js';

const NS = 'fuzz';
const SEED = Number(process.env.FUZZ_SEED ?? 20261123);
const RUNS = Number(process.env.FUZZ_RUNS ?? 240);
const API = `/apis/recontext.dev/v1alpha1/namespaces/${NS}`;
const PLURAL: Record<string, string> = { ContextLayer: 'contextlayers', VMContext: 'vmcontexts', MigrationPolicy: 'migrationpolicies' };
const SECRET_VALUE = 'fuzz-secret-value-7f3a91';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec: Record<string, Json> } & Record<string, Json>;

// ---- seeds: valid objects the mutations start from ----

const clone = <T>(o: T): T => JSON.parse(JSON.stringify(o)) as T;
const fromYaml = (file: string): Obj[] => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Obj);

const baseLayer: Obj = {
  apiVersion: 'recontext.dev/v1alpha1',
  kind: 'ContextLayer',
  metadata: { name: 'seed', labels: { fuzz: 'yes' } },
  spec: {
    class: 'service',
    values: { cache: 'cache-a', port: '8080' },
    files: [
      { path: 'etc/app/app.conf', template: true, content: 'cache = {{ values.cache }}:{{ values.port }}\nvm = {{ vm.name }}\n' },
      { path: 'etc/app/from-cm', contentFrom: { configMapKeyRef: { name: 'fuzz-cm', key: 'a.conf' } } },
      { path: 'etc/app/token', mode: 0o600, contentFrom: { secretKeyRef: { name: 'fuzz-secret', key: 'token' } } },
    ],
    sources: [{ configMap: 'fuzz-cm', directory: 'etc/cm' }],
    hooks: [{ name: 'reload', paths: ['etc/app/'], run: ['/bin/true'] }],
  },
};
const seedVMContext: Obj = {
  apiVersion: 'recontext.dev/v1alpha1',
  kind: 'VMContext',
  metadata: { name: 'seed', labels: { app: 'web' } },
  spec: { target: { libvirt: { domain: 'fuzz-vm' } }, layers: [{ name: 'fz-base' }], layerSelector: { matchLabels: { tier: 'none' } }, recontextOn: ['LayerChange'] },
};
const SEEDS: readonly Obj[] = [
  baseLayer,
  ...['layer-gluster-service.yaml', 'layer-site-cache.yaml', 'layer-data-residency.yaml', 'layer-broker.yaml'].flatMap((f) => fromYaml(join(REPO, 'examples', 'gluster', f))),
  seedVMContext,
  ...['threshold.yaml', 'base.yaml', 'site.yaml', 'schedule.yaml'].flatMap((f) => fromYaml(join(REPO, 'examples', 'policies', f))),
];

// ---- hostile values ----

const TRAVERSAL = [
  '../etc/passwd', '/etc/passwd', 'a/../../b', 'a/./b', '..', '.', './x', 'a/..', 'a\u0000b', '\u0000', 'a\\..\\b', '..\\x', 'C:\\Windows\\x',
  'a//b', 'a/', '/', '', '.recontext/manifest.json', '.recontext', '.recontext/../x', '%2e%2e/x', '..%2fx', '~/x', 'a\nb', 'a\tb', '\u007f',
  '\u2024\u2024/x', 'a/\u2025/b', '\uff0e\uff0e/x', '\u3002\u3002/x', '\u202eetc/passwd', 'x\u202e/..', '\u200b../x', '\ufeff/x', '..\u2215x', 'a\u2044..\u2044b',
  '\u{1F600}'.repeat(64), '\u{1F600}'.repeat(100), 'é'.repeat(200), `etc/${'x'.repeat(255)}`, `etc/${'x'.repeat(256)}`, `${'a/'.repeat(511)}b`, `${'a/'.repeat(520)}b`,
  'K\u212a/x', 'con', 'nul.txt', 'a:b', 'a*b?c', '-rf', ' ', ' a', 'a ',
] as const;

const TEMPLATES = [
  '{{ secrets.fuzz-secret.token }}', '{{ secret "fuzz-secret" }}', '{{ ../ }}', '{{ ../../values }}', '{{ vm.namespace }}', '{{ vm["namespace"] }}',
  '{{ values["../tenant-b"] }}', '{{ values["fuzz-secret"] | default "none" }}', '{{ values.__proto__ }}', '{{ values["__proto__"] }}', '{{ values.constructor.name }}',
  '{{ vm.constructor }}', '{{ vm.labels.__proto__.polluted }}', '{{ node.labels }}', '{{ node.name }}', '{{ process.env.HOME }}', '{{ this }}', '{{ $ }}', '{{ .Values }}',
  '{{ include "x" }}', '{{ lookup "v1" "Secret" "tenant-b" "s" }}', '{{ "unterminated }}', '{{{{ }}}}', '{{', '}}', '{{ }}', '{{ values.a | default "x" | upper }}',
  '{{ values.a | exec "rm -rf /" }}', '{{ values[\'a\'] | default \'b\' }}', `{{ values${'.a'.repeat(2000)} }}`, '{{'.repeat(5000), '{{ "x" }}\n'.repeat(20000),
  `{{ "${'x'.repeat(100_000)}" }}`, '{{ values.a | default "\\"}} {{ secrets }}" }}', '{{ vm.name | lower | lower | lower | upper }}', '{{ values.\u202ea }}',
] as const;

const UNICODE = ['\u202e', '\u202d', '\u200b', '\u200d', '\ufeff', '\u0000', '\u2024', '\uff0e', '\u212a', '\u0130', '\u0131', '\ud800', '\udfff', 'ǅ', '\u{1F600}', '\u0301', '\u2028', '\u00a0'] as const;
const LIMITS = [63, 128, 253, 255, 256, 317, 1024, 4096, 32_768, 262_144] as const;

function withKey(target: Record<string, Json>, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true }); // "__proto__" as a plain key
}

function nested(depth: number, leaf: Json): Json {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { a: value } : [value];
  return value;
}

const huge = fc.tuple(fc.constantFrom(...LIMITS), fc.integer({ min: -2, max: 2 }), fc.constantFrom('a', 'é', '\u{1F600}', '{{ "x" }}\n', 'a/', '\u202e'))
  .map(([limit, delta, unit]) => unit.repeat(Math.ceil((limit + delta) / unit.length) + 1).slice(0, Math.max(0, limit + delta)));
const tricky = fc.tuple(fc.constantFrom('web', 'fuzz-cm', 'etc/app.conf', 'fz-base', 'tenant-b'), fc.constantFrom(...UNICODE), fc.nat(3)).map(([s, u, at]) => s.slice(0, at) + u + s.slice(at));
const templateSoup = fc.array(fc.constantFrom('{{', '}}', '"', "'", '|', '.', '[', ']', 'values', 'vm', 'node', 'secrets', 'default', 'upper', '\\', '\n', ' ', '__proto__', 'a', '../'), { maxLength: 40 }).map((parts) => parts.join(''));
const crossRef = fc.constantFrom('tenant-b/secret', '../tenant-b/x', 'tenant-b.fuzz-secret', 'kube-system/admin', '/fuzz-secret', 'fuzz-secret/..', 'FUZZ-SECRET', 'fuzz-secret ', '*', '');
const wrongType: fc.Arbitrary<Json> = fc.constantFrom<Json>(0, -1, 1.5, 1e308, -0, true, false, null, [], {}, [[]], '0644', 'true', '1e3', [null], { '': '' });
const deep = fc.tuple(fc.integer({ min: 2, max: 400 }), fc.constantFrom<Json>('x', 1, null, {})).map(([d, leaf]) => nested(d, leaf));
const hostile: fc.Arbitrary<Json> = fc.oneof(
  huge,
  fc.constantFrom(...TRAVERSAL),
  fc.constantFrom(...TEMPLATES),
  templateSoup,
  tricky,
  crossRef,
  wrongType,
  deep,
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 70 }),
);

// ---- mutations ----

type Mutation =
  | { op: 'set' | 'nest'; at: number; value: Json }
  | { op: 'delete'; at: number }
  | { op: 'unknown'; at: number; key: string; value: Json }
  | { op: 'path'; value: string }
  | { op: 'template'; value: string }
  | { op: 'ref'; kind: 'configMapKeyRef' | 'secretKeyRef' | 'configMap' | 'secret'; value: string }
  | { op: 'values'; value: Json }
  | { op: 'name'; value: Json };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: hostile }),
  fc.record({ op: fc.constant('nest' as const), at: fc.nat(), value: deep }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('unknown' as const), at: fc.nat(), key: fc.constantFrom('x-extra', '__proto__', 'constructor', 'status', 'apiVersion', '', 'Spec', 'files '), value: hostile }),
  fc.record({ op: fc.constant('path' as const), value: fc.oneof(fc.constantFrom(...TRAVERSAL), tricky) }),
  fc.record({ op: fc.constant('template' as const), value: fc.oneof(fc.constantFrom(...TEMPLATES), templateSoup) }),
  fc.record({ op: fc.constant('ref' as const), kind: fc.constantFrom('configMapKeyRef' as const, 'secretKeyRef' as const, 'configMap' as const, 'secret' as const), value: fc.oneof(crossRef, tricky) }),
  fc.record({ op: fc.constant('values' as const), value: fc.oneof(deep, wrongType, fc.dictionary(fc.oneof(fc.constantFrom('__proto__', 'constructor', '../x', ''), fc.string({ maxLength: 6 })), fc.oneof(huge, fc.constantFrom(...TEMPLATES)), { maxKeys: 70 })) }),
  fc.record({ op: fc.constant('name' as const), value: fc.oneof(huge, tricky, crossRef, wrongType) }),
);

/** Every (container, key) in the object below the top level, for mutating at a random place. */
function places(o: Json, out: [Record<string, Json> | Json[], string | number][] = []): typeof out {
  if (Array.isArray(o)) o.forEach((v, i) => (out.push([o, i]), places(v, out)));
  else if (o !== null && typeof o === 'object') for (const k of Object.keys(o)) if (k !== 'apiVersion' && k !== 'kind') (out.push([o, k]), places(o[k]!, out));
  return out;
}
function containers(o: Json, out: Record<string, Json>[] = []): Record<string, Json>[] {
  if (Array.isArray(o)) o.forEach((v) => containers(v, out));
  else if (o !== null && typeof o === 'object') (out.push(o), Object.values(o).forEach((v) => containers(v, out)));
  return out;
}

function mutate(object: Obj, m: Mutation): void {
  const record = (o: unknown): o is Record<string, Json> => o !== null && typeof o === 'object' && !Array.isArray(o);
  const spec: Record<string, Json> = record(object.spec) ? object.spec : {}; // spec already gone: typed mutations do nothing
  const files = (Array.isArray(spec.files) ? spec.files : []) as Record<string, Json>[];
  switch (m.op) {
    case 'set':
    case 'nest': {
      const all = places(object);
      if (all.length === 0) break;
      const [where, key] = all[m.at % all.length]!;
      (where as Record<string | number, Json>)[key] = m.value;
      break;
    }
    case 'delete': {
      const all = places(object);
      if (all.length === 0) break;
      const [where, key] = all[m.at % all.length]!;
      if (Array.isArray(where)) where.splice(key as number, 1);
      else delete where[key as string];
      break;
    }
    case 'unknown': {
      const all = containers(object);
      withKey(all[m.at % all.length]!, m.key, m.value);
      break;
    }
    case 'path':
      if (object.kind === 'ContextLayer') (spec.files = [...files, { path: m.value, content: 'x' }]);
      else if (object.kind === 'VMContext') spec.target = { libvirt: { domain: m.value } };
      else spec.arrays = [{ name: m.value, nodeSelector: { a: m.value } }];
      break;
    case 'template':
      if (object.kind === 'ContextLayer') spec.files = [...files, { path: 'fz/template.conf', template: true, content: m.value }];
      else if (object.kind === 'MigrationPolicy') spec.metric = { prometheus: { query: m.value } };
      else spec.layers = [{ name: m.value }];
      break;
    case 'ref':
      if (object.kind === 'ContextLayer') {
        if (m.kind === 'configMap' || m.kind === 'secret') spec.sources = [{ [m.kind]: m.value, directory: 'x' }];
        else spec.files = [...files, { path: 'fz/ref', contentFrom: { [m.kind]: { name: m.value, key: m.kind === 'secretKeyRef' ? 'token' : 'a.conf' } } }];
      } else if (object.kind === 'VMContext') spec.target = { kubevirt: { name: m.value } };
      else spec.vmSelector = { matchLabels: { [m.value]: m.value } };
      break;
    case 'values':
      if (object.kind === 'ContextLayer') spec.values = m.value;
      else if (object.kind === 'VMContext') spec.layerSelector = { matchLabels: m.value as Record<string, Json> };
      else spec.arrays = m.value;
      break;
    case 'name':
      if (record(object.metadata)) (object.metadata as unknown as Record<string, Json>).name = m.value;
      break;
  }
}

interface Case {
  readonly index: number;
  readonly object: Obj;
  readonly mutations: readonly Mutation[];
  /** The mutations set metadata.name: the server judges it (and it may collide). */
  readonly ownName: boolean;
}

/** Every listed path and template on the base layer (always tried), then `runs` generated cases. */
const cases = (runs: number, seed: number): Case[] =>
  [
    ...TRAVERSAL.map((value): [number, Mutation[]] => [0, [{ op: 'path', value }]]),
    ...TEMPLATES.map((value): [number, Mutation[]] => [0, [{ op: 'template', value }]]),
    ...fc.sample(fc.tuple(fc.constantFrom(...SEEDS.keys()), fc.array(mutation, { minLength: 1, maxLength: 3 })), { numRuns: runs, seed }),
  ].map(([seedIndex, mutations], index) => {
    const object = clone(SEEDS[seedIndex]!);
    object.metadata.name = `fz-${object.kind === 'ContextLayer' ? 'l' : object.kind === 'VMContext' ? 'v' : 'p'}-${index}`;
    for (const m of mutations) mutate(object, m);
    if (object.metadata && typeof object.metadata === 'object') (object.metadata as { namespace?: Json }).namespace = NS;
    return { index, object, mutations, ownName: mutations.some((m) => m.op === 'name') };
  });

const short = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);
type Conditioned = { metadata: { name: string; generation?: number }; status?: { observedGeneration?: number; conditions?: { type: string; status: string; reason?: string; message?: string }[] } };

describe.skipIf(controlPlaneSkipReason())('fuzz: hostile objects at the API server, the operator and recontext validate', () => {
  let operator: OperatorProcess | undefined;
  const dirs: string[] = [];
  afterAll(async () => {
    operator?.kill('SIGTERM');
    await operator?.exited;
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it(`${TRAVERSAL.length + TEMPLATES.length} listed and ${RUNS} generated objects: each is rejected with a message or ends with a clear condition; the operator survives; validate reports and never throws`, async () => {
    const plane = await useControlPlane();
    const kubectl = strict(plane.kubectl);
    await installCrds(plane);
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['create', 'configmap', '-n', NS, 'fuzz-cm', '--from-literal=a.conf=from-cm']);
    await kubectl(['create', 'secret', 'generic', '-n', NS, 'fuzz-secret', `--from-literal=token=${SECRET_VALUE}`]);
    const client = KubeClient.fromKubeconfig(plane.kubeconfigPath, { requestTimeoutMs: 60_000 });
    await client.create(`${API}/contextlayers`, { ...clone(baseLayer), metadata: { name: 'fz-base', namespace: NS } });
    const imageDir = mkdtempSync(join(tmpdir(), 'fuzz-images-'));
    dirs.push(imageDir);
    operator = await startOperatorProcess(['--kubeconfig', plane.kubeconfigPath, '-n', NS, '--driver', 'none', '--no-leader-elect', '--image-dir', imageDir, '--log-level', 'info']);
    await until('the operator serves /healthz', async () => ((await operator!.healthy()) ? true : undefined), 30_000);

    const generated = cases(RUNS, SEED);
    const report = (what: string, c: Case) => `${what} [FUZZ_SEED=${SEED} case ${c.index}, mutations ${short(JSON.stringify(c.mutations), 600)}]`;
    const failures: string[] = [];
    const accepted: { kind: string; name: string; c: Case }[] = [];
    const rejected = new Map<number, string>();
    const started = Date.now();
    for (const c of generated) {
      const plural = PLURAL[c.object.kind]!;
      try {
        await client.create(`${API}/${plural}?fieldValidation=Strict`, c.object);
        accepted.push({ kind: c.object.kind, name: c.object.metadata.name, c });
      } catch (error: unknown) {
        if (!(error instanceof ApiError)) failures.push(report(`${c.object.kind} ${short(String(c.object.metadata?.name))}: not an API answer: ${String(error)}`, c));
        else if (error.status >= 500 || error.status < 400 || error.message.trim() === '') failures.push(report(`${c.object.kind}: HTTP ${error.status} ${short(error.message)}`, c));
        else rejected.set(c.index, `${error.status} ${error.reason}: ${error.message}`);
        continue;
      }
      if (c.object.kind === 'ContextLayer') {
        // Make the operator render it: a VMContext that lists it.
        const vm = { ...clone(seedVMContext), metadata: { name: `fz-vm-${c.index}`, namespace: NS }, spec: { target: { libvirt: { domain: `fz-vm-${c.index}` } }, layers: [{ name: c.object.metadata.name }] } };
        await client.create(`${API}/vmcontexts`, vm);
        accepted.push({ kind: 'VMContext', name: vm.metadata.name, c });
      }
    }
    const submittedMs = Date.now() - started;

    // Every accepted object ends with a Ready condition that says something.
    const pending = new Map(accepted.map((a) => [`${a.kind}/${a.name}`, a]));
    const reasons = new Map<string, number>();
    await until('a Ready condition on every accepted object', async () => {
      for (const [key, a] of pending) {
        const o = await client.get<Conditioned>(`${API}/${PLURAL[a.kind]}/${a.name}`);
        const ready = o.status?.conditions?.find((x) => x.type === 'Ready');
        if (ready && (ready.status === 'True' || (ready.status === 'False' && ready.reason && ready.message))) {
          pending.delete(key);
          const label = `${a.kind} ${ready.status} ${ready.reason}`;
          reasons.set(label, (reasons.get(label) ?? 0) + 1);
          if (JSON.stringify(o.status).includes(SECRET_VALUE)) failures.push(report(`${key}: the secret value is in its status`, a.c));
        }
      }
      return pending.size === 0 ? true : undefined;
    }, 60_000).catch((error: unknown) => {
      failures.push(`${String(error)}; without a Ready condition: ${[...pending.values()].map((a) => report(`${a.kind}/${a.name}`, a.c)).join('\n')}`);
    });
    expect(operator.gone()).toBe(false);
    expect(await operator.healthy()).toBe(true);

    // Nothing unhandled in the operator's log; no secret value anywhere in it.
    const log = operator.lines;
    // (A VMContext targeting KubeVirt where KubeVirt is not installed gets VMNotFound and an error line: handled.)
    const unhandled = log.filter((l) => !l.startsWith('{') || (/"level":"error"/.test(l) && !/install KubeVirt/.test(l)) || /reconcile failed; will retry/.test(l));
    failures.push(...unhandled.map((l) => `operator log: ${short(l, 500)}`));
    expect(log.join('\n')).not.toContain(SECRET_VALUE);

    // (b) validate, per object: never throws, and reports a problem for everything the server rejected.
    const dir = mkdtempSync(join(tmpdir(), 'fuzz-validate-'));
    dirs.push(dir);
    let reported = 0;
    for (const c of generated) {
      const file = join(dir, `case-${String(c.index).padStart(3, '0')}.json`);
      writeFileSync(file, JSON.stringify(c.object));
      let problems: readonly { message: string }[];
      try {
        problems = validatePaths([file]).problems;
      } catch (error: unknown) {
        failures.push(report(`validate threw: ${String(error)}`, c));
        continue;
      }
      if (problems.length > 0) reported++;
      const why = rejected.get(c.index);
      // (A document whose apiVersion names another group is not ours to validate: skipped by design.)
      const schemaVerdict = validateObject(c.object);
      if (why && problems.length === 0 && !/AlreadyExists/.test(why) && schemaVerdict.kind === 'ours') failures.push(report(`the API server rejected it (${short(why)}) but validate found nothing`, c));
      // The other way: what the server accepted passes validate's schema and CEL part (its semantic
      // checks — templates, paths an image can hold, duplicates — may still find problems).
      if (!why && schemaVerdict.kind === 'ours' && schemaVerdict.problems.length > 0) {
        failures.push(report(`the API server accepted it but validate's schema check says: ${short(schemaVerdict.problems.map((p) => `${p.path.join('.')}: ${p.message}`).join('; '))}`, c));
      }
    }
    const cli = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'test', 'support', 'run-cli.ts'), 'validate', dir], { cwd: REPO, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    expect(cli.status).toBe(1);
    expect(cli.stdout).toMatch(/^invalid: \d+ problems in \d+ files/m);
    expect(cli.stderr).not.toMatch(/at .*\.ts:\d+|TypeError|RangeError/);

    // Lengths are characters (code points) on both sides: 4096 emoji fit a 4096-character value, 4097 do not.
    for (const n of [4096, 4097]) {
      const object = { ...clone(baseLayer), metadata: { name: `fz-emoji-${n}`, namespace: NS }, spec: { class: 'service', values: { a: '\u{1F600}'.repeat(n) }, files: [{ path: '\u{1F600}'.repeat(40), content: '\u{1F600}'.repeat(262_144) }] } };
      const server = await client.create(`${API}/contextlayers?fieldValidation=Strict`, object).then(() => 'accepted', (e: unknown) => (e instanceof ApiError ? `rejected: ${e.message}` : String(e)));
      const file = join(dir, `emoji-${n}.json`);
      writeFileSync(file, JSON.stringify(object));
      const offline = validatePaths([file]).problems.map((p) => `${p.field}: ${p.message}`);
      expect({ server: server.replace(/:.*/, ''), offline }).toEqual(n === 4096 ? { server: 'accepted', offline: [] } : { server: 'rejected', offline: ['spec.values.a: must be at most 4096 characters (got 4097)'] });
    }

    console.log(
      `fuzz (FUZZ_SEED=${SEED}): ${generated.length} objects in ${submittedMs} ms; API server accepted ${generated.length - rejected.size}, rejected ${rejected.size}; ` +
        `validate reported problems for ${reported}; operator log ${log.length} lines; Ready conditions: ${[...reasons].sort().map(([k, n]) => `${k} ×${n}`).join(', ')}`,
    );
    expect(failures).toEqual([]);
  }, 180_000);
});
