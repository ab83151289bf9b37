import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildIso, IsoWriteError, toVolumeId, type IsoEntry } from './index.js';

const timestamp = new Date('2024-05-06T07:08:09Z');
const GOLDEN_SHA256 = 'b4d8ce106000e66f6f84ad337997f5c0cdb42cc3dd3f035bd6efa456903ab9a9';
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'iso-build-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const entries = (): IsoEntry[] => [
  { path: 'etc/hosts', kind: 'file', content: Buffer.from('127.0.0.1 localhost\n') },
  { path: 'etc/motd', kind: 'file', content: Buffer.from('hi\n'), mode: 0o600 },
  { path: 'etc/link', kind: 'symlink', target: 'hosts' },
  { path: 'var', kind: 'dir' },
  { path: 'Readme.md', kind: 'file', content: Buffer.alloc(5000, 0x41) },
];

describe('buildIso', () => {
  it('is deterministic: same entries in any order give identical bytes, with no wall clock involved', async () => {
    const first = await buildIso(entries(), { volumeId: 'CTX', timestamp }).toBuffer();
    vi.useFakeTimers({ now: new Date('2031-01-01T00:00:00Z') });
    try {
      const second = await buildIso(entries().reverse(), { volumeId: 'CTX', timestamp }).toBuffer();
      expect(second.equals(first)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
    const other = await buildIso(entries(), { volumeId: 'CTX', timestamp: new Date('2024-05-06T07:08:10Z') }).toBuffer();
    expect(other.equals(first)).toBe(false);
  });

  it('streams from files on disk to the same bytes as from memory', async () => {
    const source = join(work, 'readme');
    writeFileSync(source, Buffer.alloc(5000, 0x41));
    const fromDisk = entries().map((e) => (e.path === 'Readme.md' ? { ...e, content: { fromFile: source, size: 5000 } } : e));
    const a = await buildIso(entries(), { volumeId: 'CTX', timestamp }).toBuffer();
    const b = await buildIso(fromDisk, { volumeId: 'CTX', timestamp }).toBuffer();
    expect(b.equals(a)).toBe(true);
  });

  it('write() streams into a Writable and returns the size and sha256 of what it wrote', async () => {
    const image = buildIso(entries(), { volumeId: 'CTX', timestamp });
    const parts: Buffer[] = [];
    const sink = new PassThrough({ highWaterMark: 1024 });
    sink.on('data', (chunk: Buffer) => parts.push(chunk));
    const result = await image.write(sink);
    const bytes = Buffer.concat(parts);
    expect(result.bytes).toBe(image.size);
    expect(bytes.length).toBe(image.size);
    expect(result.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(bytes.equals(await image.toBuffer())).toBe(true);
  });

  it('streams a large file in bounded chunks', async () => {
    const source = join(work, 'large');
    const size = 20 * 1024 * 1024 + 5;
    writeFileSync(source, Buffer.alloc(size, 7));
    const image = buildIso([{ path: 'large', kind: 'file', content: { fromFile: source, size } }], { volumeId: 'CTX', timestamp });
    let largest = 0;
    const hash = createHash('sha256');
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        largest = Math.max(largest, chunk.length);
        hash.update(chunk);
        done();
      },
    });
    const result = await image.write(sink);
    expect(largest).toBeLessThanOrEqual(1024 * 1024);
    expect(result.sha256).toBe(hash.digest('hex'));
  });

  it('fails with IsoWriteError naming the path when a source file changed or vanished', async () => {
    const source = join(work, 'shrinks');
    writeFileSync(source, Buffer.alloc(100, 1));
    const image = buildIso([{ path: 'conf/app.yaml', kind: 'file', content: { fromFile: source, size: 100 } }], { volumeId: 'CTX', timestamp });
    truncateSync(source, 50);
    await expect(image.toBuffer()).rejects.toThrow(IsoWriteError);
    await expect(image.toBuffer()).rejects.toThrow(/^conf\/app\.yaml: source .* has 50 bytes, but the layout was made for 100 bytes/);
    // Grown: the small-image path reads one byte past the expected end to notice (writer.ts, copySource).
    writeFileSync(source, Buffer.alloc(2048, 1));
    const grown = buildIso([{ path: 'conf/app.yaml', kind: 'file', content: { fromFile: source, size: 2047 } }], { volumeId: 'CTX', timestamp });
    await expect(grown.toBuffer()).rejects.toThrow(/^conf\/app\.yaml: source .* has 2048 bytes, but the layout was made for 2047 bytes/);
    await expect(grown.writeToFile(join(work, 'grown.iso'))).rejects.toThrow(/has 2048 bytes, but the layout was made for 2047 bytes/);
    const missing = buildIso([{ path: 'gone', kind: 'file', content: { fromFile: join(work, 'nope'), size: 1 } }], { volumeId: 'CTX', timestamp });
    await expect(missing.toBuffer()).rejects.toThrow(/^gone: cannot read source .*ENOENT/);
  });

  it('reports a failing sink as IsoWriteError', async () => {
    const image = buildIso(entries(), { volumeId: 'CTX', timestamp });
    const sink = new Writable({
      write(_chunk, _encoding, done) {
        done(new Error('disk full'));
      },
    });
    await expect(image.write(sink)).rejects.toThrow(/writing the image failed: disk full/);
  });

  it('writeToFile writes the same bytes with positioned writes, hashes on request, and can refuse to overwrite', async () => {
    const source = join(work, 'multi');
    writeFileSync(source, Buffer.alloc(9 * 1024 * 1024 + 1, 3));
    const image = buildIso([...entries(), { path: 'big', kind: 'file', content: { fromFile: source, size: 9 * 1024 * 1024 + 1 } }], { volumeId: 'CTX', timestamp });
    const target = join(work, 'out.iso');
    const result = await image.writeToFile(target, { fsync: true });
    const expected = await image.toBuffer();
    expect(readFileSync(target).equals(expected)).toBe(true);
    expect(result).toEqual({ bytes: expected.length, sha256: createHash('sha256').update(expected).digest('hex') });
    expect((await image.writeToFile(target, { sha256: false })).sha256).toBeUndefined();
    await expect(image.writeToFile(target, { exclusive: true })).rejects.toThrow(/EEXIST/);
  });

  it('does not hang when the sink is destroyed without an error', async () => {
    const image = buildIso([{ path: 'big', kind: 'file', content: Buffer.alloc(3 << 20, 1) }], { volumeId: 'CTX', timestamp });
    let seen = 0;
    const sink: Writable = new Writable({
      highWaterMark: 1024,
      write(_chunk, _encoding, done) {
        seen++;
        if (seen === 1) setImmediate(() => sink.destroy());
        else done();
      },
    });
    await expect(image.write(sink)).rejects.toThrow(/sink closed before the image was written/);
  });

  it('keeps yielding to the event loop while writing a large image', async () => {
    const source = join(work, 'forty');
    const size = 40 * 1024 * 1024;
    writeFileSync(source, Buffer.alloc(size, 9));
    const image = buildIso([{ path: 'forty', kind: 'file', content: { fromFile: source, size } }], { volumeId: 'CTX', timestamp });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      await image.writeToFile(join(work, 'forty.iso'), { sha256: false });
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThanOrEqual(3);
  });

  it('matches the golden digest: any change to the bytes we write must be deliberate', async () => {
    // If a change to the format is intended, verify it with the cross-check tests (test/iso), then
    // update this digest. An unexplained change here breaks content addressing of existing images.
    const result = await buildIso(entries(), { volumeId: 'CTX', label: 'Context', publisher: 'recontext', timestamp }).write(new PassThrough().resume());
    expect(result.sha256).toBe(GOLDEN_SHA256);
  });

  it('derives volume ids from free-form labels', () => {
    expect(toVolumeId('my-layer v2')).toBe('MY_LAYER_V2');
    expect(toVolumeId('')).toBe('CONTEXT');
    expect(toVolumeId('x'.repeat(40))).toHaveLength(32);
  });
});
