// vitest global setup for the test control plane: builds the binaries when missing (with
// progress; a fresh machine needs nothing else), then starts ONE shared etcd + kube-apiserver
// lazily, the first time a test file asks for it through useControlPlane() (test/controlplane/
// shared.ts). Test files run in worker processes, so they reach this process through a tiny
// loopback HTTP broker whose URL (with a random secret) is passed by project.provide().
import type { TestProject } from 'vitest/node';
import { startLazyBroker } from './broker.js';
import {
  ControlPlaneUnavailable,
  ensureBinaries,
  startControlPlane,
  type ControlPlane,
  type ControlPlaneBinaries,
  type ControlPlaneConnection,
} from '../controlplane/index.js';

export interface ProvidedControlPlane {
  /** Set when the control plane cannot run here; tests that need it skip with this reason. */
  readonly unavailable?: string;
  readonly binaries?: ControlPlaneBinaries;
  /** POST here for the shared control plane's ControlPlaneConnection (started on first use). */
  readonly brokerUrl?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    recontextControlPlane: ProvidedControlPlane;
  }
}

const log = (line: string): void => console.log(line);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env['RECONTEXT_CONTROLPLANE'] === 'off') {
    const reason = 'RECONTEXT_CONTROLPLANE=off';
    console.warn(`test setup: control plane disabled (${reason}); tests that need it will be skipped`);
    project.provide('recontextControlPlane', { unavailable: reason });
    return async () => undefined;
  }
  let binaries: ControlPlaneBinaries;
  try {
    binaries = await ensureBinaries({ log });
  } catch (error: unknown) {
    // No Go toolchain is an environment fact: skip out loud. A failing build is a bug: fail.
    if (!(error instanceof ControlPlaneUnavailable)) throw error;
    console.warn(`test setup: control plane unavailable: ${error.message}; tests that need it will be skipped`);
    project.provide('recontextControlPlane', { unavailable: error.message });
    return async () => undefined;
  }

  const broker = await startLazyBroker<ControlPlane>({
    start: () => startControlPlane({ binaries, log }),
    describe: (plane): ControlPlaneConnection => ({
      server: plane.server,
      kubeconfigPath: plane.kubeconfigPath,
      restrictedKubeconfigPath: plane.restrictedKubeconfigPath,
      adminToken: plane.adminToken,
      restrictedToken: plane.restrictedToken,
      restrictedUser: plane.restrictedUser,
      caCert: plane.caCert,
      etcdUrl: plane.etcdUrl,
      kubectlPath: plane.kubectlPath,
      dir: plane.dir,
    }),
    stop: (plane) => plane.stop(),
  });
  project.provide('recontextControlPlane', { binaries, brokerUrl: broker.url });
  return () => broker.close();
}
