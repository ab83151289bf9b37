// npm run -s cluster:up | cluster:down — the local kind cluster (see ../README.md).
//   up     build what is missing (cached), start the Docker engine, create the cluster; the last
//          line printed is the kubeconfig path: export KUBECONFIG=$(npm run -s cluster:up | tail -1)
//   down   delete the cluster and its network, stop the engine we started
//   build  build every binary and image, create nothing
//   operator-image   build the operator image (docker build of the repository's Dockerfile); prints it
//   tools  a directory with kubectl, kind and helm of these builds, for PATH; prints it
//   docker-host      the DOCKER_HOST of the cluster's engine
//   platform         up, then KubeVirt and CDI installed from their images in the engine (platform.ts)
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBinaries } from '../../controlplane/build.js';
import { ensureClusterBinaries } from './binaries.js';
import { clusterCache } from './cache.js';
import { clusterDown, clusterUp } from './cluster.js';
import { engineFor, ensureEngine } from './docker.js';
import { buildNodeImage, buildNodejsImages, buildOperatorImage } from './images.js';
import { ensurePlatform } from './platform.js';
import { clusterVersions } from './versions.js';

const log = (line: string): void => console.error(line);

async function main(command: string | undefined): Promise<void> {
  if (command === 'up') {
    const cluster = await clusterUp(log);
    console.log(cluster.kubeconfig);
  } else if (command === 'down') {
    await clusterDown(log);
  } else if (command === 'build') {
    const versions = clusterVersions();
    const binaries = await ensureClusterBinaries(versions, log);
    const engine = await ensureEngine(binaries.runcNosr, log);
    const node = await buildNodeImage(engine, versions, binaries, log);
    const nodejs = await buildNodejsImages(engine, versions, log);
    console.log([node.tag, nodejs.runtime, nodejs.build].join('\n'));
  } else if (command === 'operator-image') {
    const versions = clusterVersions();
    const binaries = await ensureClusterBinaries(versions, log);
    const engine = await ensureEngine(binaries.runcNosr, log);
    console.log((await buildOperatorImage(engine, versions, log)).image);
  } else if (command === 'tools') {
    const binaries = await ensureClusterBinaries(clusterVersions(), log);
    const dir = join(clusterCache(), 'tools');
    mkdirSync(dir, { recursive: true });
    const tools = { kubectl: join(binaries.kubernetes, 'kubectl'), kind: binaries.kind, helm: (await ensureBinaries({ log })).helm };
    for (const [name, target] of Object.entries(tools)) {
      rmSync(join(dir, name), { force: true });
      symlinkSync(target, join(dir, name));
    }
    console.log(dir);
  } else if (command === 'platform') {
    const cluster = await clusterUp(log);
    await ensurePlatform(cluster, log);
    console.log(cluster.kubeconfig);
  } else if (command === 'docker-host') {
    console.log(engineFor().host);
  } else {
    console.error('usage: tsx test/cluster/bed/cli.ts up|down|build|operator-image|tools|docker-host|platform   (npm run -s cluster:up | cluster:down)');
    process.exitCode = 2;
  }
}

main(process.argv[2]).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
