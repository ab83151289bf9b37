// The local kind cluster itself (test/cluster/README.md), as `npm run cluster:up` leaves it: three
// Ready nodes with the zone labels, every kube-system pod running, nothing pulled (each node's
// containerd holds exactly the images built here), and a pod network that spans the nodes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKER_PLACES } from './bed/cluster.js';
import { clusterOffReason, eventually, useCluster, type ClusterClient } from './shared.js';

const NS = 'cluster-smoke';

interface NodeList {
  items: { metadata: { name: string; labels: Record<string, string> }; status: { conditions: { type: string; status: string }[]; nodeInfo: { kubeletVersion: string } } }[];
}
interface PodList {
  items: { metadata: { name: string }; spec: { nodeName?: string }; status: { phase: string; podIP?: string } }[];
}

describe.skipIf(clusterOffReason())('local kind cluster (real kubelets, containerd, kube-proxy)', () => {
  let cluster: ClusterClient;
  beforeAll(async () => {
    cluster = await useCluster();
    await cluster.kubectl(['create', 'namespace', NS]);
  }, 3_600_000);
  afterAll(async () => {
    await cluster?.kubectl(['delete', 'namespace', NS, '--wait=false']).catch(() => undefined);
  });

  /** A pod that runs `command` once in a zone (busybox from the preloaded helper image), with the claim at /data if given. */
  const pod = (name: string, zone: string, command: string, claim?: string): string => {
    const helper = cluster.preloaded.find((image) => image.includes('local-path-helper'))!;
    return JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: NS, labels: { app: name } },
      spec: {
        restartPolicy: 'Never',
        nodeSelector: { 'topology.kubernetes.io/zone': zone },
        containers: [{ name, image: helper, imagePullPolicy: 'Never', command: ['sh', '-c', command], ...(claim ? { volumeMounts: [{ name: 'data', mountPath: '/data' }] } : {}) }],
        ...(claim ? { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }] } : {}),
      },
    });
  };

  it('has a control plane and two Ready workers in two zones and regions, all at the version built here', async () => {
    const nodes = JSON.parse(await cluster.kubectl(['get', 'nodes', '-o', 'json'])) as NodeList;
    expect(nodes.items).toHaveLength(3);
    for (const node of nodes.items) {
      expect(node.status.conditions.find((c) => c.type === 'Ready')?.status, node.metadata.name).toBe('True');
      expect(node.status.nodeInfo.kubeletVersion).toBe(cluster.kubernetesVersion);
    }
    const places = nodes.items
      .filter((node) => !('node-role.kubernetes.io/control-plane' in node.metadata.labels))
      .map((node) => ({ zone: node.metadata.labels['topology.kubernetes.io/zone'], region: node.metadata.labels['topology.kubernetes.io/region'] }))
      .sort((a, b) => String(a.zone).localeCompare(String(b.zone)));
    expect(places).toEqual(WORKER_PLACES.map((place) => ({ ...place })));
  });

  it('runs every kube-system pod', async () => {
    const pods = JSON.parse(await cluster.kubectl(['get', 'pods', '-n', 'kube-system', '-o', 'json'])) as PodList;
    expect(pods.items.length).toBeGreaterThanOrEqual(7); // etcd, apiserver, controller manager, scheduler, 2 CoreDNS, kube-proxy per node
    expect(pods.items.filter((pod) => pod.status.phase !== 'Running').map((pod) => pod.metadata.name)).toEqual([]);
  });

  it('pulled nothing: every node holds exactly the images built here (plus images the tests loaded)', async () => {
    const nodeNames = (await cluster.kubectl(['get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}'])).split(' ');
    for (const node of nodeNames) {
      const listed = JSON.parse(await cluster.docker(['exec', node, 'crictl', 'images', '-o', 'json'])) as { images: { repoTags: string[] }[] };
      const tags = listed.images.flatMap((image) => image.repoTags);
      for (const image of cluster.preloaded) expect(tags, node).toContain(image);
      // Anything else is an image a test put there with `kind load` (the operator's, built here too).
      expect(tags.filter((tag) => !cluster.preloaded.includes(tag) && !tag.startsWith('recontext.local/')), node).toEqual([]);
    }
  });

  it('routes pod traffic across nodes and resolves Services through CoreDNS', async () => {
    // A server pod in zone-a, a client pod in zone-b: the client fetches from the server's pod IP and
    // through a Service name (CoreDNS + kube-proxy).
    await cluster.kubectl(['apply', '-f', '-'], pod('server', 'zone-a', 'mkdir -p /www && echo served-from-zone-a > /www/index.html && httpd -f -p 8080 -h /www'));
    await cluster.kubectl(['expose', 'pod', 'server', '-n', NS, '--port', '80', '--target-port', '8080']);
    await cluster.kubectl(['wait', '-n', NS, '--for=condition=Ready', 'pod/server', '--timeout=120s']);
    const serverIp = (await cluster.kubectl(['get', 'pod', 'server', '-n', NS, '-o', 'jsonpath={.status.podIP}'])).trim();
    await cluster.kubectl(['apply', '-f', '-'], pod('client', 'zone-b', `wget -q -O- http://${serverIp}:8080/ && wget -q -O- http://server.${NS}.svc.cluster.local/`));
    const phase = await eventually('the client pod to finish', async () => {
      const current = (await cluster.kubectl(['get', 'pod', 'client', '-n', NS, '-o', 'jsonpath={.status.phase}'])).trim();
      return current === 'Succeeded' || current === 'Failed' ? current : undefined;
    }, 120_000);
    const logs = await cluster.kubectl(['logs', 'client', '-n', NS]);
    expect(phase, logs).toBe('Succeeded');
    expect(logs.trim().split('\n')).toEqual(['served-from-zone-a', 'served-from-zone-a']);
  });

  it('serves ReadWriteMany volumes (StorageClass shared): a pod in each zone uses one claim at once', async () => {
    // What KubeVirt needs of a VM's volumes to live-migrate it: the same volume on both nodes.
    await cluster.kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'both-zones', namespace: NS },
      spec: { storageClassName: 'shared', accessModes: ['ReadWriteMany'], resources: { requests: { storage: '8Mi' } } },
    }));
    // The writer stays running while the reader in the other zone starts: both use the claim at once.
    await cluster.kubectl(['apply', '-f', '-'], pod('writer', 'zone-a', 'echo written-in-zone-a > /data/note && sleep 600', 'both-zones'));
    await cluster.kubectl(['wait', '-n', NS, '--for=condition=Ready', 'pod/writer', '--timeout=120s']);
    await cluster.kubectl(['apply', '-f', '-'], pod('reader', 'zone-b', 'cat /data/note', 'both-zones'));
    const phase = await eventually('the reader pod to finish', async () => {
      const current = (await cluster.kubectl(['get', 'pod', 'reader', '-n', NS, '-o', 'jsonpath={.status.phase}'])).trim();
      return current === 'Succeeded' || current === 'Failed' ? current : undefined;
    }, 120_000);
    const logs = await cluster.kubectl(['logs', 'reader', '-n', NS]);
    expect(phase, logs).toBe('Succeeded');
    expect(logs.trim()).toBe('written-in-zone-a');
    const nodes = (await cluster.kubectl(['get', 'pods', '-n', NS, 'writer', 'reader', '-o', 'jsonpath={.items[*].spec.nodeName}'])).trim().split(' ');
    expect(new Set(nodes).size).toBe(2);
  });
});
