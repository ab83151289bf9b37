import { describe, expect, it } from 'vitest';
import { HookFormatError, mergeHooks, parseHooksFile, pathMatches } from './format.js';

describe('hooks file format', () => {
  it('parses run, signal and restart hooks with defaults, normalizing paths', () => {
    const entries = parseHooksFile(
      JSON.stringify({
        hooks: [
          { name: 'gluster', paths: ['etc/glusterfs/'], run: ['/usr/sbin/gluster-reload', '--quick'], debounceMs: 50 },
          { name: 'nginx', paths: ['/etc/nginx'], signal: { name: 'HUP', pidfile: '/run/nginx.pid' } },
          { name: 'chrony', paths: ['/etc/chrony/'], restart: 'chrony.service', timeoutMs: 5000 },
          { name: 'old', disabled: true },
        ],
      }),
      'service',
    );
    expect(entries).toEqual([
      { name: 'gluster', layer: 'service', paths: ['/etc/glusterfs'], action: { kind: 'run', argv: ['/usr/sbin/gluster-reload', '--quick'] }, debounceMs: 50, timeoutMs: 60_000, appendPaths: false },
      { name: 'nginx', layer: 'service', paths: ['/etc/nginx'], action: { kind: 'signal', signal: 'SIGHUP', pidfile: '/run/nginx.pid' }, debounceMs: 100, timeoutMs: 60_000, appendPaths: false },
      { name: 'chrony', layer: 'service', paths: ['/etc/chrony'], action: { kind: 'restart', unit: 'chrony.service' }, debounceMs: 100, timeoutMs: 5000, appendPaths: false },
      { name: 'old', layer: 'service', disabled: true },
    ]);
  });

  it('refuses what it cannot run, naming the layer and the hook', () => {
    const bad: unknown[] = [
      [],
      { hooks: [{ name: 'a', paths: ['/x'] }] },
      { hooks: [{ name: 'a', paths: ['/x'], run: ['relative'] }] },
      { hooks: [{ name: 'a', paths: [], run: ['/bin/true'] }] },
      { hooks: [{ name: 'a', paths: ['/x/../y'], run: ['/bin/true'] }] },
      { hooks: [{ name: 'a', paths: ['/x'], run: ['/bin/true'], restart: 'x.service' }] },
      { hooks: [{ name: 'a', paths: ['/x'], signal: { name: 'NOPE', pidfile: '/run/p' } }] },
      { hooks: [{ name: 'a', paths: ['/x'], run: ['/bin/true'], debounceMs: -1 }] },
      { hooks: [{ name: 'a', paths: ['/x'], run: ['/bin/true'], typo: 1 }] },
      { hooks: [{ name: 'a', paths: ['/x'], run: ['/bin/true'] }, { name: 'a', paths: ['/y'], run: ['/bin/true'] }] },
    ];
    for (const b of bad) expect(() => parseHooksFile(JSON.stringify(b), 'svc'), JSON.stringify(b)).toThrow(HookFormatError);
    expect(() => parseHooksFile('{', 'svc')).toThrow(/layer svc/);
  });

  it('merges by name: the highest layer decides, and may disable a lower layer\'s hook', () => {
    const high = parseHooksFile(JSON.stringify({ hooks: [{ name: 'reload', paths: ['/etc/a'], run: ['/bin/high'] }, { name: 'noisy', disabled: true }] }), 'infra');
    const low = parseHooksFile(
      JSON.stringify({ hooks: [{ name: 'reload', paths: ['/etc'], run: ['/bin/low'] }, { name: 'noisy', paths: ['/'], run: ['/bin/noisy'] }, { name: 'other', paths: ['/x'], run: ['/bin/x'] }] }),
      'service',
    );
    expect(mergeHooks([high, low]).map((h) => [h.name, h.layer])).toEqual([
      ['other', 'service'],
      ['reload', 'infra'],
    ]);
  });

  it('matches a path, everything under it, and nothing else', () => {
    expect(pathMatches('/etc/glusterfs', '/etc/glusterfs')).toBe(true);
    expect(pathMatches('/etc/glusterfs', '/etc/glusterfs/cache.conf')).toBe(true);
    expect(pathMatches('/etc/glusterfs', '/etc/glusterfs.conf')).toBe(false);
    expect(pathMatches('/', '/anything')).toBe(true);
  });
});
