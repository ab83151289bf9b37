// Edge cases of the list/watch loop with a scripted client (the real API server is exercised by
// test/integration/faults.test.ts): error events relist, deletions missed meanwhile are announced.
import { describe, expect, it } from 'vitest';
import type { KubeClient, WatchEvent } from '../kube/client.js';
import { CONFIG_MAPS } from '../kube/resources.js';
import { Informer, type ObjectMeta } from './informer.js';
import { createLogger } from './log.js';
import { OperatorMetrics } from './metrics.js';

type Obj = ObjectMeta;
const obj = (name: string, rv: string): Obj => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

/** A client whose lists and watches follow a script. */
function scripted(lists: Obj[][], watches: ((emit: (e: WatchEvent<Obj>) => void) => void)[]) {
  const calls: string[] = [];
  const client = {
    async list() {
      calls.push('list');
      const items = lists.shift() ?? [];
      return { items, metadata: { resourceVersion: String(10 + calls.length) } };
    },
    async watch(_path: string, query: Record<string, unknown>, onEvent: (e: WatchEvent<Obj>) => void, signal: AbortSignal) {
      calls.push(`watch@${String(query.resourceVersion)}`);
      const script = watches.shift();
      if (!script) return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
      script(onEvent);
    },
  } as unknown as KubeClient;
  return { client, calls };
}

describe('Informer', () => {
  it('relists after an error event of any code, and announces objects deleted meanwhile', async () => {
    const { client, calls } = scripted(
      [[obj('a', '1'), obj('b', '2')], [obj('a', '3')]],
      [(emit) => emit({ type: 'ERROR', object: { code: 500, message: 'etcd event received with PrevKv=nil' } as unknown as Obj })],
    );
    const informer = new Informer<Obj>({ client, resource: CONFIG_MAPS, logger: createLogger({ write: () => {} }), metrics: new OperatorMetrics({ defaultMetrics: false }), backoffBaseMs: 1 });
    const events: string[] = [];
    informer.onEvent((event, o) => events.push(`${event} ${o.metadata.name}`));
    const abort = new AbortController();
    informer.start(abort.signal);
    for (let i = 0; i < 100 && calls.length < 4; i++) await new Promise((r) => setTimeout(r, 5));
    abort.abort();
    await informer.stopped();
    expect(calls.slice(0, 4)).toEqual(['list', 'watch@11', 'list', 'watch@13']);
    expect(events).toEqual(['add a', 'add b', 'update a', 'delete b']);
    expect(informer.list().map((o) => o.metadata.name)).toEqual(['a']);
  });
});
