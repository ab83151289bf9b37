import { describe, expect, it } from 'vitest';
import { createLogger } from '../runtime/log.js';
import { OperatorMetrics } from '../runtime/metrics.js';
import { ApiError, type KubeClient } from '../kube/client.js';
import { VMConfigurationError, type Driver } from './driver.js';
import { ImagesOnlyDriver } from './none.js';

describe('ImagesOnlyDriver', () => {
  const driver = (client: KubeClient) => new ImagesOnlyDriver({ client, logger: createLogger({ write: () => {} }), metrics: new OperatorMetrics({ defaultMetrics: false }) });

  it('without the KubeVirt API: KubeVirtMissing (a condition that heals), and no informer started', async () => {
    const asked: string[] = [];
    const client = {
      get: async (path: string) => {
        asked.push(path);
        throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      },
    } as unknown as KubeClient;
    const noKubeVirt = driver(client);
    const error = await noKubeVirt.observe({ namespace: 'ns', vmContext: 'vm', kubevirt: { name: 'vm' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VMConfigurationError);
    expect((error as VMConfigurationError).reason).toBe('KubeVirtMissing');
    expect(asked).toEqual(['/apis/kubevirt.io/v1']); // discovery only: no list of VMIs was tried
    await noKubeVirt.close();
  });

  it('a libvirt target needs no cluster lookups; nothing to release, so no finalizer', async () => {
    const client = { get: async () => Promise.reject(new Error('not expected')) } as unknown as KubeClient;
    const libvirtOnly = driver(client);
    expect(await libvirtOnly.observe({ namespace: 'ns', vmContext: 'vm', libvirt: { domain: 'vm' } })).toEqual({ running: true });
    expect((libvirtOnly as Driver).release).toBeUndefined();
    await libvirtOnly.close();
  });
});
