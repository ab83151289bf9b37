// vitest global setup of `npm run e2e:kubevirt`: the local kind cluster (test/cluster) with real
// KubeVirt and CDI installed from their images (test/cluster/bed/platform.ts), the operator image
// (the repository's Dockerfile) and the fat test guest as a kernelBoot image, both loaded into the
// nodes. Everything is built or found before the first test; what is missing fails the run with
// what to do (nothing here skips). The cluster stays up afterwards (cluster:down removes it).
import type { TestProject } from 'vitest/node';
import { ensureBinaries } from '../../controlplane/build.js';
import { clusterUp } from '../../cluster/bed/cluster.js';
import { buildGuestBootImage, buildOperatorImage } from '../../cluster/bed/images.js';
import { ensurePlatform, loadIntoNodes } from '../../cluster/bed/platform.js';
import { ensureGuest } from '../../testbed/guest.js';

export interface KubeVirtE2e {
  readonly kubeconfig: string;
  readonly kubectl: string;
  readonly helm: string;
  readonly operatorImage: { readonly repository: string; readonly tag: string };
  /** The fat test guest (Go agent, GlusterFS client stand-in) as a kernelBoot container image. */
  readonly guestImage: string;
  readonly guestCmdline: string;
  readonly kubevirtRevision: string;
  readonly cdiRevision: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    kubevirtE2e: KubeVirtE2e;
  }
}

const log = (line: string): void => console.log(line);

export default async function setup(project: TestProject): Promise<void> {
  const cluster = await clusterUp(log);
  const platform = await ensurePlatform(cluster, log);
  const operator = await buildOperatorImage(cluster.engine, cluster.versions, log);
  const guest = await ensureGuest({ variant: 'fat', log });
  const guestImage = await buildGuestBootImage(cluster.engine, guest, log);
  await loadIntoNodes(cluster, [operator.image, guestImage], log);
  const { helm } = await ensureBinaries({ log });
  project.provide('kubevirtE2e', {
    kubeconfig: cluster.kubeconfig,
    kubectl: cluster.kubectl,
    helm,
    operatorImage: { repository: operator.repository, tag: operator.tag },
    guestImage,
    guestCmdline: guest.cmdline,
    kubevirtRevision: platform.kubevirt.revision,
    cdiRevision: platform.cdi.revision,
  });
}
