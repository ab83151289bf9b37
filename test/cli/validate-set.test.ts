// `recontext validate` on a directory as one set, as a new user writes one: every problem of every
// document in one run, each once with file:line and field path, and the exit codes of --help.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli-in-process.js';

const run = runCli;

/** A site directory with the given files (name → YAML). */
function site(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'validate-set-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const layer = (name: string, spec: string, namespace?: string) =>
  `apiVersion: recontext.dev/v1alpha1\nkind: ContextLayer\nmetadata:\n  name: ${name}\n${namespace ? `  namespace: ${namespace}\n` : ''}spec:\n${spec}`;
const vmContext = (name: string, layers: string[], extra = '', namespace?: string) =>
  `apiVersion: recontext.dev/v1alpha1\nkind: VMContext\nmetadata:\n  name: ${name}\n${namespace ? `  namespace: ${namespace}\n` : ''}spec:\n  target:\n    kubevirt: {name: ${name}}\n  layers:\n${layers.map((l) => `    - name: ${l}\n`).join('')}${extra}`;
const simpleLayer = '  class: service\n  files:\n    - {path: etc/app.conf, content: x}\n';

describe('recontext validate: a directory as one set', () => {
  it('a layer defined twice is an error on the second, naming where the first is', async () => {
    const dir = site({ 'a.yaml': layer('cache', simpleLayer), 'b.yaml': layer('cache', simpleLayer), 'vm.yaml': vmContext('web-1', ['cache']) });
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain(`${join(dir, 'b.yaml')}:4: document 1 (ContextLayer/cache): metadata.name: ContextLayer "cache" in namespace default is defined twice (first at ${join(dir, 'a.yaml')}:4)`);
    expect(stdout).toMatch(/invalid: 1 problem in 3 files/);
  });

  it('the same name in two namespaces is no duplicate', async () => {
    const dir = site({ 'a.yaml': layer('cache', simpleLayer), 'b.yaml': layer('cache', simpleLayer, 'shop'), 'vm.yaml': vmContext('web-1', ['cache']) });
    expect((await run(['validate', dir])).code).toBe(0);
  });

  it('a VMContext naming a layer the set does not have: error with a suggestion, or the namespace it is in', async () => {
    const dir = site({
      'layers.yaml': layer('site-cache', simpleLayer) + '---\n' + layer('billing', simpleLayer, 'shop'),
      'vm.yaml': vmContext('web-1', ['site-cahce', 'billing']),
    });
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain(`vm.yaml:9: document 1 (VMContext/web-1): spec.layers[0].name: no ContextLayer "site-cahce" in namespace default (did you mean "site-cache"?)`);
    expect(stdout).toContain(`vm.yaml:10: document 1 (VMContext/web-1): spec.layers[1].name: no ContextLayer "billing" in namespace default (there is one in namespace shop; a VMContext only gets layers of its own namespace)`);
  });

  it('a ConfigMap in the set without the key a layer reads is an error; a Secret not in the set is a warning, an error with --strict', async () => {
    const dir = site({
      'cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata:\n  app.conf: "x"\n',
      'layer.yaml': layer(
        'app',
        '  class: service\n  files:\n    - path: etc/app.conf\n      contentFrom:\n        configMapKeyRef: {name: app, key: app.cnf}\n    - path: etc/token\n      contentFrom:\n        secretKeyRef: {name: app-token, key: token}\n',
      ),
      'vm.yaml': vmContext('web-1', ['app']),
    });
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain(`layer.yaml:10: document 1 (ContextLayer/app): spec.files[0].contentFrom.configMapKeyRef.key: ConfigMap "app" (${join(dir, 'cm.yaml')}:3) has no key "app.cnf" (did you mean "app.conf"?)`);
    expect(stdout).toContain('layer.yaml:13: document 1 (ContextLayer/app): warning: spec.files[1].contentFrom.secretKeyRef.name: Secret "app-token" is not in the set (namespace default); it must exist in the cluster');
    expect(stdout).toMatch(/invalid: 1 problem in 3 files .*; 1 warning \(--strict makes them errors\)/);

    writeFileSync(join(dir, 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata:\n  app.cnf: "x"\n');
    const lenient = await run(['validate', dir]);
    expect(lenient.code).toBe(0);
    expect(lenient.stdout).toMatch(/warning: .*Secret "app-token" is not in the set[^]*\nvalid: 2 recontext documents in 3 files; 1 other document skipped \(ConfigMap\); 1 warning/);
    const strict = await run(['validate', '--strict', dir]);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toMatch(/spec\.files\[1\]\.contentFrom\.secretKeyRef\.name: Secret "app-token" is not in the set/);
    expect(strict.stdout).not.toContain('warning:');
  });

  it('template names that can never have a value: vm.nmae, values.cahce (a typo is a typo)', async () => {
    const dir = site({
      'layer.yaml': layer(
        'app',
        '  class: service\n  values: {cache: c1}\n  files:\n    - path: etc/app.conf\n      template: true\n      content: |\n        vm = {{ vm.nmae }}\n        cache = {{ values.cahce }}\n        ok = {{ values.other | default "x" }} {{ node.labels["a/b"] | default "" }}\n',
      ),
      'vm.yaml': vmContext('web-1', ['app']),
    });
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain('spec.files[0].content: template: line 1, column 6: unknown name vm.nmae (did you mean vm.name?); vm has name, namespace, labels');
    expect(stdout).toContain('spec.files[0].content: template: line 2, column 9: values.cahce is not set in spec.values or any variant (did you mean values.cache?); set it or add | default "…"');
    expect(stdout).toMatch(/invalid: 2 problems/);
  });

  it('unknown fields say "did you mean"; a missing required number is one readable line', async () => {
    const dir = site({
      'layer.yaml': layer('app', simpleLayer + '  prio: 5\n'),
      'vm.yaml': vmContext('web-1', ['app']),
      'policy.yaml':
        'apiVersion: recontext.dev/v1alpha1\nkind: MigrationPolicy\nmetadata: {name: p}\nspec:\n  type: Site\n  vmSelector: {matchLabels: {app: web}}\n  metric:\n    reported: {name: queue}\n  arrays:\n    - {name: a, nodeSelector: {x: a}}\n    - {name: b, nodeSelector: {x: b}}\n  site: {home: a, fast: b}\n',
    });
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain('layer.yaml:9: document 1 (ContextLayer/app): spec.prio: unknown field "prio" (did you mean "priority"?)');
    const missing = stdout.split('\n').filter((l) => l.includes('spec.site.bigJobGrade'));
    expect(missing).toEqual([`${join(dir, 'policy.yaml')}:12: document 1 (MigrationPolicy/p): spec.site.bigJobGrade: required field is missing (a number)`]);
  });

  it('a YAML 1.1 boolean where a string belongs gets a "quote it" hint', async () => {
    const dir = site({ 'layer.yaml': layer('app', simpleLayer + '  values:\n    debug: y\n'), 'vm.yaml': vmContext('web-1', ['app']) });
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain('layer.yaml:10: document 1 (ContextLayer/app): spec.values.debug: must be of type string (got boolean true) — YAML 1.1 (as kubectl reads it) takes y for a boolean; quote it: "y"');
  });

  it('ConfigMap data that YAML reads as a number or boolean: must be a string, with how to quote it', async () => {
    const dir = site({
      'cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata:\n  port: 8080\n  debug: on\n',
      'layer.yaml': layer('app', '  class: service\n  sources: [{configMap: app}]\n'),
      'vm.yaml': vmContext('web-1', ['app']),
    });
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain('cm.yaml:5: document 1 (ConfigMap/app): data.port: must be a string (got number 8080); quote it: "8080"');
    expect(stdout).toContain('cm.yaml:6: document 1 (ConfigMap/app): data.debug: must be a string (got boolean true) — YAML 1.1 (as kubectl reads it) takes on for a boolean; quote it: "on"');
  });

  it('reports the problems of all documents in one run, schema and semantic ones of the same document together', async () => {
    const dir = site({
      'a.yaml': layer('app', '  class: servce\n  files:\n    - {path: a, content: x}\n    - {path: a, content: w}\n    - path: t\n      template: true\n      content: "{{ node.zon }}"\n'),
      'b.yaml': vmContext('web-1', ['app', 'missing']),
      'c.yaml': 'apiVersion: recontext.dev/v1alpha1\nkind: VMContext\nmetadata: {name: web-2}\nspec:\n  target: {kubevirt: {name: web-2}}\n  recontextOn: [Migraton]\n',
    });
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    const lines = stdout.trim().split('\n');
    expect(lines.slice(0, -1).map((l) => l.replace(/^.*?: document \d+ \([^)]*\): /, ''))).toEqual([
      'spec.class: must be one of: service, infrastructure, legislative, broker (got "servce")',
      'spec.files[1].path: duplicate path (also spec.files[0])',
      'spec.files[2].content: template: line 1, column 1: unknown name node.zon (did you mean node.zone?); node has name, zone, region, labels, annotations',
      'spec.layers[1].name: no ContextLayer "missing" in namespace default (the set has app)',
      'spec.recontextOn[0]: must be one of: Migration, LayerChange, NodeChange (got "Migraton")',
    ]);
    expect(lines.at(-1)).toBe('invalid: 5 problems in 3 files (3 recontext documents checked)');
  });

  it("standalone mode: each libvirt VM's layers must render on every host of the hosts file", async () => {
    const libvirtVM = 'apiVersion: recontext.dev/v1alpha1\nkind: VMContext\nmetadata: {name: db-1}\nspec:\n  target: {libvirt: {domain: db-1}}\n  layers: [{name: zone}]\n';
    const zoneLayer = layer('zone', '  class: infrastructure\n  files:\n    - path: etc/zone\n      template: true\n      content: "{{ node.zone }}"\n');
    const without = await run(['validate', site({ 'vm.yaml': libvirtVM, 'layer.yaml': zoneLayer })]);
    expect(without.code).toBe(0);
    expect(without.stdout).toContain('warning: spec.target.libvirt: layers zone read the node (templates or variants), but the set has no hosts.yaml');
    const dir = site({
      'vm.yaml': libvirtVM,
      'layer.yaml': zoneLayer,
      'hosts.yaml': 'hosts:\n  - name: host-a\n    uri: qemu:///system\n    labels: {topology.kubernetes.io/zone: zone-a}\n  - name: host-b\n    uri: qemu+unix:///system?socket=/run/b/libvirt-sock\n',
    });
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain(`(ContextLayer/zone): spec: does not render for VM db-1 on host host-b (${join(dir, 'hosts.yaml')}): layer zone: etc/zone: line 1, column 1: node.zone is not set`);
    expect(stdout).not.toContain('host-a (');
  });

  it('a KubeVirt VirtualMachine in the set: an empty CD-ROM ctx-<layer> per layer (warning when missing), none of those names as another disk or a volume', async () => {
    const vm = (disks: string, volumes: string) =>
      `apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: web-1}\nspec:\n  template:\n    spec:\n      domain:\n        devices:\n          disks:\n${disks}      volumes:\n${volumes}`;
    const files = { 'layers.yaml': layer('app', simpleLayer) + '---\n' + layer('zone', simpleLayer), 'vmctx.yaml': vmContext('web-1', ['app', 'zone']) };
    const good = await run(['validate', site({ ...files, 'vm.yaml': vm('            - {name: root, disk: {bus: virtio}}\n            - {name: ctx-app, cdrom: {bus: sata}}\n            - {name: ctx-zone, cdrom: {bus: sata}}\n', '        - {name: root, containerDisk: {image: x}}\n') })]);
    expect(good.stdout).toMatch(/^valid: 3 recontext documents in 3 files; 1 other document skipped \(VirtualMachine\)\n$/);
    const dir = site({ ...files, 'vm.yaml': vm('            - {name: ctx-app, disk: {bus: virtio}}\n', '        - {name: ctx-app, containerDisk: {image: x}}\n') });
    const bad = await run(['validate', dir]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('vm.yaml:10: document 1 (VirtualMachine/web-1): spec.template.spec.domain.devices.disks[0]: disk ctx-app must be an empty CD-ROM for layer app (cdrom: {bus: sata})');
    expect(bad.stdout).toContain("vm.yaml:12: document 1 (VirtualMachine/web-1): spec.template.spec.volumes[0]: volume ctx-app is recontext's for layer app: remove it (recontext adds and swaps it)");
    expect(bad.stdout).toContain('vm.yaml:10: document 1 (VirtualMachine/web-1): warning: spec.template.spec.domain.devices.disks: no empty CD-ROM ctx-zone for layer zone of VMContext web-1: add {name: ctx-zone, cdrom: {bus: sata}}, or the running VM gets that layer only after a restart');
  });

  it('--help documents the exit codes; a usage error exits 2', async () => {
    const help = await run(['validate', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit status:\n {2}0 {2}valid[^\n]*\n {2}1 {2}invalid[^\n]*\n {2}2 {2}usage error/);
    expect(help.stdout).toContain('--strict');
    expect((await run(['validate'])).code).toBe(2);
    expect((await run(['validate', '--no-such-flag', '.'])).code).toBe(2);
  });
});
