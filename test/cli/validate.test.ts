import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli-in-process.js';
import { formatReport, validatePaths } from '../../src/cli/validate.js';

const examples = join(import.meta.dirname, '..', '..', 'examples');

const run = runCli;

describe('recontext validate', () => {
  it('accepts the examples with a one-line summary and exit 0', async () => {
    const { code, stdout } = await run(['validate', examples]);
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(stdout).toMatch(/^valid: 11 recontext documents in \d+ files; 4 other documents skipped \(ConfigMap, Secret, VirtualMachine\)/);
  });

  it('exits 1 and names file, line, document, object, field and reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'validate-'));
    writeFileSync(
      join(dir, 'two.yaml'),
      [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata: {name: fine}',
        '---',
        'apiVersion: recontext.dev/v1alpha1',
        'kind: ContextLayer',
        'metadata:',
        '  name: cache',
        'spec:',
        '  class: infrastructure',
        '  files:',
        '    - path: ../escape',
        '      content: x',
      ].join('\n'),
    );
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain(`${join(dir, 'two.yaml')}:12: document 2 (ContextLayer/cache): spec.files[0].path: must be normalized`);
    expect(stdout).toMatch(/invalid: 1 problem in 1 file/);
  });

  it('reports every problem of a document, not only the first', () => {
    const dir = mkdtempSync(join(tmpdir(), 'validate-'));
    writeFileSync(
      join(dir, 'many.yaml'),
      'apiVersion: recontext.dev/v1alpha1\nkind: ContextLayer\nmetadata: {name: x}\nspec:\n  class: nope\n  priority: -1\n  extra: 1\n',
    );
    const fields = validatePaths([dir]).problems.map((p) => p.field).sort();
    expect(fields).toEqual(['spec.class', 'spec.extra', 'spec.priority']);
  });

  it('treats YAML 1.1 octal modes as kubectl does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'validate-'));
    writeFileSync(
      join(dir, 'mode.yaml'),
      'apiVersion: recontext.dev/v1alpha1\nkind: ContextLayer\nmetadata: {name: x}\nspec:\n  class: service\n  files:\n    - {path: a, content: x, mode: 0755}\n',
    );
    expect(formatReport(validatePaths([dir]))).toMatch(/^valid: 1 recontext document/);
  });

  it('fails clearly on a path that does not exist and on a directory without manifests', async () => {
    expect((await run(['validate', '/nonexistent/dir'])).stdout).toContain('/nonexistent/dir: no such file or directory');
    const empty = mkdtempSync(join(tmpdir(), 'validate-empty-'));
    const { code, stdout } = await run(['validate', empty]);
    expect(code).toBe(1);
    expect(stdout).toContain('no manifest files');
  });

  it("checks standalone mode's hosts file beside the manifests", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'validate-hosts-'));
    writeFileSync(join(dir, 'hosts.yaml'), 'hosts:\n  - name: host-a\n    uri: qemu+tls://far/system\n');
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/hosts\.yaml: document 1 \(hosts file\): hosts\[0\]\.uri: libvirt URI "qemu\+tls:\/\/far\/system": transport "tls" is not supported/);
  });

  it('prints machine-readable JSON with -o json', async () => {
    const { code, stdout } = await run(['validate', '-o', 'json', examples]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ checked: 11, problems: [] });
  });

  it('has --help on every command', async () => {
    for (const command of [[], ['validate'], ['render'], ['operator']]) {
      const { code, stdout } = await run([...command, '--help']);
      expect(code).toBe(0);
      expect(stdout).toContain('Usage: recontext');
    }
  });

  it('an input with nothing of ours to check is invalid, not "valid: 0": an empty file, or only other kinds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'validate-empty-'));
    writeFileSync(join(dir, 'empty.yaml'), '');
    const empty = await run(['validate', join(dir, 'empty.yaml')]);
    expect(empty.code).toBe(1);
    expect(empty.stdout).toMatch(/no ContextLayer, VMContext or MigrationPolicy found\n/);
    writeFileSync(join(dir, 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n');
    const others = await run(['validate', join(dir, 'cm.yaml')]);
    expect(others.code).toBe(1);
    expect(others.stdout).toContain('no ContextLayer, VMContext or MigrationPolicy found (only ConfigMap)');
  });

  it('render: a malformed --node-labels is a usage error (exit 2), found before anything is read', async () => {
    const { code, stderr } = await run(['render', '-f', examples, '--vm', 'x', '--node-labels', 'zone-a', '-o', tmpdir()]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/option '--node-labels <k=v,...>' argument 'zone-a' is invalid\. label "zone-a" is not of the form key=value/);
  });
});
