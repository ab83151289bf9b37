// The hooks file a layer may carry at .recontext/hooks.json (documented in guest/ffs/README.md):
//
//   { "hooks": [
//       { "name": "gluster-cache", "paths": ["/etc/glusterfs/"],
//         "run": ["/usr/sbin/gluster-reload", "--quick"], "debounceMs": 100, "timeoutMs": 30000 },
//       { "name": "nginx", "paths": ["/etc/nginx"], "signal": { "name": "HUP", "pidfile": "/run/nginx.pid" } },
//       { "name": "chrony", "paths": ["/etc/chrony"], "restart": "chrony.service" },
//       { "name": "some-lower-layer-hook", "disabled": true } ] }
//
// Hooks are merged across the stack by name: the highest-priority layer that defines a name
// decides (so a layer can replace or disable a lower layer's hook).
import { constants as osConstants } from 'node:os';

export type HookAction =
  | { readonly kind: 'run'; readonly argv: readonly string[] }
  | { readonly kind: 'signal'; readonly signal: NodeJS.Signals; readonly pidfile: string }
  | { readonly kind: 'restart'; readonly unit: string };

export interface Hook {
  readonly name: string;
  /** The layer whose hooks file defines it. */
  readonly layer: string;
  /** Union paths, normalized: leading '/', no trailing '/'; '/' is everything. */
  readonly paths: readonly string[];
  readonly action: HookAction;
  readonly debounceMs: number;
  readonly timeoutMs: number;
  /** Append the changed paths to a `run` command's argv (they are always in RECONTEXT_CHANGED_PATHS). */
  readonly appendPaths: boolean;
}

/** A hooks file entry: a hook, or the switching off of a lower layer's hook of that name. */
export type HookEntry = Hook | { readonly name: string; readonly layer: string; readonly disabled: true };

// A migration swaps a VM's layers ~35 ms apart (bench/ffs-guest): 100 ms still makes them one
// run, and is what the default adds to a single swap's attach → hook time.
export const DEFAULT_DEBOUNCE_MS = 100;
export const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_DEBOUNCE_MS = 60_000;
const MAX_TIMEOUT_MS = 3_600_000;

export class HookFormatError extends Error {
  override readonly name = 'HookFormatError';
}

const HOOK_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const KNOWN_KEYS = new Set(['name', 'paths', 'run', 'signal', 'restart', 'debounceMs', 'timeoutMs', 'appendPaths', 'disabled']);

/** Normalizes a hook path: "etc/glusterfs/" → "/etc/glusterfs". */
export function normalizeHookPath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '.' || p === '..')) throw new HookFormatError(`path ${JSON.stringify(path)} must not contain . or ..`);
  return '/' + parts.join('/');
}

/** Whether a changed union path is under (or is) a hook path. */
export function pathMatches(hookPath: string, changed: string): boolean {
  return hookPath === '/' || changed === hookPath || changed.startsWith(hookPath + '/');
}

/** Parses a hooks file's text; every problem is a HookFormatError naming the layer and entry. */
export function parseHooksFile(text: string, layer: string): HookEntry[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error: unknown) {
    throw new HookFormatError(`layer ${layer}: hooks file is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const hooks = isObject(raw) ? raw['hooks'] : undefined;
  if (!Array.isArray(hooks)) throw new HookFormatError(`layer ${layer}: hooks file must be an object with a "hooks" array`);
  const names = new Set<string>();
  return hooks.map((entry: unknown, i) => {
    const where = `layer ${layer}: hooks[${i}]`;
    if (!isObject(entry)) throw new HookFormatError(`${where} is not an object`);
    const name = entry['name'];
    if (typeof name !== 'string' || !HOOK_NAME.test(name)) throw new HookFormatError(`${where}: "name" must be 1-128 of A-Z a-z 0-9 . _ -`);
    if (names.has(name)) throw new HookFormatError(`${where}: hook ${name} is defined twice`);
    names.add(name);
    for (const key of Object.keys(entry)) if (!KNOWN_KEYS.has(key)) throw new HookFormatError(`${where} (${name}): unknown field "${key}"`);
    if (entry['disabled'] === true) return { name, layer, disabled: true as const };
    return { name, layer, ...parseHook(entry, `${where} (${name})`) };
  });
}

function parseHook(entry: Record<string, unknown>, where: string): Omit<Hook, 'name' | 'layer'> {
  const paths = entry['paths'];
  if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p) => typeof p === 'string' && p !== '')) {
    throw new HookFormatError(`${where}: "paths" must be a non-empty array of paths`);
  }
  const actions = (['run', 'signal', 'restart'] as const).filter((k) => entry[k] !== undefined);
  if (actions.length !== 1) throw new HookFormatError(`${where}: exactly one of "run", "signal", "restart" is needed`);
  let action: HookAction;
  const run = entry['run'];
  const signal = entry['signal'];
  const restart = entry['restart'];
  if (run !== undefined) {
    if (!Array.isArray(run) || run.length === 0 || !run.every((a) => typeof a === 'string') || !String(run[0]).startsWith('/')) {
      throw new HookFormatError(`${where}: "run" must be an argv array whose first element is an absolute path`);
    }
    action = { kind: 'run', argv: run as string[] };
  } else if (signal !== undefined) {
    const signalName = isObject(signal) ? signal['name'] : undefined;
    const pidfile = isObject(signal) ? signal['pidfile'] : undefined;
    const full = typeof signalName === 'string' ? (signalName.startsWith('SIG') ? signalName : `SIG${signalName}`) : '';
    if (!(full in osConstants.signals)) throw new HookFormatError(`${where}: "signal.name" must be a signal name such as HUP`);
    if (typeof pidfile !== 'string' || !pidfile.startsWith('/')) throw new HookFormatError(`${where}: "signal.pidfile" must be an absolute path`);
    action = { kind: 'signal', signal: full as NodeJS.Signals, pidfile };
  } else {
    if (typeof restart !== 'string' || !/^[A-Za-z0-9@._:\\-]+$/.test(restart)) throw new HookFormatError(`${where}: "restart" must be a systemd unit name`);
    action = { kind: 'restart', unit: restart };
  }
  const debounceMs = optionalInteger(entry['debounceMs'], DEFAULT_DEBOUNCE_MS, 0, MAX_DEBOUNCE_MS, `${where}: "debounceMs"`);
  const timeoutMs = optionalInteger(entry['timeoutMs'], DEFAULT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS, `${where}: "timeoutMs"`);
  const appendPaths = entry['appendPaths'] ?? false;
  if (typeof appendPaths !== 'boolean') throw new HookFormatError(`${where}: "appendPaths" must be true or false`);
  if (appendPaths && action.kind !== 'run') throw new HookFormatError(`${where}: "appendPaths" only goes with "run"`);
  return { paths: paths.map((p: string) => normalizeHookPath(p)), action, debounceMs, timeoutMs, appendPaths };
}

/**
 * The hooks in force for a stack, from each layer's entries (highest priority first): per name,
 * the highest layer's entry decides; disabled entries drop the name.
 */
export function mergeHooks(perLayerHighestFirst: readonly (readonly HookEntry[])[]): Hook[] {
  const decided = new Map<string, HookEntry>();
  for (const entries of perLayerHighestFirst) for (const e of entries) if (!decided.has(e.name)) decided.set(e.name, e);
  return [...decided.values()].filter((e): e is Hook => !('disabled' in e)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function optionalInteger(value: unknown, fallback: number, min: number, max: number, what: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new HookFormatError(`${what} must be an integer from ${min} to ${max}`);
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
