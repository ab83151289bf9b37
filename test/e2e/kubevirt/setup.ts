// vitest global setup of `npm run e2e:kubevirt`: the local kind cluster (test/cluster) with real
// KubeVirt and CDI installed from their images (test/cluster/bed/platform.ts), the operator image
// (the repository's Dockerfile) and the fat test guest as a containerDisk, both loaded into the
// nodes. Everything is built or found before the first test; what is missing fails the run with
// what to do (nothing here skips). The cluster stays up afterwards (cluster:down removes it).
import type { TestProject } from 'vitest/node';
import { ensureBinaries } from '../../controlplane/build.js';
import { clusterUp } from '../../cluster/bed/cluster.js';
import { buildGuestDiskImage, buildOperatorImage } from '../../cluster/bed/images.js';
import { ensurePlatform, loadIntoNodes } from '../../cluster/bed/platform.js';
import { ffsRun, GLUSTER_CLIENT } from '../../testbed/fat.js';
import { ensureGuest } from '../../testbed/guest.js';

export interface KubeVirtE2e {
  readonly kubeconfig: string;
  readonly kubectl: string;
  readonly helm: string;
  readonly operatorImage: { readonly repository: string; readonly tag: string };
  /**
   * The fat test guest as a containerDisk image: the Go agent on the context drives (tracing its
   * uevents and mounts on the console) and the GlusterFS client stand-in.
   */
  readonly guestImage: string;
  readonly kubevirtRevision: string;
  readonly cdiRevision: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    kubevirtE2e: KubeVirtE2e;
  }
}

const log = (line: string): void => console.log(line);

/** Everything the e2e (and bench:kubevirt) needs, built or found; fails saying what is missing. */
export async function prepareKubeVirtE2e(progress: (line: string) => void): Promise<KubeVirtE2e> {
  const cluster = await clusterUp(progress);
  const platform = await ensurePlatform(cluster, progress);
  const operator = await buildOperatorImage(cluster.engine, cluster.versions, progress);
  const guest = await ensureGuest({ variant: 'fat', log: progress });
  const cmdline = `${guest.cmdline} ${ffsRun({ trace: true })} ctx.run=${GLUSTER_CLIENT}`;
  const guestImage = await buildGuestDiskImage(cluster.engine, cluster.versions, guest, cmdline, progress);
  await loadIntoNodes(cluster, [operator.image, guestImage], progress);
  const { helm } = await ensureBinaries({ log: progress });
  return {
    kubeconfig: cluster.kubeconfig,
    kubectl: cluster.kubectl,
    helm,
    operatorImage: { repository: operator.repository, tag: operator.tag },
    guestImage,
    kubevirtRevision: platform.kubevirt.revision,
    cdiRevision: platform.cdi.revision,
  };
}

export default async function setup(project: TestProject): Promise<void> {
  project.provide('kubevirtE2e', await prepareKubeVirtE2e(log));
}
