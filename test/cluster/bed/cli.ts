// npm run -s cluster:up | cluster:down — the local kind cluster (see ../README.md).
//   up     build what is missing (cached), start the Docker engine, create the cluster; the last
//          line printed is the kubeconfig path: export KUBECONFIG=$(npm run -s cluster:up | tail -1)
//   down   delete the cluster and its network, stop the engine we started
//   build  build every binary and image, create nothing
import { ensureClusterBinaries } from './binaries.js';
import { clusterDown, clusterUp } from './cluster.js';
import { ensureEngine } from './docker.js';
import { buildNodeImage, buildNodejsImages } from './images.js';
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
  } else {
    console.error('usage: tsx test/cluster/bed/cli.ts up|down|build   (npm run -s cluster:up | cluster:down)');
    process.exitCode = 2;
  }
}

main(process.argv[2]).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
