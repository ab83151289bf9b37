// Property-based round trips: random trees (unicode names, case-fold collisions, empty files and
// directories, symlinks, modes, deep chains, 255-byte names, wide directories) are written by us
// and extracted by xorriso; the extracted tree must equal the input, and rebuilding must give the
// same bytes. Each run spawns xorriso, so the tests get generous timeouts for busy machines.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso, type IsoEntry } from '../../src/iso/index.js';
import { FIXED_TIME, expectedTree, missingTool, run, treeOnDisk } from './helpers.js';

const utf8Length = (s: string): number => Buffer.byteLength(s, 'utf8');
const validName = (s: string): boolean => s !== '' && s !== '.' && s !== '..' && !/[/\0]/.test(s) && !/\p{Cs}/u.test(s) && utf8Length(s) <= 255;

/** Names that make trouble: case variants, unicode, dots, spaces, and names of exactly 255 bytes. */
const nameArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('a', 'A', 'readme', 'README', 'ReadMe.txt', 'README.TXT', '.hidden', 'a.b.c', 'x y', 'Ω', 'ß', 'SS', '日本'),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
  fc.constantFrom('n', 'é', '日', '😀').map((c) => c.repeat(Math.floor(255 / utf8Length(c))) + 'x'.repeat(255 % utf8Length(c))),
).filter(validName);

const modeArb = fc.integer({ min: 0, max: 0o7777 });
const targetArb = fc
  .array(fc.oneof(nameArb, fc.constantFrom('.', '..')), { minLength: 1, maxLength: 4 })
  .chain((parts) => fc.boolean().map((absolute) => (absolute ? '/' : '') + parts.join('/')))
  .filter((t) => utf8Length(t) <= 1000);

type Node = { kind: 'file'; content: Uint8Array; mode: number } | { kind: 'symlink'; target: string } | { kind: 'dir'; mode: number; children: [string, Node][] };

const treeArb = fc.letrec<{ dir: Node; node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ kind: fc.constant('file' as const), content: fc.uint8Array({ maxLength: 3000 }), mode: modeArb }),
    fc.record({ kind: fc.constant('symlink' as const), target: targetArb }),
    tie('dir'),
  ),
  dir: fc.record({
    kind: fc.constant('dir' as const),
    mode: modeArb,
    children: fc.uniqueArray(fc.tuple(nameArb, tie('node')), { maxLength: 6, selector: ([name]) => name }),
  }),
}));

function flatten(children: [string, Node][], prefix = ''): IsoEntry[] {
  return children.flatMap(([name, node]): IsoEntry[] => {
    const path = prefix === '' ? name : `${prefix}/${name}`;
    if (node.kind === 'file') return [{ path, kind: 'file', mode: node.mode, content: Buffer.from(node.content) }];
    if (node.kind === 'symlink') return [{ path, kind: 'symlink', target: node.target }];
    return [{ path, kind: 'dir', mode: node.mode }, ...flatten(node.children, path)];
  });
}

/** A chain of directories deeper than ISO9660's 8 levels, with a file at the bottom. */
const deepArb = fc.tuple(fc.array(nameArb, { minLength: 9, maxLength: 40 }), fc.uint8Array({ maxLength: 100 })).map(([names, content]): IsoEntry[] => [
  { path: names.join('/'), kind: 'file', content: Buffer.from(content) },
]).filter((entries) => utf8Length(entries[0]?.path ?? '') < 4000);

/** One directory with up to 1000 files, many of them colliding after case folding. */
const wideArb = fc.integer({ min: 0, max: 1000 }).map((count): IsoEntry[] =>
  Array.from({ length: count }, (_, i) => ({ path: `wide/${i % 2 === 0 ? 'File' : 'file'}-${Math.floor(i / 2)}.Conf`, kind: 'file', content: Buffer.from(String(i)) })),
);

describe.skipIf(missingTool('xorriso', 'property round trips'))('random trees round-trip through xorriso', () => {
  let work: string;
  let counter = 0;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'iso-prop-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  async function roundTrip(entries: IsoEntry[]): Promise<void> {
    const id = counter++;
    const image = join(work, `${id}.iso`);
    const out = join(work, `${id}.out`);
    const bytes = await buildIso(entries, { volumeId: 'PROP', timestamp: FIXED_TIME }).toBuffer();
    expect((await buildIso([...entries].reverse(), { volumeId: 'PROP', timestamp: FIXED_TIME }).toBuffer()).equals(bytes)).toBe(true);
    writeFileSync(image, bytes);
    const result = run('xorriso', ['-abort_on', 'FAILURE', '-osirrox', 'on', '-indev', image, '-extract', '/', out]);
    expect(result.status, result.stderr).toBe(0);
    expect(treeOnDisk(out)).toEqual(expectedTree(entries));
    rmSync(out, { recursive: true, force: true });
    rmSync(image);
  }

  it('random trees', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb.dir, async (root) => {
        if (root.kind !== 'dir') return;
        await roundTrip(flatten(root.children));
      }),
      { numRuns: 60 },
    );
  }, 300_000);

  it('deep chains (9–40 levels)', async () => {
    await fc.assert(fc.asyncProperty(deepArb, roundTrip), { numRuns: 15 });
  }, 300_000);

  it('wide directories (up to 1000 files, case collisions)', async () => {
    await fc.assert(fc.asyncProperty(wideArb, roundTrip), { numRuns: 8, examples: [[Array.from({ length: 1000 }, (_, i) => ({ path: `wide/f${i}`, kind: 'file' as const, content: Buffer.alloc(0) }))]] });
  }, 300_000);
});
