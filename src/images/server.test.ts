import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../runtime/log.js';
import { ImageUrlSigner, parseRange, startImageServer, type ImageServer } from './server.js';

const KEY = Buffer.alloc(32, 7);
const HEX = 'ab'.repeat(32);
const DIGEST = `sha256:${HEX}`;
const NOW = Date.parse('2026-11-23T12:00:00Z');

describe('ImageUrlSigner', () => {
  const signer = new ImageUrlSigner(KEY, 'http://images.example:8090/', { ttlMs: 60_000 });
  const target = (url: string) => url.slice('http://images.example:8090'.length);

  it('signs a URL that verifies for its image until it expires', () => {
    const url = signer.url('tenant-a', DIGEST, NOW);
    expect(url).toMatch(new RegExp(`^http://images\\.example:8090/v1/images/${HEX}\\.iso\\?ns=tenant-a&exp=\\d+&sig=`));
    expect(signer.verify(target(url), NOW + 59_000)).toEqual({ ok: true, hex: HEX });
    expect(signer.verify(target(url), NOW + 61_000)).toMatchObject({ ok: false, status: 403, reason: 'expired' });
  });

  it('refuses another image, another namespace, another key, or no signature', () => {
    const url = target(signer.url('tenant-a', DIGEST, NOW));
    expect(signer.verify(url.replace(HEX, 'cd'.repeat(32)), NOW)).toMatchObject({ ok: false, status: 403, reason: 'bad signature' });
    expect(signer.verify(url.replace('ns=tenant-a', 'ns=tenant-b'), NOW)).toMatchObject({ ok: false, reason: 'bad signature' });
    expect(new ImageUrlSigner(Buffer.alloc(32, 8), 'http://x').verify(url, NOW)).toMatchObject({ ok: false, reason: 'bad signature' });
    expect(signer.verify(`/v1/images/${HEX}.iso`, NOW)).toMatchObject({ ok: false, status: 403, reason: 'unsigned' });
    expect(signer.verify(url.replace(/exp=\d+/, (m) => `exp=${Number(m.slice(4)) + 3600}`), NOW)).toMatchObject({ ok: false, reason: 'bad signature' });
  });

  it('refuses paths that are not images, traversal included', () => {
    expect(signer.verify('/v1/images/../../etc/passwd?ns=a&exp=1&sig=x', NOW)).toMatchObject({ ok: false, status: 404 });
    expect(signer.verify(`/v1/images/${HEX.toUpperCase()}.iso?ns=a&exp=1&sig=x`, NOW)).toMatchObject({ ok: false, status: 400 });
    expect(signer.verify('/metrics', NOW)).toMatchObject({ ok: false, status: 404 });
  });

  it('wants a real key', () => {
    expect(() => new ImageUrlSigner(Buffer.alloc(4), 'http://x')).toThrow(/at least 16 bytes/);
  });
});

describe('parseRange', () => {
  it.each([
    [undefined, undefined],
    ['bytes=0-9', [0, 9]],
    ['bytes=10-', [10, 99]],
    ['bytes=-10', [90, 99]],
    ['bytes=90-200', [90, 99]],
    ['bytes=100-', 'invalid'],
    ['bytes=5-2', 'invalid'],
    ['bytes=0-1,4-5', 'invalid'],
    ['items=0-1', 'invalid'],
  ] as const)('%s of 100 bytes → %j', (header, expected) => {
    expect(parseRange(header, 100)).toEqual(expected);
  });
});

describe('image server over real HTTP', () => {
  let dir: string;
  let server: ImageServer;
  const lines: string[] = [];
  const signer = new ImageUrlSigner(KEY, 'http://placeholder');
  const content = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
  const fetchSigned = (init?: RequestInit, digest = DIGEST) => fetch(server.url + signer.url('ns1', digest).slice('http://placeholder'.length), init);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'image-server-'));
    writeFileSync(join(dir, `${HEX}.iso`), content);
    server = await startImageServer({
      address: '127.0.0.1:0',
      images: { path: (digest) => join(dir, `${digest.replace('sha256:', '')}.iso`) },
      signer,
      logger: createLogger({ write: (line) => void lines.push(line) }),
    });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the whole image, a range, and HEAD', async () => {
    const whole = await fetchSigned();
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe('5000');
    expect(Buffer.from(await whole.arrayBuffer()).equals(content)).toBe(true);

    const part = await fetchSigned({ headers: { range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 100-199/5000');
    expect(Buffer.from(await part.arrayBuffer()).equals(content.subarray(100, 200))).toBe(true);

    const head = await fetchSigned({ method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('5000');
    expect(head.headers.get('accept-ranges')).toBe('bytes');
  });

  it('answers 404 for a signed URL of an image it does not have, 403 unsigned, 405 for writes', async () => {
    expect((await fetchSigned({}, `sha256:${'cd'.repeat(32)}`)).status).toBe(404);
    expect((await fetch(`${server.url}/v1/images/${HEX}.iso`)).status).toBe(403);
    expect((await fetchSigned({ method: 'PUT', body: 'x' })).status).toBe(405);
    expect((await fetchSigned({ headers: { range: 'bytes=6000-' } })).status).toBe(416);
  });

  it('never logs a signature', () => {
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).not.toMatch(/sig=|exp=/);
  });
});
