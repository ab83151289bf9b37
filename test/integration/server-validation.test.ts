// The API server and `recontext validate` must agree: every document of the invalid corpus that
// the server can judge is rejected by it too, and where the rule is one of our CEL rules, with
// the same field path and message. Documents only the operator can judge (template syntax,
// path clashes, time zones) say so in their second line and are accepted by the server; so is a
// YAML file with a duplicated key, which kubectl reads leniently and validate rejects on purpose.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RESOURCES } from '../../src/crds/index.js';
import type { CelRule } from '../../src/crds/kit.js';
import { controlPlaneSkipReason, installCrds, useControlPlane, type SharedControlPlane } from '../controlplane/shared.js';

const corpus = join(import.meta.dirname, '..', 'fixtures', 'invalid');
const fixtures = readdirSync(corpus).filter((f) => f.endsWith('.yaml')).sort();
const NS = 'server-validation';

function celMessages(): Set<string> {
  const messages = new Set<string>();
  const visit = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return;
    const rules = (node as { 'x-kubernetes-validations'?: CelRule[] })['x-kubernetes-validations'];
    for (const rule of rules ?? []) messages.add(rule.message);
    for (const value of Object.values(node)) visit(value);
  };
  for (const resource of RESOURCES) visit(resource.spec);
  return messages;
}

describe.skipIf(controlPlaneSkipReason())('API server validation agrees with recontext validate', () => {
  let plane: SharedControlPlane;
  const cel = celMessages();

  beforeAll(async () => {
    plane = await useControlPlane();
    await installCrds(plane);
    await plane.kubectl(['create', 'namespace', NS]);
  });

  it.each(fixtures)('%s', async (name) => {
    const text = readFileSync(join(corpus, name), 'utf8');
    const [, field, message] = /^# expect: (\S+): (.+)$/m.exec(text)!;
    const semantic = /^# server: accepts/m.test(text);
    const result = await plane.kubectl(['apply', '--dry-run=server', '--validate=strict', '-n', NS, '-f', join(corpus, name)]);
    if (semantic) {
      expect(result.code, result.stderr).toBe(0);
      return;
    }
    expect(result.code).not.toBe(0);
    const rule = [...cel].find((m) => message!.startsWith(m) || m.startsWith(message!) || m.includes(message!));
    if (rule) {
      // "Invalid value", or "Required value" for rules declared with reason FieldValueRequired.
      expect(result.stderr).toMatch(new RegExp(`${field!.replace(/[.[\]]/g, '\\$&')}: (Invalid|Required) value`));
      expect(result.stderr).toContain(rule);
    }
  });
});
