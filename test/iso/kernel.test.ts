// The Linux kernel reads our images: a tree written by src/iso is attached as a SATA CD-ROM to a
// real QEMU guest of the test bed, whose agent mounts it with the kernel's iso9660 driver (Rock
// Ridge names) and reports every file it finds; the report must equal the input tree.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso, type IsoEntry } from '../../src/iso/index.js';
import { testbedSkipReason, useTestbed, type Testbed } from '../testbed/shared.js';

const DOMAIN = 'iso-kernel';
const deep = Array.from({ length: 12 }, (_, i) => `level${i}`).join('/');
const tree: Record<string, string> = {
  'etc/app.conf': 'key = value\n',
  'etc/Case/MiXeD.txt': 'case preserved\n',
  'etc/case/mixed.txt': 'a different file in the plain ISO9660 tree after case folding\n',
  'unicode/zoneΩ-åäö-日本.conf': 'unicode names\n',
  [`${'n'.repeat(200)}.long`]: 'a 205-byte name\n',
  [`${deep}/bottom.txt`]: 'twelve levels deep\n',
  'empty.txt': '',
  'bin/run.sh': '#!/bin/sh\necho hi\n',
};

describe.skipIf(testbedSkipReason())('the Linux kernel (in a QEMU guest) reads src/iso images', () => {
  let tb: Testbed;
  const dir = mkdtempSync(join(tmpdir(), 'iso-kernel-'));
  beforeAll(async () => {
    tb = await useTestbed();
  });
  afterAll(async () => {
    await tb?.virsh('host-a', ['destroy', DOMAIN]).catch(() => undefined);
  });

  it('mounts the image with -t iso9660 and sees exactly the tree, names and contents', async () => {
    const entries: IsoEntry[] = Object.entries(tree).map(([path, text]) => ({ path, kind: 'file', mode: path.endsWith('.sh') ? 0o755 : 0o644, content: Buffer.from(text) }));
    entries.push({ path: 'emptydir', kind: 'dir' });
    const image = join(dir, 'tree.iso');
    await buildIso(entries, { volumeId: 'KERNELTEST', timestamp: new Date(0) }).writeToFile(image);
    const xml = join(dir, 'domain.xml');
    writeFileSync(xml, tb.domainXml({ name: DOMAIN, cdroms: [{ source: image }] }));
    await tb.virsh('host-a', ['create', xml]);
    const end = await tb.waitForConsole(DOMAIN, /CTX END sr0 (\d+)/, 120_000);
    const log = tb.consoleLog(DOMAIN).slice(0, end.offset);
    expect(log).toContain('CTX MOUNT sr0 KERNELTEST /ctx/sr0');
    const seen: Record<string, string> = {};
    for (const [, path, , content] of log.matchAll(/CTX FILE sr0 (\S+) (\d+) (\S+)/g)) seen[path!] = content === '=' ? '' : Buffer.from(content!, 'base64').toString();
    expect(seen).toEqual(tree);
    expect(Number(end.match[1])).toBe(Object.keys(tree).length);
  }, 180_000);
});
