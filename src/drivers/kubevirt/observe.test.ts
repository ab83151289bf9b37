import { describe, expect, it } from 'vitest';
import type { V1VirtualMachineInstance } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import { ApiError, type KubeClient } from '../../kube/client.js';
import { PlatformUnavailableError, VMConfigurationError } from '../driver.js';
import { ApiPresence, CREATED_BY_LABEL, incomingNode, MIGRATION_JOB_LABEL, NodeLabelCache, requireKubeVirtApi, type LauncherPod } from './observe.js';
import { clockReading } from '../../runtime/clock.js';

/** A client whose GETs the test answers; it counts them. */
function fakeClient(answer: (path: string) => Promise<unknown>): { client: KubeClient; gets: string[] } {
  const gets: string[] = [];
  const get = (path: string) => {
    gets.push(path);
    return answer(path);
  };
  const client = {
    get,
    getOrUndefined: (path: string) => get(path).catch((error: unknown) => (error instanceof ApiError && error.notFound ? undefined : Promise.reject(error))),
  } as unknown as KubeClient;
  return { client, gets };
}

const notFound = () => Promise.reject(new ApiError(404, 'NotFound', 'not found'));

describe('NodeLabelCache', () => {
  it('reads a node once for concurrent and repeated lookups within the TTL, and again after it', async () => {
    let now = 0;
    let zone = 'zone-a';
    const { client, gets } = fakeClient(async () => ({ metadata: { labels: { zone } } }));
    const cache = new NodeLabelCache(client, { ttlMs: 1000, clock: clockReading(() => now) });
    const [a, b] = await Promise.all([cache.get('n1'), cache.get('n1')]);
    expect(a).toEqual({ zone: 'zone-a' });
    expect(b).toBe(a);
    now = 999;
    zone = 'zone-b';
    expect(await cache.get('n1')).toEqual({ zone: 'zone-a' });
    expect(gets).toEqual(['/api/v1/nodes/n1']);
    now = 1000;
    expect(await cache.get('n1')).toEqual({ zone: 'zone-b' }); // a relabelled node is seen after the TTL
    expect(gets).toHaveLength(2);
  });

  it('answers undefined for no name and for a node that does not exist; a failed read is not kept', async () => {
    let fail = true;
    const { client, gets } = fakeClient((path) => (path.endsWith('/gone') ? notFound() : fail ? Promise.reject(new Error('connection reset')) : Promise.resolve({ metadata: {} })));
    const cache = new NodeLabelCache(client);
    expect(await cache.get(undefined)).toBeUndefined();
    expect(await cache.get('gone')).toBeUndefined();
    await expect(cache.get('n1')).rejects.toThrow('connection reset');
    fail = false;
    expect(await cache.get('n1')).toEqual({});
    expect(gets).toEqual(['/api/v1/nodes/gone', '/api/v1/nodes/n1', '/api/v1/nodes/n1']);
  });
});

describe('ApiPresence', () => {
  it('keeps a missing API for the interval, then asks again (installing KubeVirt later heals)', async () => {
    let now = 0;
    let served = false;
    const { client, gets } = fakeClient(() => (served ? Promise.resolve({}) : notFound()));
    const presence = new ApiPresence(() => requireKubeVirtApi(client), { clock: clockReading(() => now), intervalMs: 30_000 });
    const missing = await presence.require().catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(VMConfigurationError);
    expect((missing as VMConfigurationError).reason).toBe('KubeVirtMissing');
    served = true;
    now = 29_999;
    await expect(presence.require()).rejects.toBe(missing);
    expect(gets).toHaveLength(1);
    now = 30_000;
    await presence.require();
    await presence.require();
    expect(gets).toHaveLength(3); // once present, every call asks (the caller calls it until its informer started)
  });

  it('keeps a pass for passMs when asked to (a check made on every reconciliation)', async () => {
    let now = 0;
    let served = true;
    const { client, gets } = fakeClient(() => (served ? Promise.resolve({}) : notFound()));
    const presence = new ApiPresence(() => requireKubeVirtApi(client), { clock: clockReading(() => now), passMs: 30_000 });
    await presence.require();
    now = 29_999;
    served = false;
    await presence.require();
    expect(gets).toHaveLength(1);
    now = 30_000;
    await expect(presence.require()).rejects.toBeInstanceOf(VMConfigurationError);
    expect(gets).toHaveLength(2);
  });

  it('does not keep an unreachable server as a missing API', async () => {
    let reachable = false;
    const { client } = fakeClient(() => (reachable ? Promise.resolve({}) : Promise.reject(new Error('ECONNREFUSED'))));
    const presence = new ApiPresence(() => requireKubeVirtApi(client));
    await expect(presence.require()).rejects.toBeInstanceOf(PlatformUnavailableError);
    reachable = true;
    await presence.require();
  });
});

describe('incomingNode', () => {
  // The order KubeVirt goes through: target pod created, scheduled (nodeName), Ready → handoff
  // (migrationState.targetNode) → completed (the target pod runs the VM) → the next migration.
  const vmi = (status: object) => ({ metadata: { uid: 'vmi-1' }, spec: { domain: { devices: {} } }, status: { phase: 'Running', nodeName: 'node-a', ...status } }) as unknown as V1VirtualMachineInstance;
  const pod = (job: string | undefined, nodeName: string | undefined, extra: { phase?: string; vmi?: string; deleting?: boolean; created?: string } = {}): LauncherPod => ({
    metadata: {
      labels: { [CREATED_BY_LABEL]: extra.vmi ?? 'vmi-1', ...(job ? { [MIGRATION_JOB_LABEL]: job } : {}) },
      ...(extra.created ? { creationTimestamp: extra.created } : {}),
      ...(extra.deleting ? { deletionTimestamp: '2026-12-08T00:00:00Z' } : {}),
    },
    spec: nodeName ? { nodeName } : {},
    status: { phase: extra.phase ?? 'Pending' },
  });
  const source = pod(undefined, 'node-a', { phase: 'Running' });

  it('names the target node as soon as the target pod is scheduled, before KubeVirt writes targetNode', () => {
    expect(incomingNode(vmi({}), [source, pod('m1', undefined)])).toBeUndefined(); // created, not yet scheduled
    expect(incomingNode(vmi({}), [source, pod('m1', 'node-b')])).toBe('node-b');
    expect(incomingNode(vmi({ migrationState: { migrationUid: 'm1', targetNode: 'node-b' } }), [source])).toBe('node-b');
  });

  it('names nothing for an ended migration, another VMI\'s pod, a pod going away, or a pod on the VMI\'s own node', () => {
    const done = vmi({ nodeName: 'node-b', migrationState: { migrationUid: 'm1', targetNode: 'node-b', completed: true } });
    expect(incomingNode(done, [pod('m1', 'node-b', { phase: 'Running' }), pod(undefined, 'node-a', { phase: 'Succeeded' })])).toBeUndefined();
    const failed = vmi({ migrationState: { migrationUid: 'm1', targetNode: 'node-b', completed: true, failed: true } });
    expect(incomingNode(failed, [source, pod('m1', 'node-b', { phase: 'Failed' })])).toBeUndefined();
    expect(incomingNode(failed, [source, pod('m1', 'node-b', { deleting: true })])).toBeUndefined();
    expect(incomingNode(vmi({}), [source, pod('m1', 'node-b', { vmi: 'vmi-2' })])).toBeUndefined();
    expect(incomingNode(vmi({}), [source, pod('m1', 'node-a')])).toBeUndefined();
  });

  it('names nothing for the pod of an earlier migration that shuts down on the node the VM just left (found on the real cluster: it kept the old node\'s images)', () => {
    // m1 moved the VM to node-b; m2 moved it back to node-a and has ended; m1's pod still runs on node-b for a while.
    const back = vmi({ nodeName: 'node-a', migrationState: { migrationUid: 'm2', targetNode: 'node-a', completed: true, endTimestamp: '2026-12-08T01:00:10Z' } });
    const m1 = pod('m1', 'node-b', { phase: 'Running', created: '2026-12-08T00:59:00Z' });
    const m2 = pod('m2', 'node-a', { phase: 'Running', created: '2026-12-08T01:00:00Z' });
    expect(incomingNode(back, [m1, m2])).toBeUndefined();
    // A third migration made in the second the second one ended counts.
    expect(incomingNode(back, [m1, m2, pod('m3', 'node-b', { created: '2026-12-08T01:00:10Z' })])).toBe('node-b');
  });

  it('names the next migration\'s target while the VMI still records the previous one as completed', () => {
    const migratedOnce = vmi({ nodeName: 'node-b', migrationState: { migrationUid: 'm1', targetNode: 'node-b', completed: true } });
    expect(incomingNode(migratedOnce, [pod('m1', 'node-b', { phase: 'Running' }), pod('m2', 'node-a')])).toBe('node-a');
  });
});
