// A rendered layer as an ISO9660 image in the content-addressed store: `<hex digest>.iso`, built
// in-process by src/iso. The layer digest names the image, so an image is built once however many
// VMs use it, and every version of a layer gets a file of its own (what a CD-ROM swap needs).
import { stat } from 'node:fs/promises';
import { buildIso, type IsoEntry } from '../iso/index.js';
import { ImageStore } from './image-store.js';
import { hooksFile, manifestFile, type RenderedLayer } from '../reconcile/render.js';
import { realClock, type Clock } from '../runtime/clock.js';

/**
 * The one timestamp inside every image. Fixed, so that the same content always gives the same
 * bytes; guests learn about changes from the device swap and the manifest digest, not from mtimes.
 */
export const IMAGE_TIMESTAMP = new Date('2024-01-01T00:00:00Z');

export interface LayerImage {
  readonly digest: string;
  readonly path: string;
  readonly bytes: number;
  /** false when the image was already in the store. */
  readonly built: boolean;
}

/** Volume ID seen by guests (/dev/disk/by-label): fixed prefix + digest, ISO9660 d-characters only. */
export function volumeId(digest: string): string {
  return `RCTX_${hexOf(digest).slice(0, 24).toUpperCase()}`;
}

export function hexOf(digest: string): string {
  return digest.replace(/^sha256:/, '');
}

/** The entries of a layer's image: its files plus the manifest the guest agent (guest/agent) identifies it by, and its hooks. */
export function imageEntries(layer: RenderedLayer): IsoEntry[] {
  const hooks = hooksFile(layer);
  return [...layer.files, manifestFile(layer), ...(hooks ? [hooks] : [])].map((file) => ({ path: file.path, kind: 'file', mode: file.mode, content: file.content }));
}

export class LayerImageStore {
  readonly #store: ImageStore;
  /** Digests ensured recently, with when: protected from gc until their VM's status names them. */
  readonly #recent = new Map<string, number>();
  readonly #graceMs: number;
  readonly #building = new Map<string, Promise<LayerImage>>();
  readonly #now: () => number;

  /** `graceMs`: how long a freshly ensured image survives gc without being referenced (default 10 min). */
  constructor(directory: string, options: { graceMs?: number; clock?: Clock } = {}) {
    this.#store = new ImageStore({ directory });
    this.#graceMs = options.graceMs ?? 600_000;
    const clock = options.clock ?? realClock;
    this.#now = () => clock.now();
  }

  get directory(): string {
    return this.#store.directory;
  }

  path(digest: string): string {
    return this.#store.path(hexOf(digest));
  }

  async has(digest: string): Promise<boolean> {
    return this.#store.has(hexOf(digest));
  }

  /** Builds the layer's image unless the store has it already; concurrent calls for one digest share one build. */
  ensure(layer: RenderedLayer): Promise<LayerImage> {
    this.#recent.set(layer.digest, this.#now());
    const running = this.#building.get(layer.digest);
    if (running) return running.then((image) => ({ ...image, built: false }));
    const build = this.#build(layer).finally(() => this.#building.delete(layer.digest));
    this.#building.set(layer.digest, build);
    return build;
  }

  async #build(layer: RenderedLayer): Promise<LayerImage> {
    const result = await this.#store.put(hexOf(layer.digest), () => buildIso(imageEntries(layer), { volumeId: volumeId(layer.digest), label: layer.name.slice(0, 16), timestamp: IMAGE_TIMESTAMP }));
    return { digest: layer.digest, path: result.path, bytes: (await stat(result.path)).size, built: result.created };
  }

  /**
   * Deletes every image whose digest is neither in `keep` nor ensured within the grace period
   * (a reconciliation may have built it and not yet written the status that names it).
   */
  async gc(keep: Iterable<string>): Promise<string[]> {
    const cutoff = this.#now() - this.#graceMs;
    for (const [digest, at] of this.#recent) if (at < cutoff) this.#recent.delete(digest);
    const kept = new Set([...keep, ...this.#recent.keys()]);
    return (await this.#store.gc([...kept].map(hexOf))).map((hex) => `sha256:${hex}`);
  }
}
