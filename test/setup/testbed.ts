// vitest global setup for the hypervisor test bed (test/testbed): decides cheaply whether it can
// run here (root, Linux x86_64, Debian packages or apt-get), and starts ONE instance lazily, the
// first time a test file asks through useTestbed() (test/testbed/shared.ts): installing packages,
// building the guest and probing KVM happen then, not for runs that never need it. Test files
// run in worker processes and reach this process through a loopback HTTP broker whose URL (with
// a random secret) is passed by project.provide().
import type { TestProject } from 'vitest/node';
import { startLazyBroker } from './broker.js';
import { startTestbed, testbedPrecondition, TestbedUnavailable, type Testbed } from '../testbed/index.js';

export interface ProvidedTestbed {
  /** Set when the test bed cannot run here; tests that need it skip with this reason. */
  readonly unavailable?: string;
  /** POST here for the shared test bed's TestbedState (started on first use). */
  readonly brokerUrl?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    recontextTestbed: ProvidedTestbed;
  }
}

const log = (line: string): void => console.log(line);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const reason = testbedPrecondition();
  if (reason) {
    console.warn(`test setup: libvirt/QEMU test bed unavailable (${reason}); tests that need it will be skipped`);
    project.provide('recontextTestbed', { unavailable: reason });
    return async () => undefined;
  }
  const broker = await startLazyBroker<Testbed>({
    start: () => startTestbed({ id: `vitest-${process.pid}`, log }),
    describe: (testbed) => testbed.state(),
    stop: (testbed) => testbed.stop(),
    errorText: (error) => `${error instanceof TestbedUnavailable ? 'unavailable: ' : ''}${error instanceof Error ? error.message : String(error)}`,
  });
  project.provide('recontextTestbed', { brokerUrl: broker.url });
  return () => broker.close();
}
