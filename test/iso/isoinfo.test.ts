// Cross-check with isoinfo (genisoimage's reader, independent of our code and of libisofs): the
// Rock Ridge listing (-R), the Joliet listing (-J), the plain ISO9660 listing and the path table
// agree with the input; `isoinfo -x` reads every file's bytes back.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso, type IsoEntry } from '../../src/iso/index.js';
import { FIXED_TIME, expectedTree, missingTool, runOk, sampleEntries, type Snapshot } from './helpers.js';

interface Listed {
  readonly kind: 'file' | 'dir' | 'symlink';
  readonly permissions: number;
  readonly size: number;
  readonly target?: string;
}

/** Parses `isoinfo -l` output: "Directory listing of /d/" headers, then one line per record. */
function parseListing(text: string): Map<string, Listed> {
  const out = new Map<string, Listed>();
  let dir = '';
  const line = /^([dl-])([-rwxsStT]{9})\s+\d+\s+\d+\s+\d+\s+(\d+)\s+\w{3}\s+\d+\s+\d{4}\s+\[\s*\d+\s+\d+\]\s\s(.*)$/;
  for (const raw of text.split('\n')) {
    const header = /^Directory listing of \/(.*)$/.exec(raw);
    if (header !== null) {
      dir = (header[1] ?? '').replace(/\/$/, '');
      continue;
    }
    const match = line.exec(raw);
    if (match === null) continue;
    const [, type, perms, size, rest] = match as unknown as [string, string, string, string, string];
    const kind = type === 'd' ? 'dir' : type === 'l' ? 'symlink' : 'file';
    let name = rest.replace(/ $/, '');
    let target: string | undefined;
    if (kind === 'symlink') {
      const arrow = rest.indexOf(' -> ');
      name = rest.slice(0, arrow);
      target = rest.slice(arrow + 4).replace(/ $/, '');
    }
    if (name === '.' || name === '..') continue;
    out.set(dir === '' ? name : `${dir}/${name}`, { kind, permissions: permissionBits(perms), size: Number(size), ...(target === undefined ? {} : { target }) });
  }
  return out;
}

function permissionBits(text: string): number {
  let bits = 0;
  for (let i = 0; i < 9; i++) if (text[i] !== '-' && text[i] !== 'S' && text[i] !== 'T') bits |= 1 << (8 - i);
  return bits;
}

describe.skipIf(missingTool('isoinfo', 'isoinfo cross-check'))('isoinfo reads our images', () => {
  let work: string;
  let image: string;
  let entries: IsoEntry[];
  let expected: Map<string, Snapshot>;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'iso-isoinfo-'));
    const source = join(work, 'source.bin');
    writeFileSync(source, Buffer.alloc(70_000, 0x5a));
    entries = sampleEntries({ path: source, size: 70_000 });
    expected = expectedTree(entries);
    image = join(work, 'sample.iso');
    writeFileSync(image, await buildIso(entries, { volumeId: 'SAMPLE', label: 'Sample Layer', publisher: 'recontext tests', timestamp: FIXED_TIME }).toBuffer());
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('describes the volume: ids, Rock Ridge and Joliet present', () => {
    const info = runOk('isoinfo', ['-d', '-i', image]).stdout;
    expect(info).toMatch(/Volume id: SAMPLE\n/);
    expect(info).toMatch(/Publisher id: RECONTEXT TESTS/);
    expect(info).toMatch(/Logical block size is: 2048/);
    expect(info).toMatch(/Joliet with UCS level 3 found/);
    expect(info).toMatch(/Rock Ridge signatures version 1 found/);
  });

  it('lists the Rock Ridge tree exactly: names, kinds, permissions, sizes, symlink targets', () => {
    const listed = parseListing(runOk('isoinfo', ['-R', '-l', '-i', image]).stdout);
    const want = new Map(
      [...expected].map(([path, s]) => [
        path,
        {
          kind: s.kind,
          // isoinfo prints neither setuid/setgid/sticky nor the "/" of a root-only symlink target.
          permissions: s.mode & 0o777,
          size: s.kind === 'file' ? Buffer.from(s.content ?? '', 'base64').length : s.kind === 'dir' ? -1 : 0,
          ...(s.kind === 'symlink' ? { target: s.target === '/' ? '' : s.target } : {}),
        },
      ]),
    );
    const got = new Map([...listed].map(([path, l]) => [path, { ...l, size: l.kind === 'dir' ? -1 : l.size }]));
    expect(new Map([...got].sort())).toEqual(new Map([...want].sort()));
  });

  it('reads every file back with isoinfo -R -x', { timeout: 180_000 }, () => {
    for (const [path, snapshot] of expected) {
      if (snapshot.kind !== 'file') continue;
      const result = spawnBytes('isoinfo', ['-R', '-i', image, '-x', `/${path}`]);
      expect(result.toString('base64'), path).toBe(snapshot.content);
    }
  });

  it('lists the Joliet tree: names up to 64 characters as given, no symlinks, same contents', { timeout: 180_000 }, () => {
    const listed = parseListing(runOk('isoinfo', ['-J', '-l', '-i', image]).stdout);
    // isoinfo prints Joliet names through a single-byte charset: compare the ASCII ones exactly.
    const comparable = [...expected].filter(([path, s]) => s.kind !== 'symlink' && /^[\x20-\x7e]+$/.test(path) && path.split('/').every((n) => n.length <= 64));
    for (const [path, s] of comparable) {
      const got = listed.get(path);
      expect(got?.kind, path).toBe(s.kind);
      if (s.kind === 'file') {
        expect(got?.size, path).toBe(Buffer.from(s.content ?? '', 'base64').length);
        expect(spawnBytes('isoinfo', ['-J', '-i', image, '-x', `/${path}`]).toString('base64'), path).toBe(s.content);
      }
    }
    expect([...listed.values()].some((l) => l.kind === 'symlink')).toBe(false);
    expect(listed.size).toBe([...expected.values()].filter((s) => s.kind !== 'symlink').length);
  });

  it('keeps every entry in the plain ISO9660 tree with valid, unique, mangled identifiers', () => {
    const listed = parseListing(runOk('isoinfo', ['-l', '-i', image]).stdout);
    expect(listed.size).toBe(expected.size);
    for (const path of listed.keys()) {
      const name = path.split('/').pop() ?? '';
      expect(name, path).toMatch(/^[A-Z0-9_]{1,31}$|^[A-Z0-9_]*\.[A-Z0-9_]*;1$/);
    }
    expect([...listed.keys()].filter((p) => !p.includes('/')).sort()).toEqual(
      expect.arrayContaining(['README.;1', 'README_1.;1', 'README.TXT;1', 'README_1.TXT;1']),
    );
  });

  it('passes isovfy (genisoimage\'s verifier: record lengths, sector crossings, sort order)', () => {
    const result = runOk('isovfy', [image]);
    expect(result.stdout + result.stderr).toMatch(/No errors found/);
  });

  it('has a path table with one record per directory, parents before children', () => {
    const table = runOk('isoinfo', ['-p', '-i', image]).stdout.split('\n').filter((l) => /^\s*\d+:/.test(l));
    const directories = [...expected.values()].filter((s) => s.kind === 'dir').length + 1;
    expect(table.length).toBe(directories);
    table.forEach((line, index) => {
      const [, number, parent] = /^\s*(\d+):\s+(\d+)/.exec(line) ?? [];
      expect(Number(number)).toBe(index + 1);
      expect(Number(parent)).toBeLessThanOrEqual(index + 1);
    });
  });
});

function spawnBytes(command: string, args: readonly string[]): Buffer {
  const result = spawnSync(command, args, { maxBuffer: 1 << 30 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr.toString()}`);
  return result.stdout;
}
