// Runs the hooks in force when the union's stack changes. Per change: read the new stack's hooks
// files, diff the union views before and after, and give each hook the changed paths under its
// own paths. A hook is debounced: changes that reach it within debounceMs of each other make ONE
// run with all their paths; a run never overlaps the previous run of the same hook (changes
// during a run wait for it, then make one more). The first stack a union gets (mount time) fires
// nothing: the services start after it and read it as they are. Every run is logged with its exit
// status and kept in the status file.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HOOKS_PATH, isErrno, type Layer } from '../layer.js';
import type { Stack } from '../stack.js';
import type { StackChange, Union } from '../union.js';
import { silentLogger, type Logger } from '../log.js';
import { ContentHashes, diffViews, indexView, type Entry } from './diff.js';
import { HookFormatError, mergeHooks, parseHooksFile, pathMatches, type Hook, type HookEntry } from './format.js';

/** How a run ended: exitCode for a command (null when killed), else signal or error. */
export interface HookRun {
  readonly at: string;
  readonly generation: number;
  readonly paths: readonly string[];
  readonly exitCode: number | null;
  readonly signal?: string;
  readonly error?: string;
  readonly durationMs: number;
  /** The last bytes the command wrote (stdout and stderr). */
  readonly output?: string;
}

export interface HookRunnerOptions {
  readonly union: Union;
  /** Given to commands as RECONTEXT_MOUNTPOINT. */
  readonly mountpoint?: string;
  readonly log?: Logger;
  readonly now?: () => Date;
}

const OUTPUT_TAIL_BYTES = 4096;

interface HookState {
  hook: Hook;
  pending: Set<string>;
  generation: number;
  timer: NodeJS.Timeout | undefined;
  /** When the pending timer fires (performance.now()). */
  due: number;
  running: Promise<void> | undefined;
  lastRun: HookRun | undefined;
  runs: number;
}

export class HookRunner {
  readonly #union: Union;
  readonly #mountpoint: string | undefined;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #hashes = new ContentHashes();
  #indexes: { stack: Stack; key: string; index: Promise<Map<string, Entry>> }[] = [];
  readonly #states = new Map<string, HookState>();
  #inForce: Hook[] = [];
  #fileErrors: { layer: string; error: string }[] = [];
  #idleWaiters: (() => void)[] = [];
  #analysing = 0;
  #closed = false;
  readonly #unsubscribe: () => void;

  constructor(options: HookRunnerOptions) {
    this.#union = options.union;
    this.#mountpoint = options.mountpoint;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? (() => new Date());
    this.#unsubscribe = this.#union.onChange((change) => this.#onChange(change));
  }

  /** For status.json: the hooks in force, each with its last run, and hooks files that failed to parse. */
  status(): { inForce: unknown[]; errors: { layer: string; error: string }[] } {
    return {
      inForce: this.#inForce.map((h) => {
        const state = this.#states.get(h.name);
        return { name: h.name, layer: h.layer, paths: h.paths, action: h.action.kind, runs: state?.runs ?? 0, ...(state?.lastRun ? { lastRun: state.lastRun } : {}) };
      }),
      errors: this.#fileErrors,
    };
  }

  /** Settles when no change is being analysed, no hook is waiting out its debounce or running. */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops listening and drops pending runs; waits for running ones. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    for (const s of this.#states.values()) {
      clearTimeout(s.timer);
      s.timer = undefined;
      s.pending.clear();
    }
    await Promise.allSettled([...this.#states.values()].map((s) => s.running));
  }

  async #onChange({ previous, current }: StackChange): Promise<void> {
    // The debounce counts from the stack change, not from the end of the comparison below
    // (which reads the layers and, under emulation, takes a good part of the attach → hook time).
    const changedAt = performance.now();
    this.#analysing++;
    try {
      const hooks = await this.#loadHooks(current);
      const loaded = performance.now();
      // Status shows the hooks of the newest stack; each change still fires the hooks of its own new stack.
      if (current === this.#union.stack) this.#inForce = hooks;
      if (previous.generation === 0 || hooks.length === 0) return;
      // Only what some hook watches is compared (the rest would only delay the hooks).
      const within = hooks.flatMap((h) => h.paths);
      const [before, after] = await Promise.all([this.#index(previous, within), this.#index(current, within)]);
      const indexed = performance.now();
      const changed = await diffViews(before, after, this.#hashes);
      const done = performance.now();
      this.#log.info('stack compared', {
        generation: current.generation,
        changed: changed.length,
        ms: { hooks: Math.round(loaded - changedAt), index: Math.round(indexed - loaded), diff: Math.round(done - indexed) },
      });
      for (const hook of hooks) {
        const mine = changed.filter((p) => hook.paths.some((hp) => pathMatches(hp, p)));
        if (mine.length > 0 && !this.#closed) this.#schedule(hook, mine, current.generation, changedAt);
      }
    } catch (error: unknown) {
      this.#log.error('hooks: cannot compare the stacks', { generation: current.generation, error: message(error) });
    } finally {
      this.#analysing--;
      this.#settleIdle();
    }
  }

  /**
   * The view of a stack under `within`; the last two are kept, so the stack a change leaves is
   * usually indexed already (it was the new stack of the change before). A stack never changes.
   */
  #index(stack: Stack, within: readonly string[]): Promise<Map<string, Entry>> {
    const key = within.join('\0');
    const hit = this.#indexes.find((i) => i.stack === stack && i.key === key);
    if (hit) return hit.index;
    const index = indexView(stack, within);
    this.#indexes = [{ stack, key, index }, ...this.#indexes].slice(0, 2);
    index.catch(() => (this.#indexes = this.#indexes.filter((i) => i.index !== index)));
    return index;
  }

  async #loadHooks(stack: Stack): Promise<Hook[]> {
    const errors: { layer: string; error: string }[] = [];
    const perLayer = await Promise.all(
      stack.layers.map(async (layer: Layer): Promise<HookEntry[]> => {
        let text: string;
        try {
          text = await readFile(join(layer.root, HOOKS_PATH), 'utf8');
        } catch (error: unknown) {
          if (isErrno(error, 'ENOENT') || isErrno(error, 'ENOTDIR')) return [];
          errors.push({ layer: layer.name, error: message(error) });
          return [];
        }
        try {
          return parseHooksFile(text, layer.name);
        } catch (error: unknown) {
          if (!(error instanceof HookFormatError)) throw error;
          errors.push({ layer: layer.name, error: error.message });
          return [];
        }
      }),
    );
    for (const e of errors) this.#log.error('hooks file ignored', e);
    this.#fileErrors = errors;
    return mergeHooks(perLayer);
  }

  /** Runs the hook debounceMs after the stack change (`changedAt`, performance.now()) — or after the latest such change while one is pending. */
  #schedule(hook: Hook, paths: readonly string[], generation: number, changedAt: number): void {
    let state = this.#states.get(hook.name);
    if (state === undefined) {
      state = { hook, pending: new Set(), generation, timer: undefined, due: 0, running: undefined, lastRun: undefined, runs: 0 };
      this.#states.set(hook.name, state);
    }
    state.hook = hook;
    state.generation = generation;
    for (const p of paths) state.pending.add(p);
    const due = changedAt + hook.debounceMs;
    state.due = state.timer !== undefined ? Math.max(state.due, due) : due;
    clearTimeout(state.timer);
    const s = state;
    s.timer = setTimeout(() => {
      s.timer = undefined;
      this.#fire(s);
    }, Math.max(0, s.due - performance.now()));
  }

  #fire(state: HookState): void {
    if (state.running !== undefined || state.pending.size === 0 || this.#closed) {
      this.#settleIdle();
      return; // a running hook fires again when it ends
    }
    const paths = [...state.pending].sort();
    state.pending.clear();
    state.running = this.#execute(state.hook, paths, state.generation)
      .then((run) => {
        state.lastRun = run;
        state.runs++;
        const fields = { hook: state.hook.name, layer: state.hook.layer, action: state.hook.action.kind, ...run };
        if (run.exitCode === 0) this.#log.info('hook ran', fields);
        else this.#log.warn('hook failed', fields);
      })
      .finally(() => {
        state.running = undefined;
        if (state.pending.size > 0 && state.timer === undefined) this.#fire(state);
        else this.#settleIdle();
      });
  }

  async #execute(hook: Hook, paths: readonly string[], generation: number): Promise<HookRun> {
    const started = this.#now();
    const at = started.toISOString();
    const done = (r: Omit<HookRun, 'at' | 'generation' | 'paths' | 'durationMs'>): HookRun => ({ at, generation, paths, durationMs: this.#now().getTime() - started.getTime(), ...r });
    const action = hook.action;
    if (action.kind === 'signal') {
      try {
        const pid = Number((await readFile(action.pidfile, 'utf8')).trim().split(/\s+/)[0]);
        if (!Number.isSafeInteger(pid) || pid <= 1) throw new Error(`${action.pidfile} holds no process id`);
        process.kill(pid, action.signal);
        return done({ exitCode: 0, signal: action.signal });
      } catch (error: unknown) {
        return done({ exitCode: null, error: message(error) });
      }
    }
    const argv = action.kind === 'run' ? [...action.argv, ...(hook.appendPaths ? paths : [])] : ['systemctl', 'restart', action.unit];
    const env = {
      ...process.env,
      RECONTEXT_HOOK: hook.name,
      RECONTEXT_LAYER: hook.layer,
      RECONTEXT_GENERATION: String(generation),
      RECONTEXT_CHANGED_PATHS: paths.join('\n'),
      ...(this.#mountpoint !== undefined ? { RECONTEXT_MOUNTPOINT: this.#mountpoint } : {}),
    };
    return new Promise((resolve) => {
      let output = Buffer.alloc(0);
      const keep = (chunk: Buffer): void => {
        output = Buffer.concat([output, chunk]);
        if (output.length > OUTPUT_TAIL_BYTES) output = output.subarray(output.length - OUTPUT_TAIL_BYTES);
      };
      const child = spawn(argv[0] as string, argv.slice(1), { cwd: '/', env, stdio: ['ignore', 'pipe', 'pipe'], timeout: hook.timeoutMs, killSignal: 'SIGKILL' });
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      let spawnError: string | undefined;
      child.on('error', (error) => (spawnError = message(error)));
      child.on('close', (code, signal) => {
        const text = output.toString('utf8').trimEnd();
        resolve(
          done({
            exitCode: code,
            ...(signal !== null ? { signal } : {}),
            ...(spawnError !== undefined ? { error: spawnError } : signal === 'SIGKILL' ? { error: `killed after timeoutMs ${hook.timeoutMs}` } : {}),
            ...(text !== '' ? { output: text } : {}),
          }),
        );
      });
    });
  }

  #isIdle(): boolean {
    return this.#analysing === 0 && [...this.#states.values()].every((s) => s.timer === undefined && s.running === undefined);
  }

  #settleIdle(): void {
    if (!this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
