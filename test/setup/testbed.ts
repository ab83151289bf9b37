// vitest global setup for the hypervisor test bed (test/testbed): decides cheaply whether it can
// run here (root, Linux x86_64, Debian packages or apt-get), and starts ONE instance lazily, the
// first time a test file asks through useTestbed() (test/testbed/shared.ts): installing packages,
// building the guest and probing KVM happen then, not for runs that never need it. Test files
// run in worker processes and reach this process through a loopback HTTP broker whose URL (with
// a random secret) is passed by project.provide().
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { TestProject } from 'vitest/node';
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
  let shared: Promise<Testbed> | undefined;
  const secret = randomBytes(16).toString('hex');
  const server = createServer((request, response) => {
    if (request.method !== 'POST' || request.url !== `/${secret}/shared`) {
      response.writeHead(404).end();
      return;
    }
    shared ??= startTestbed({ id: `vitest-${process.pid}`, log });
    shared.then(
      (testbed) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(testbed.state())),
      (error: unknown) => {
        const unavailable = error instanceof TestbedUnavailable ? 'unavailable: ' : '';
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`${unavailable}${error instanceof Error ? error.message : String(error)}`);
      },
    );
  });
  await listen(server);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  project.provide('recontextTestbed', { brokerUrl: `http://127.0.0.1:${port}/${secret}/shared` });
  return async () => {
    server.close();
    const testbed = await shared?.catch(() => undefined);
    await testbed?.stop();
  };
}

function listen(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
}
