// What the real-cluster tests import: the run's local kind cluster (brought up once per `vitest
// run` by test/setup/cluster.ts on the first useCluster()), and the commands that talk to it.
// Tests share the cluster: isolate by namespace, and clean up what you create.
import { request } from 'node:http';
import { inject } from 'vitest';
import type { ClusterConnection } from '../setup/cluster.js';
import { skipReason } from '../support/skip.js';
import { runCommand } from '../controlplane/build.js';

export type { ClusterConnection } from '../setup/cluster.js';
/** Polls a probe until it returns a value: the integration tests' own helper. */
export { until as eventually } from '../integration/scenario.js';

export interface ClusterClient extends ClusterConnection {
  /** kubectl (built with the cluster) against it; rejects on a non-zero exit with stderr. */
  kubectl(args: readonly string[], input?: string): Promise<string>;
  /** docker against the cluster's engine. */
  docker(args: readonly string[], input?: string): Promise<string>;
  /** kind against the cluster's engine. */
  kind(args: readonly string[]): Promise<string>;
}

/**
 * Why the cluster tests must not run, or undefined. RECONTEXT_CLUSTER=off switches them off
 * locally; in CI (CI=true) nothing may skip, so there it is an error, not a reason to skip.
 */
export function clusterOffReason(): string | undefined {
  return skipReason('real-cluster tests (test/cluster)', inject('recontextCluster').off, 'unset it: the setup builds and starts the cluster itself (Docker, Go, mmdebstrap)');
}

let shared: Promise<ClusterClient> | undefined;

export function useCluster(): Promise<ClusterClient> {
  shared ??= (async () => {
    const { brokerUrl, off } = inject('recontextCluster');
    if (!brokerUrl) throw new Error(`no local cluster: ${off ?? 'global setup test/setup/cluster.ts did not run'}`);
    // node:http, not fetch: a cold first start (builds) takes longer than fetch's header timeout.
    const body = await new Promise<string>((resolve, reject) => {
      const call = request(brokerUrl, { method: 'POST' }, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => (response.statusCode === 200 ? resolve(text) : reject(new Error(`bringing up the local cluster failed: ${text}`))));
      });
      call.on('error', reject);
      call.end();
    });
    const connection = JSON.parse(body) as ClusterConnection;
    const env = { ...process.env, DOCKER_HOST: connection.dockerHost };
    return {
      ...connection,
      kubectl: (args, input) => runCommand(connection.kubectlPath, ['--kubeconfig', connection.kubeconfig, ...args], { input }),
      docker: (args, input) => runCommand('docker', args, { input, env }),
      kind: (args) => runCommand(connection.kindPath, args, { env }),
    };
  })();
  return shared;
}
