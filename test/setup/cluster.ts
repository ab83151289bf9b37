// vitest global setup for the local kind cluster (test/cluster): nothing happens until a test file
// asks through useCluster() (test/cluster/shared.ts); the first ask builds what is missing and
// brings the cluster up (minutes cold, ~1 min warm). A cluster this run created is deleted at the
// end (and the Docker engine stopped); one that was up before the run is left up
// (RECONTEXT_KEEP_CLUSTER=1 keeps a created one too).
import type { TestProject } from 'vitest/node';
import { startLazyBroker } from './broker.js';
import { clusterDown, clusterIsUp, clusterUp, type LocalCluster } from '../cluster/bed/cluster.js';

export interface ClusterConnection {
  readonly name: string;
  readonly kubeconfig: string;
  readonly kubectlPath: string;
  readonly kindPath: string;
  /** DOCKER_HOST of the cluster's engine. */
  readonly dockerHost: string;
  readonly nodeImage: string;
  /** The images preloaded into every node's containerd. */
  readonly preloaded: readonly string[];
  readonly kubernetesVersion: string;
}

export interface ProvidedCluster {
  /** Set when the cluster is switched off for this run (RECONTEXT_CLUSTER=off). */
  readonly off?: string;
  /** POST here for the ClusterConnection (brought up on first use). */
  readonly brokerUrl?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    recontextCluster: ProvidedCluster;
  }
}

const log = (line: string): void => console.log(line);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env['RECONTEXT_CLUSTER'] === 'off') {
    project.provide('recontextCluster', { off: 'RECONTEXT_CLUSTER=off' });
    return async () => undefined;
  }
  const broker = await startLazyBroker<{ cluster: LocalCluster; createdHere: boolean }>({
    start: async () => {
      const wasUp = await clusterIsUp();
      return { cluster: await clusterUp(log, { plain: true }), createdHere: !wasUp };
    },
    describe: ({ cluster }): ClusterConnection => ({
      name: cluster.name,
      kubeconfig: cluster.kubeconfig,
      kubectlPath: cluster.kubectl,
      kindPath: cluster.kind,
      dockerHost: cluster.engine.host,
      nodeImage: cluster.nodeImage.tag,
      preloaded: cluster.nodeImage.preloaded,
      kubernetesVersion: cluster.versions.kubernetes,
    }),
    stop: async ({ createdHere }) => {
      if (createdHere && process.env['RECONTEXT_KEEP_CLUSTER'] !== '1') await clusterDown(log);
    },
  });
  project.provide('recontextCluster', { brokerUrl: broker.url });
  return () => broker.close();
}
