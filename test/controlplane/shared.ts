// What integration tests import. The control plane is started once per `vitest run` (by the
// global setup in test/setup/controlplane.ts, on the first useControlPlane() call) and shared by
// all test files: isolate by namespace, and never restart or pause it. Fault tests that need
// to restart/pause/compact take their own instance with startExclusiveControlPlane().
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { skipReason } from '../support/skip.js';
import { runKubectl, startControlPlane, type ControlPlane, type ControlPlaneConnection, type ControlPlaneOptions, type KubectlResult } from './index.js';

export type { ControlPlane, ControlPlaneConnection, KubectlResult } from './index.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CRD_DIR = join(REPO, 'config', 'crd');

export interface SharedControlPlane extends ControlPlaneConnection {
  /** Runs the built kubectl (admin kubeconfig unless given). */
  kubectl(args: readonly string[], options?: { input?: string; kubeconfig?: string }): Promise<KubectlResult>;
}

/**
 * Why tests needing a control plane must skip here, or undefined when they can run. Prints the
 * reason (once per test file) so a skip is never silent. Use: describe.skipIf(controlPlaneSkipReason()).
 */
export function controlPlaneSkipReason(): string | undefined {
  return skipReason('tests needing the Kubernetes control plane', provided().unavailable, 'the test setup builds kube-apiserver, etcd, kubectl and helm with Go ≥ 1.24 from the module proxy: install Go');
}

let shared: Promise<SharedControlPlane> | undefined;

/** The run's shared control plane (started on first use, stopped by the global teardown). */
export function useControlPlane(): Promise<SharedControlPlane> {
  shared ??= (async () => {
    const { brokerUrl, unavailable } = provided();
    if (!brokerUrl) throw new Error(`no control plane: ${unavailable ?? 'global setup test/setup/controlplane.ts did not run'}`);
    const response = await fetch(brokerUrl, { method: 'POST' });
    const body = await response.text();
    if (!response.ok) throw new Error(`starting the shared control plane failed: ${body}`);
    const connection = JSON.parse(body) as ControlPlaneConnection;
    return { ...connection, kubectl: (args, options = {}) => runKubectl(connection.kubectlPath, options.kubeconfig ?? connection.kubeconfigPath, args, options.input) };
  })();
  return shared;
}

/** A private control plane for tests that restart, pause or compact it; stop() it in afterAll. */
export function startExclusiveControlPlane(options: Omit<ControlPlaneOptions, 'binaries'> = {}): Promise<ControlPlane> {
  const { binaries, unavailable } = provided();
  if (!binaries) throw new Error(`no control plane binaries: ${unavailable ?? 'global setup did not run'}`);
  return startControlPlane({ ...options, binaries });
}

/**
 * The helm binary the global setup built with the control plane (test/controlplane/helm/, cached
 * beside it by version), for the chart tests. Skip with controlPlaneSkipReason() first.
 */
export function helmPath(): string {
  const { binaries, unavailable } = provided();
  if (!binaries) throw new Error(`no helm binary: ${unavailable ?? 'global setup did not run'}`);
  return binaries.helm;
}

/**
 * Runs the built helm with its own state (repository cache, config) in a throwaway directory, not
 * in ~, and no default kubeconfig: only commands given --kubeconfig talk to a cluster. A non-zero
 * exit is a result, not an exception.
 */
export async function runHelm(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<KubectlResult> {
  const home = mkdtempSync(join(tmpdir(), 'recontext-helm-'));
  try {
    return await new Promise<KubectlResult>((resolve, reject) => {
      execFile(
        helmPath(),
        args,
        {
          maxBuffer: 64 * 1024 * 1024,
          timeout: options.timeoutMs ?? 120_000,
          env: { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data'), KUBECONFIG: join(home, 'no-kubeconfig') },
        },
        (error, stdout, stderr) => {
          if (error && typeof error.code !== 'number') reject(error);
          else resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
        },
      );
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

let crdsInstalled: Promise<void> | undefined;

/**
 * Installs config/crd/*.yaml with server-side apply and waits until each is Established.
 * Idempotent; safe from several test files at once.
 */
export function installCrds(plane: SharedControlPlane): Promise<void> {
  crdsInstalled ??= (async () => {
    const files = crdFiles();
    const applied = await plane.kubectl(['apply', '--server-side', '--field-manager=recontext-tests', ...files.flatMap((f) => ['-f', f])]);
    if (applied.code !== 0) throw new Error(`installing CRDs failed:\n${applied.stderr}${applied.stdout}`);
    const waited = await plane.kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...files.flatMap((f) => ['-f', f])]);
    if (waited.code !== 0) throw new Error(`CRDs did not become Established:\n${waited.stderr}${waited.stdout}`);
  })();
  return crdsInstalled;
}

export function crdFiles(): string[] {
  return readdirSync(CRD_DIR)
    .filter((name) => name.endsWith('.yaml'))
    .sort()
    .map((name) => join(CRD_DIR, name));
}

function provided(): { unavailable?: string; brokerUrl?: string; binaries?: ControlPlane['binaries'] } {
  return inject('recontextControlPlane');
}
