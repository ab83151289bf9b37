// Per-stack memoization of path resolution. A stack is one frozen generation of read-only layer
// trees (mounted images; a directory layer must not change while it is in the stack), so what a
// path resolves to — which layer serves it, its real path and attributes, which layers merge
// below it, or that it is absent — and what a directory lists cannot change within one stack.
// Each stack gets its own cache (kept in a WeakMap, so it is collected with its stack); the union
// closes the previous stack's cache at the swap, which empties it and stops it storing, so no
// cached answer outlives its stack. Memory is bounded: at most `entries` resolutions (positive
// and negative) and `names` directory entries over all cached listings, least recently used
// evicted first. Lookups of one key that run at the same time share one resolution; failures
// (anything but absence) are never cached.
import type { Stack } from './stack.js';
import type { Resolved } from './resolve.js';

export interface CacheLimits {
  /** Resolved paths kept (present or absent). */
  readonly entries: number;
  /** Directory entry names kept, summed over the cached listings (a listing counts its names + 1). */
  readonly names: number;
}

/** ~16 k paths (~10 MB at most with their stats) and 64 k listed names: a VM's context many times over. */
export const DEFAULT_CACHE_LIMITS: CacheLimits = Object.freeze({ entries: 16_384, names: 65_536 });

export interface CacheStats {
  readonly entries: number;
  readonly listings: number;
  readonly names: number;
  readonly hits: number;
  readonly misses: number;
  readonly closed: boolean;
}

/** A map in least-recently-used order with a weight budget. */
class Lru<V> {
  readonly #map = new Map<string, { value: V; weight: number }>();
  #weight = 0;
  constructor(readonly budget: number) {}

  get size(): number {
    return this.#map.size;
  }

  get weight(): number {
    return this.#weight;
  }

  get(key: string): V | undefined {
    const hit = this.#map.get(key);
    if (hit === undefined) return undefined;
    // Most recently used last (re-inserting moves it to the end of the iteration order).
    this.#map.delete(key);
    this.#map.set(key, hit);
    return hit.value;
  }

  set(key: string, value: V, weight: number): void {
    if (weight > this.budget) return;
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#map.delete(key);
      this.#weight -= old.weight;
    }
    this.#map.set(key, { value, weight });
    this.#weight += weight;
    for (const [k, v] of this.#map) {
      if (this.#weight <= this.budget) break;
      this.#map.delete(k);
      this.#weight -= v.weight;
    }
  }

  clear(): void {
    this.#map.clear();
    this.#weight = 0;
  }
}

/** `null` caches "absent" (a Map cannot tell a stored undefined from a missing key cheaply). */
type Entry = Resolved | null;

export class StackCache {
  readonly #entries: Lru<Entry>;
  readonly #listings: Lru<readonly string[]>;
  readonly #pendingEntries = new Map<string, Promise<Resolved | undefined>>();
  readonly #pendingListings = new Map<string, Promise<readonly string[]>>();
  #closed = false;
  #hits = 0;
  #misses = 0;

  constructor(limits: CacheLimits = DEFAULT_CACHE_LIMITS) {
    this.#entries = new Lru(Math.max(0, limits.entries));
    this.#listings = new Lru(Math.max(0, limits.names));
  }

  /** The cached resolution of a normalized union path: a Resolved, null (absent) or undefined (not cached). */
  entry(key: string): Entry | undefined {
    const hit = this.#entries.get(key);
    if (hit !== undefined) this.#hits++;
    return hit;
  }

  /** Resolves `key` once: cached, joining a resolution under way, or running `compute` and caching its answer. */
  resolve(key: string, compute: () => Promise<Resolved | undefined>): Promise<Resolved | undefined> {
    const hit = this.entry(key);
    if (hit !== undefined) return Promise.resolve(hit ?? undefined);
    return this.#shared(this.#pendingEntries, key, compute, (value) => this.#entries.set(key, value ?? null, 1));
  }

  /** The sorted names of a directory, once per key (as resolve). */
  listing(key: string, compute: () => Promise<readonly string[]>): Promise<readonly string[]> {
    const hit = this.#listings.get(key);
    if (hit !== undefined) {
      this.#hits++;
      return Promise.resolve(hit);
    }
    return this.#shared(this.#pendingListings, key, compute, (names) => this.#listings.set(key, names, names.length + 1));
  }

  /** Empties the cache and stops it storing: its stack is no longer current. */
  close(): void {
    this.#closed = true;
    this.#entries.clear();
    this.#listings.clear();
    this.#pendingEntries.clear();
    this.#pendingListings.clear();
  }

  stats(): CacheStats {
    return {
      entries: this.#entries.size,
      listings: this.#listings.size,
      names: this.#listings.weight,
      hits: this.#hits,
      misses: this.#misses,
      closed: this.#closed,
    };
  }

  #shared<T>(pending: Map<string, Promise<T>>, key: string, compute: () => Promise<T>, store: (value: T) => void): Promise<T> {
    const running = pending.get(key);
    if (running !== undefined) {
      this.#hits++;
      return running;
    }
    this.#misses++;
    if (this.#closed) return compute();
    const promise = compute().then(
      (value) => {
        if (pending.get(key) === promise) {
          pending.delete(key);
          if (!this.#closed) store(value);
        }
        return value;
      },
      (error: unknown) => {
        if (pending.get(key) === promise) pending.delete(key);
        throw error;
      },
    );
    pending.set(key, promise);
    return promise;
  }
}

const caches = new WeakMap<Stack, StackCache>();

/** The stack's cache (made on first use, with `limits` or the defaults). */
export function cacheOf(stack: Stack, limits?: CacheLimits): StackCache {
  let cache = caches.get(stack);
  if (cache === undefined) {
    cache = new StackCache(limits);
    caches.set(stack, cache);
  }
  return cache;
}
