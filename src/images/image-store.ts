// A content-addressed directory of images: `<hex digest>.iso`, where the caller's digest names the
// content (the same content is never rebuilt; every version gets a new file, which is what a CD-ROM
// swap needs). Writes are atomic — temp file, fsync, rename, fsync of the directory — so a crash
// leaves either the whole image or no image under its final name, plus at most a temp file that
// the next gc() removes.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { IsoInputError, IsoWriteError, type IsoImage } from '../iso/index.js';

export interface ImageStoreOptions {
  /** Directory holding the images; created on first put. One writing process per directory. */
  readonly directory: string;
}

export interface PutResult {
  readonly path: string;
  /** false when an image of this digest was already stored (nothing was built or written). */
  readonly created: boolean;
}

const DIGEST = /^[0-9a-f]{64}$/;
const IMAGE_NAME = /^([0-9a-f]{64})\.iso$/;
const TEMP_NAME = /^\.[0-9a-f]{64}\.[0-9a-f]+\.tmp$/;

export class ImageStore {
  readonly directory: string;
  /** Puts in progress, by digest: concurrent puts of one digest share one write. */
  readonly #inFlight = new Map<string, Promise<PutResult>>();
  readonly #tempFiles = new Set<string>();

  constructor(options: ImageStoreOptions) {
    this.directory = options.directory;
  }

  /** Path of the image named by `digest` (64 lower-case hex characters, e.g. a sha256). */
  path(digest: string): string {
    if (!DIGEST.test(digest)) throw new TypeError(`image digest must be 64 lower-case hex characters, got ${JSON.stringify(digest)}`);
    return join(this.directory, `${digest}.iso`);
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.path(digest))).isFile();
    } catch (error: unknown) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /**
   * Stores the image under `digest` unless it is there already. `image` may be a function, so an
   * image that exists is not even laid out.
   */
  put(digest: string, image: IsoImage | (() => IsoImage)): Promise<PutResult> {
    const final = this.path(digest);
    const running = this.#inFlight.get(digest);
    if (running !== undefined) return running;
    const done = this.#put(digest, final, image).finally(() => this.#inFlight.delete(digest));
    this.#inFlight.set(digest, done);
    return done;
  }

  async #put(digest: string, final: string, image: IsoImage | (() => IsoImage)): Promise<PutResult> {
    if (await this.has(digest)) return { path: final, created: false };
    await mkdir(this.directory, { recursive: true });
    const temp = join(this.directory, `.${digest}.${randomBytes(6).toString('hex')}.tmp`);
    this.#tempFiles.add(temp);
    try {
      const built = typeof image === 'function' ? image() : image;
      // fsync before rename, so the rename can only ever publish complete bytes.
      await built.writeToFile(temp, { exclusive: true, fsync: true, sha256: false });
      await rename(temp, final);
      await syncDirectory(this.directory);
      return { path: final, created: true };
    } catch (error: unknown) {
      await unlink(temp).catch(() => undefined);
      if (error instanceof IsoInputError || error instanceof IsoWriteError) throw error;
      throw new IsoWriteError(`storing image ${digest} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    } finally {
      this.#tempFiles.delete(temp);
    }
  }

  /** Digests of the stored images, sorted. */
  async list(): Promise<string[]> {
    const names = await readdir(this.directory).catch((error: unknown) => {
      if (isNotFound(error)) return [];
      throw error;
    });
    return names.flatMap((name) => IMAGE_NAME.exec(name)?.[1] ?? []).sort();
  }

  /**
   * Removes every image whose digest is not in `keep`, and temp files left by crashed writes (not
   * those of puts running in this store). Returns the removed digests. `keep` must list every image
   * some VM uses or is about to use.
   */
  async gc(keep: Iterable<string>): Promise<string[]> {
    const kept = new Set(keep);
    const removed: string[] = [];
    const names = await readdir(this.directory).catch((error: unknown) => {
      if (isNotFound(error)) return [];
      throw error;
    });
    for (const name of names.sort()) {
      const full = join(this.directory, name);
      const digest = IMAGE_NAME.exec(name)?.[1];
      const inFlight = digest !== undefined && this.#inFlight.has(digest);
      if (digest !== undefined && !kept.has(digest) && !inFlight) {
        await unlinkIfPresent(full);
        removed.push(digest);
      } else if (TEMP_NAME.test(name) && !this.#tempFiles.has(full)) {
        await unlinkIfPresent(full);
      }
    }
    if (removed.length > 0) await syncDirectory(this.directory);
    return removed;
  }
}

/** Makes a rename durable: the directory entry itself must reach the disk. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error: unknown) {
    if (!isNotFound(error)) throw error;
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === 'ENOENT';
}
