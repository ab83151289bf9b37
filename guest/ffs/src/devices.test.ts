// The device watcher's decisions, with a scripted stand-in for ffs-devd (the real helper needs a
// kernel with CD-ROM drives: it runs in the test guest, see guest/ffs/README.md): which image of
// a layer the union shows, and that a drive is released only after its layer left the stack and
// its last reader closed.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DeviceWatcher, parseHelperLine, stackOf, type Medium } from './devices.js';
import type { Layer } from './layer.js';

const layer = (name: string, root: string, priority = 100): Layer => ({ name, priority, root, source: { kind: 'dir', path: root } });

describe('stackOf', () => {
  it('shows the newest image of each layer, and directory layers unless a device carries that layer', () => {
    const medium = (dev: string, arrival: number, name: string): Medium => ({ dev, seq: 1, arrival, layer: { ...layer(name, `/m/${dev}`), source: { kind: 'device', device: `/dev/${dev}` } } });
    const stack = stackOf([medium('sr0', 1, 'cache'), medium('sr1', 2, 'cache'), medium('sr2', 3, 'svc')], [layer('local', '/etc/local'), layer('svc', '/etc/svc')]);
    expect(stack.map((l) => `${l.name}@${l.root}`)).toEqual(['local@/etc/local', 'cache@/m/sr1', 'svc@/m/sr2']);
  });
});

describe('parseHelperLine', () => {
  it('reads the helper protocol', () => {
    expect(parseHelperLine('MOUNTED sr1 3 /run/ffs/sr1.3')).toEqual({ kind: 'mounted', dev: 'sr1', seq: 3, dir: '/run/ffs/sr1.3' });
    expect(parseHelperLine('EJECT-REQUEST sr0')).toEqual({ kind: 'eject-request', dev: 'sr0' });
    expect(parseHelperLine('EJECTED sr0 Device or resource busy')).toEqual({ kind: 'ejected', dev: 'sr0', result: 'Device or resource busy' });
    expect(parseHelperLine('nonsense')).toBeUndefined();
  });
});

describe('DeviceWatcher', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** A medium directory with a manifest, as ffs-devd would have mounted it. */
  function image(root: string, dir: string, manifest: object): string {
    const path = join(root, dir);
    mkdirSync(join(path, '.recontext'), { recursive: true });
    writeFileSync(join(path, '.recontext', 'manifest.json'), JSON.stringify(manifest));
    return path;
  }

  it('switches a layer to its newer image, and releases the old drive only after its reader closed', async () => {
    const root = mkdtempSync(join(tmpdir(), 'devd-'));
    dirs.push(root);
    const a = image(root, 'sr0.1', { layer: 'cache', class: 'infrastructure', priority: 300, digest: 'sha256:a' });
    const b = image(root, 'sr1.1', { layer: 'cache', class: 'infrastructure', priority: 300, digest: 'sha256:b' });
    image(root, 'sr2.1', {}); // not a context layer (say, a cloud-init ISO)
    // The stand-in helper: announces the media present at start, then a newer image in sr1 and
    // the host's eject request for sr0; it records the commands it gets.
    const commands = join(root, 'commands.log');
    const script = join(root, 'helper.mjs');
    writeFileSync(
      script,
      `import { appendFileSync } from 'node:fs';
       import { createInterface } from 'node:readline';
       const say = (l) => process.stdout.write(l + '\\n');
       say('MOUNTED sr0 1 ${a}'); say('MOUNTED sr2 1 ${join(root, 'sr2.1')}'); say('READY');
       setTimeout(() => { say('MOUNTED sr1 1 ${b}'); say('EJECT-REQUEST sr0'); }, 50);
       createInterface({ input: process.stdin }).on('line', (l) => { appendFileSync(${JSON.stringify(commands)}, l + '\\n'); say('UNMOUNTED sr0 1'); say('EJECTED sr0 ok'); });`,
    );
    const stacks: string[][] = [];
    let closeReader: () => void = () => undefined;
    const reader = new Promise<void>((resolve) => (closeReader = resolve));
    const watcher = new DeviceWatcher({
      helper: [process.execPath, script],
      setLayers: async (layers) => void stacks.push(layers.map((l) => `${l.name}:${l.digest}`)),
      released: (r) => (r === a ? reader : Promise.resolve()),
      releaseTimeoutMs: 5000,
    });
    await watcher.start();
    expect(stacks).toEqual([['cache:sha256:a']]);
    await new Promise((r) => setTimeout(r, 300));
    expect(stacks.at(-1)).toEqual(['cache:sha256:b']); // the newer image took over …
    expect(() => readFileSync(commands, 'utf8')).toThrow(); // … but sr0 is held while its reader reads
    closeReader();
    await new Promise((r) => setTimeout(r, 200));
    expect(readFileSync(commands, 'utf8')).toBe('RELEASE sr0\n');
    expect(watcher.media.map((m) => m.dev)).toEqual(['sr1']);
    await watcher.stop();
  });

  it('fails to start clearly when the helper cannot run', async () => {
    const watcher = new DeviceWatcher({ helper: ['/nonexistent/ffs-devd'], setLayers: async () => undefined, released: async () => undefined });
    await expect(watcher.start()).rejects.toThrow(/ENOENT|nonexistent/);
  });
});
