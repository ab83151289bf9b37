import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso, IsoWriteError, type IsoImage } from '../iso/index.js';
import { ImageStore } from './image-store.js';

const timestamp = new Date('2024-05-06T07:08:09Z');
const digestOf = (text: string): string => createHash('sha256').update(text).digest('hex');
const image = (text: string): IsoImage => buildIso([{ path: 'f', kind: 'file', content: Buffer.from(text) }], { volumeId: 'V', timestamp });

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'iso-store-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('ImageStore', () => {
  it('stores an image as <digest>.iso and does not rebuild what it has', async () => {
    const store = new ImageStore({ directory: join(work, 'a', 'images') });
    const digest = digestOf('one');
    expect(await store.has(digest)).toBe(false);
    const first = await store.put(digest, image('one'));
    expect(first).toEqual({ path: join(work, 'a', 'images', `${digest}.iso`), created: true });
    expect(readFileSync(first.path).equals(await image('one').toBuffer())).toBe(true);
    expect(await store.has(digest)).toBe(true);
    let built = 0;
    const second = await store.put(digest, () => {
      built++;
      return image('one');
    });
    expect(second.created).toBe(false);
    expect(built).toBe(0);
    expect(readdirSync(join(work, 'a', 'images'))).toEqual([`${digest}.iso`]);
  });

  it('shares one write between concurrent puts of the same digest', async () => {
    const store = new ImageStore({ directory: join(work, 'b') });
    let built = 0;
    const build = (): IsoImage => {
      built++;
      return image('same');
    };
    const results = await Promise.all([store.put(digestOf('same'), build), store.put(digestOf('same'), build), store.put(digestOf('same'), build)]);
    expect(built).toBe(1);
    expect(results.every((r) => r.created)).toBe(true);
  });

  it('leaves neither the image nor a temp file when a write fails', async () => {
    const store = new ImageStore({ directory: join(work, 'c') });
    const broken = buildIso([{ path: 'x', kind: 'file', content: { fromFile: join(work, 'missing'), size: 10 } }], { volumeId: 'V', timestamp });
    await expect(store.put(digestOf('broken'), broken)).rejects.toThrow(IsoWriteError);
    expect(readdirSync(join(work, 'c'))).toEqual([]);
  });

  it('leaves no partial image when the writing process is killed; gc removes the temp file', async () => {
    const directory = join(work, 'crash');
    mkdirSync(directory);
    const fifo = join(work, 'never-written');
    execFileSync('mkfifo', [fifo]);
    const digest = digestOf('crash');
    const script = join(work, 'crash.mts');
    const storeModule = fileURLToPath(new URL('./image-store.ts', import.meta.url));
    const isoModule = fileURLToPath(new URL('../iso/index.ts', import.meta.url));
    writeFileSync(
      script,
      `import { buildIso } from ${JSON.stringify(isoModule)};
import { ImageStore } from ${JSON.stringify(storeModule)};
const store = new ImageStore({ directory: ${JSON.stringify(directory)} });
const entries = [{ path: 'big', kind: 'file', content: Buffer.alloc(6 << 20, 1) }, { path: 'stuck', kind: 'file', content: { fromFile: ${JSON.stringify(fifo)}, size: 10 } }];
await store.put(${JSON.stringify(digest)}, buildIso(entries, { volumeId: 'V', timestamp: new Date(0) }));
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: 'ignore' });
    // Wait until the temp file holds some bytes: the writer is mid-image, blocked on the FIFO.
    const deadline = Date.now() + 30_000;
    let temp: string | undefined;
    while (Date.now() < deadline) {
      temp = readdirSync(directory).find((n) => n.endsWith('.tmp'));
      if (temp !== undefined && readFileSync(join(directory, temp)).length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    expect(temp).toBeDefined();
    expect(existsSync(join(directory, `${digest}.iso`))).toBe(false);
    const store = new ImageStore({ directory });
    expect(await store.list()).toEqual([]);
    await store.gc([]);
    expect(readdirSync(directory)).toEqual([]);
  });

  it('gc removes images no VM uses and keeps the rest and unrelated files', async () => {
    const directory = join(work, 'gc');
    const store = new ImageStore({ directory });
    const [a, b, c] = ['a', 'b', 'c'].map(digestOf) as [string, string, string];
    for (const [digest, text] of [[a, 'a'], [b, 'b'], [c, 'c']] as const) await store.put(digest, image(text));
    writeFileSync(join(directory, 'README'), 'not an image');
    expect(await store.list()).toEqual([a, b, c].sort());
    const removed = await store.gc([b]);
    expect(removed.sort()).toEqual([a, c].sort());
    expect(await store.list()).toEqual([b]);
    expect(existsSync(join(directory, 'README'))).toBe(true);
    expect(await new ImageStore({ directory: join(work, 'does-not-exist') }).gc([])).toEqual([]);
  });

  it('accepts only 64-hex digests as names', () => {
    const store = new ImageStore({ directory: work });
    expect(() => store.path('../../etc/passwd')).toThrow(/64 lower-case hex/);
    expect(() => store.path('A'.repeat(64))).toThrow(TypeError);
  });
});
