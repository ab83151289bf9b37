// One running FFS: a union mounted at a mountpoint, its hook runner and status sections. The
// command line uses it with directory layers; the in-guest device watcher uses it the same way
// and changes the stack with `ffs.union.setLayers(...)` (README.md, "The seam").
import { mountUnion, type Mounted } from './fuse.js';
import { HookRunner } from './hooks/runner.js';
import type { Layer } from './layer.js';
import { silentLogger, type Logger } from './log.js';
import { Union } from './union.js';

export interface FfsOptions {
  readonly mountpoint: string;
  /** The first stack (fires no hooks). */
  readonly layers: readonly Layer[];
  readonly log?: Logger;
  /** Extra status.json fields (e.g. the control socket path). */
  readonly status?: Record<string, unknown>;
  readonly allowOther?: boolean;
}

export interface Ffs {
  readonly union: Union;
  readonly hooks: HookRunner;
  readonly mounted: Mounted;
  /** Unmounts and stops the hooks (running ones are waited for). */
  close(): Promise<void>;
}

export async function startFfs(options: FfsOptions): Promise<Ffs> {
  const log = options.log ?? silentLogger;
  const union = new Union();
  const hooks = new HookRunner({ union, mountpoint: options.mountpoint, log });
  union.setStatusSection('mountpoint', () => options.mountpoint);
  union.setStatusSection('pid', () => process.pid);
  for (const [key, value] of Object.entries(options.status ?? {})) union.setStatusSection(key, () => value);
  union.setStatusSection('hooks', () => hooks.status());
  await union.setLayers(options.layers);
  const mounted = await mountUnion(union, options.mountpoint, options.allowOther !== undefined ? { allowOther: options.allowOther } : {});
  log.info('mounted', { mountpoint: mounted.mountpoint, generation: union.stack.generation, layers: union.stack.layers.map((l) => `${l.name}:${l.priority}`) });
  union.onChange(({ current }) =>
    log.info('stack changed', { generation: current.generation, layers: current.layers.map((l) => `${l.name}:${l.priority}`) }),
  );
  let closing: Promise<void> | undefined;
  return {
    union,
    hooks,
    mounted,
    close: () =>
      (closing ??= (async () => {
        await hooks.close();
        await mounted.unmount();
        log.info('unmounted', { mountpoint: mounted.mountpoint });
      })()),
  };
}
