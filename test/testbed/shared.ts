// What tests import. The test bed (two libvirt hosts + the guest image) is started once per
// `vitest run`, by the global setup in test/setup/testbed.ts, on the first useTestbed() call,
// and stopped by its teardown. Tests share it: give domains unique names, destroy them in
// afterAll, and boot one guest at a time (TCG is CPU-hungry on 2 cores).
import { inject } from 'vitest';
import { connectTestbed, type Testbed, type TestbedState } from './index.js';
import { skipReason } from '../support/skip.js';

export type { Testbed, TestbedHost, ConsoleMatch, DomainOptions } from './index.js';

/**
 * Why tests needing the test bed must skip here, or undefined when they can run. Prints the
 * reason (once per test file) so a skip is never silent: describe.skipIf(testbedSkipReason()).
 */
export function testbedSkipReason(): string | undefined {
  return skipReason('tests needing the libvirt/QEMU test bed', inject('recontextTestbed').unavailable, 'run as root on Linux with unshare; the test setup installs QEMU and libvirt with apt-get');
}

let shared: Promise<Testbed> | undefined;

/** The run's shared test bed (started on first use; stop() is a no-op: the run's teardown stops it). */
export function useTestbed(): Promise<Testbed> {
  shared ??= (async () => {
    const { brokerUrl, unavailable } = inject('recontextTestbed');
    if (!brokerUrl) throw new Error(`no test bed: ${unavailable ?? 'global setup test/setup/testbed.ts did not run'}`);
    const response = await fetch(brokerUrl, { method: 'POST' });
    const body = await response.text();
    if (!response.ok) throw new Error(`starting the shared test bed failed: ${body}`);
    const testbed = connectTestbed(JSON.parse(body) as TestbedState);
    return { ...testbed, stop: async () => undefined };
  })();
  return shared;
}
