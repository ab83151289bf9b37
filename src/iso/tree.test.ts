import { describe, expect, it } from 'vitest';
import { IsoInputError, IsoLimitError } from './errors.js';
import { buildTree, type IsoEntry } from './tree.js';

const file = (path: string, extra: Partial<IsoEntry> = {}): IsoEntry => ({ path, kind: 'file', content: Buffer.from('x'), ...extra });

function rejection(entries: IsoEntry[]): IsoInputError {
  try {
    buildTree(entries);
  } catch (error: unknown) {
    if (error instanceof IsoInputError) return error;
    throw error;
  }
  throw new Error('expected an IsoInputError');
}

describe('input validation', () => {
  it.each([
    ['/etc/passwd', /absolute path/],
    ['../x', /escapes the image root/],
    ['a/../../x', /escapes the image root/],
    ['a//b', /not normalized/],
    ['./a', /not normalized/],
    ['a/', /not normalized/],
    ['', /empty path/],
    ['a\0b', /NUL/],
    [`${'n'.repeat(256)}`, /longer than 255 bytes/],
    [`${'é'.repeat(128)}`, /longer than 255 bytes/],
    ['bad\uD800name', /lone surrogate/],
  ])('rejects the path %j', (path, message) => {
    const error = rejection([file(path)]);
    expect(error.message).toMatch(message);
    expect(error.path).toBe(path);
  });

  it('rejects duplicates, files used as directories, and malformed entries, naming the path', () => {
    expect(rejection([file('a/b'), file('a/b')]).message).toBe('a/b: duplicate entry');
    expect(rejection([file('a'), file('a/b')]).message).toMatch(/^a\/b: parent a is a file/);
    expect(rejection([{ path: 's', kind: 'symlink' }]).message).toMatch(/needs a non-empty target/);
    expect(rejection([{ path: 'f', kind: 'file' }]).message).toMatch(/needs content/);
    expect(rejection([file('m', { mode: 0o10000 })]).message).toMatch(/not a permission value/);
    expect(rejection([{ path: 's', kind: 'symlink', target: 'a\0' }]).message).toMatch(/NUL/);
  });

  it('rejects files of 4 GiB and more with a limit error', () => {
    const error = rejection([{ path: 'big.img', kind: 'file', content: { fromFile: '/nonexistent', size: 4 * 1024 ** 3 } }]);
    expect(error).toBeInstanceOf(IsoLimitError);
    expect(error.message).toMatch(/^big\.img: .*smaller than 4 GiB/);
    expect(() => buildTree([{ path: 'ok.img', kind: 'file', content: { fromFile: '/x', size: 2 ** 32 - 1 } }])).not.toThrow();
  });

  it('allows names that differ only in case, and creates missing parents (0755)', () => {
    const root = buildTree([file('A'), file('a'), file('x/y/z')]);
    expect(root.children.map((c) => c.name)).toEqual(['A', 'a', 'x']);
    const x = root.children[2];
    expect(x?.kind).toBe('dir');
    expect(x?.mode).toBe(0o755);
  });

  it('lets a directory be declared after its children, taking its mode', () => {
    const root = buildTree([file('d/f'), { path: 'd', kind: 'dir', mode: 0o700 }]);
    expect(root.children[0]?.mode).toBe(0o700);
    expect(rejection([{ path: 'd', kind: 'dir' }, { path: 'd', kind: 'dir' }]).message).toBe('d: duplicate entry');
  });

  it('sorts children by UTF-8 bytes regardless of input order', () => {
    const names = ['b', 'B', 'ä', 'a', 'Z', '😀', 'ﬀ'];
    const root = buildTree(names.map((n) => file(n)));
    expect(root.children.map((c) => c.name)).toEqual(['B', 'Z', 'a', 'b', 'ä', 'ﬀ', '😀']);
  });
});
