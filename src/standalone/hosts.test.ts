import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLibvirtUri, readHostsFile, resolveHosts } from './hosts.js';

describe('libvirt URIs', () => {
  it('reads the local forms', () => {
    expect(parseLibvirtUri('qemu:///system')).toEqual({ socketPath: '/run/libvirt/libvirt-sock', driverUri: 'qemu:///system' });
    expect(parseLibvirtUri('qemu+unix:///system?socket=/run/x/libvirt-sock')).toEqual({ socketPath: '/run/x/libvirt-sock', driverUri: 'qemu:///system' });
  });
  it('refuses remote transports and hosts clearly', () => {
    expect(() => parseLibvirtUri('qemu+tls://h/system')).toThrow(/transport "tls" is not supported/);
    expect(() => parseLibvirtUri('qemu://remote/system')).toThrow(/remote host/);
    expect(() => parseLibvirtUri('not a uri')).toThrow(/not a libvirt URI/);
    expect(() => parseLibvirtUri('qemu+unix:///system?socket=relative')).toThrow(/absolute/);
  });
});

describe('hosts file', () => {
  const write = (text: string) => {
    const file = join(mkdtempSync(join(tmpdir(), 'hosts-')), 'hosts.yaml');
    writeFileSync(file, text);
    return file;
  };

  it('gives each host its labels; --libvirt picks hosts by URI', () => {
    const file = write(`hosts:
  - name: host-a
    uri: qemu+unix:///system?socket=/run/a/libvirt-sock
    labels: { topology.kubernetes.io/zone: zone-a }
  - name: host-b
    uri: qemu+unix:///system?socket=/run/b/libvirt-sock
`);
    const entries = readHostsFile(file);
    expect(resolveHosts(entries, [], () => {})).toEqual([
      { name: 'host-a', socketPath: '/run/a/libvirt-sock', uri: 'qemu:///system', labels: { 'topology.kubernetes.io/zone': 'zone-a' } },
      { name: 'host-b', socketPath: '/run/b/libvirt-sock', uri: 'qemu:///system', labels: {} },
    ]);
    expect(resolveHosts(entries, ['qemu+unix:///system?socket=/run/b/libvirt-sock'], () => {}).map((h) => h.name)).toEqual(['host-b']);
  });

  it('drives a URI missing from the file without labels, and says so', () => {
    const warnings: string[] = [];
    const hosts = resolveHosts([], ['qemu+unix:///system?socket=/run/site-x/libvirt-sock'], (m) => warnings.push(m));
    expect(hosts).toEqual([{ name: 'site-x', socketPath: '/run/site-x/libvirt-sock', uri: 'qemu:///system', labels: {} }]);
    expect(warnings[0]).toMatch(/not in the hosts file/);
  });

  it.each([
    ['hosts: {}', /expected a mapping with a "hosts" list/],
    ['hosts: []\nextra: 1', /unknown field "extra"/],
    ['hosts:\n  - name: Bad_Name\n    uri: qemu:///system', /hosts\[0\]\.name: must be a DNS-1123 name/],
    ['hosts:\n  - name: a\n    uri: qemu:///system\n  - name: a\n    uri: qemu:///system', /listed twice/],
    ['hosts:\n  - name: a\n    uri: qemu+ssh://h/system', /transport "ssh"/],
    ['hosts:\n  - name: a\n    uri: qemu:///system\n    labels: { zone: 3 }', /labels: must map label names to strings/],
    ['hosts:\n  - name: a\n    uri: qemu:///system\n    zone: x', /unknown field "zone"/],
  ])('rejects %j', (text, message) => {
    expect(() => readHostsFile(write(text))).toThrow(message);
  });

  it('needs at least one host', () => {
    expect(() => resolveHosts([], [], () => {})).toThrow(/no libvirt host to drive/);
  });
});
