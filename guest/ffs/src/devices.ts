// The device watcher: context images arrive as CD-ROM media, found by their manifest. The kernel
// side (uevents, mount, eject) is the ffs-devd helper (native/ffs-devd.c), spawned here and
// spoken to in lines; this side decides what the union shows. A medium is mounted by the helper
// in a directory of its own; when a layer's newer image arrives (in another drive, or after an
// eject in the same one) the stack switches to it atomically. When the host asks for a drive
// back (an eject request), the layer on it leaves the stack first, its last reader closes, and
// only then is the medium released — so the host's non-forced eject never times out on us.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { readManifest, type Layer } from './layer.js';
import { silentLogger, type Logger } from './log.js';

/** A line from ffs-devd. */
export type HelperEvent =
  | { readonly kind: 'ready' }
  | { readonly kind: 'mounted'; readonly dev: string; readonly seq: number; readonly dir: string }
  | { readonly kind: 'unmounted'; readonly dev: string; readonly seq: number }
  | { readonly kind: 'eject-request'; readonly dev: string }
  | { readonly kind: 'ejected'; readonly dev: string; readonly result: string }
  | { readonly kind: 'error'; readonly dev: string; readonly what: string };

export function parseHelperLine(line: string): HelperEvent | undefined {
  const [word, dev = '', ...rest] = line.trim().split(' ');
  switch (word) {
    case 'READY':
      return { kind: 'ready' };
    case 'MOUNTED':
      return rest.length >= 2 ? { kind: 'mounted', dev, seq: Number(rest[0]), dir: rest.slice(1).join(' ') } : undefined;
    case 'UNMOUNTED':
      return { kind: 'unmounted', dev, seq: Number(rest[0]) };
    case 'EJECT-REQUEST':
      return { kind: 'eject-request', dev };
    case 'EJECTED':
      return { kind: 'ejected', dev, result: rest.join(' ') };
    case 'ERROR':
      return { kind: 'error', dev, what: rest.join(' ') };
    default:
      return undefined;
  }
}

/** A mounted medium that carries a context layer. */
export interface Medium {
  readonly dev: string;
  readonly seq: number;
  /** Arrival order across all drives: the newest image of a layer wins. */
  readonly arrival: number;
  readonly layer: Layer;
}

/**
 * The stack the union should show (pure): every plain-directory layer, and for each layer name
 * the newest medium carrying it (a newer device layer replaces a directory layer of that name).
 */
export function stackOf(media: readonly Medium[], fixed: readonly Layer[]): Layer[] {
  const newest = new Map<string, Medium>();
  for (const medium of media) {
    const seen = newest.get(medium.layer.name);
    if (!seen || medium.arrival > seen.arrival) newest.set(medium.layer.name, medium);
  }
  return [...fixed.filter((l) => !newest.has(l.name)), ...[...newest.values()].map((m) => m.layer)];
}

export interface DeviceWatcherOptions {
  /** The helper and its arguments, e.g. ['/usr/lib/recontext-ffs/ffs-devd', '/run/recontext-ffs/media']. */
  readonly helper: readonly string[];
  /** Replaces the union's whole stack (Union.setLayers). */
  readonly setLayers: (layers: Layer[]) => Promise<void>;
  /** Settles when no file is open on a layer root any more (Union.released). */
  readonly released: (root: string) => Promise<void>;
  /** Plain-directory layers kept in every stack (setFixed() replaces them). */
  readonly fixed?: readonly Layer[];
  /** How long a reader may keep the old image's files open before the drive is released anyway. Default 3000 ms (libvirt waits 5 s). */
  readonly releaseTimeoutMs?: number;
  readonly logger?: Logger;
}

export class DeviceWatcher {
  readonly #o: DeviceWatcherOptions;
  readonly #log: Logger;
  readonly #media = new Map<string, Medium>();
  #fixed: readonly Layer[];
  #arrivals = 0;
  #child: ChildProcessByStdio<Writable, Readable, null> | undefined;
  /** Stack updates and releases, one after the other: each sees the previous one done. */
  #work: Promise<void> = Promise.resolve();
  #stopping = false;

  constructor(options: DeviceWatcherOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#fixed = options.fixed ?? [];
  }

  /** Replaces the plain-directory layers (e.g. `recontext-ffs set`); device layers stay. */
  setFixed(layers: readonly Layer[]): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#enqueue(async () => {
        this.#fixed = layers;
        await this.#publish().then(resolve, reject);
      }),
    );
  }

  /** Media mounted now, by drive. */
  get media(): readonly Medium[] {
    return [...this.#media.values()];
  }

  /** Spawns the helper; resolves once it has scanned the drives present at start (READY). */
  start(): Promise<void> {
    const [command, ...args] = this.#o.helper;
    if (!command) throw new Error('the device watcher needs a helper command');
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#child = child;
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        if (!this.#stopping) this.#log.error('device helper exited', { code, signal });
        reject(new Error(`device helper ${command} exited (${code ?? signal}) before it was ready`));
      });
      createInterface({ input: child.stdout }).on('line', (line) => {
        const event = parseHelperLine(line);
        if (!event) return this.#log.warn('device helper said something unknown', { line });
        if (event.kind === 'ready') {
          this.#enqueue(async () => resolve());
          return;
        }
        this.#enqueue(() => this.#handle(event));
      });
    });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#child?.stdin.end(); // the helper exits when its stdin closes
    await this.#work;
  }

  #enqueue(step: () => Promise<void>): void {
    this.#work = this.#work.then(step).catch((error: unknown) => this.#log.error('device watcher step failed', { error: error instanceof Error ? error.message : String(error) }));
  }

  async #handle(event: Exclude<HelperEvent, { kind: 'ready' }>): Promise<void> {
    switch (event.kind) {
      case 'mounted': {
        const manifest = await readManifest(event.dir).catch((error: unknown) => {
          this.#log.warn('medium has a broken manifest; not used', { dev: event.dev, error: error instanceof Error ? error.message : String(error) });
          return undefined;
        });
        // A medium insertion raises two uevents: the helper mounts, then mounts again and lets the
        // first go — by then that directory may be empty. Only a medium still mounted counts.
        if (!manifest?.layer) return this.#log.info('medium is not a context layer (or was replaced at once); ignored', { dev: event.dev, dir: event.dir });
        const layer: Layer = {
          name: manifest.layer,
          priority: manifest.priority ?? 0,
          root: event.dir,
          source: { kind: 'device', device: `/dev/${event.dev}` },
          ...(manifest.class ? { class: manifest.class } : {}),
          ...(manifest.digest ? { digest: manifest.digest } : {}),
        };
        this.#media.set(event.dev, { dev: event.dev, seq: event.seq, arrival: ++this.#arrivals, layer });
        this.#log.info('layer image arrived', { dev: event.dev, layer: layer.name, digest: layer.digest, priority: layer.priority });
        return this.#publish();
      }
      case 'unmounted':
        if (this.#media.get(event.dev)?.seq === event.seq) {
          this.#media.delete(event.dev);
          await this.#publish();
        }
        return;
      case 'eject-request': {
        const medium = this.#media.get(event.dev);
        this.#media.delete(event.dev);
        if (medium) {
          await this.#publish(); // the layer leaves the stack (or its newer image takes over) first
          await this.#readersGone(medium.layer.root);
        }
        this.#child?.stdin.write(`RELEASE ${event.dev}\n`);
        this.#log.info('released a drive the host asked for', { dev: event.dev, layer: medium?.layer.name });
        return;
      }
      case 'ejected':
        if (event.result !== 'ok') this.#log.warn('eject failed; the host will retry', { dev: event.dev, result: event.result });
        return;
      case 'error':
        this.#log.warn('device helper error', { dev: event.dev, what: event.what });
        return;
    }
  }

  #publish(): Promise<void> {
    return this.#o.setLayers(stackOf([...this.#media.values()], this.#fixed));
  }

  async #readersGone(root: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.#o.releaseTimeoutMs ?? 3000)));
    const outcome = await Promise.race([this.#o.released(root).then(() => 'closed' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.#log.warn('files of a replaced image are still open; releasing its drive anyway', { root });
  }
}
