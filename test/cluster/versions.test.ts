// versions.env is the one definition of the local cluster's versions: the Go modules that build
// the parts must require exactly those versions, and the file must stay plain KEY=VALUE (it is
// sourced by test/e2e/kind/run.sh and parsed by bed/versions.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { goModRequires as requiredVersion } from '../controlplane/build.js';
import { GO_PROGRAMS } from './bed/binaries.js';
import { cniConfig, kindConfig, SHARED_VOLUMES_PATH } from './bed/cluster.js';
import { CLUSTER_DIR, clusterVersions, parseEnvFile } from './bed/versions.js';

const goMod = (module: string): string => readFileSync(join(CLUSTER_DIR, 'bed', 'go', module, 'go.mod'), 'utf8');

describe('test/cluster/versions.env', () => {
  const versions = clusterVersions();

  it('names the versions the Go modules build', () => {
    expect(requiredVersion(goMod('kubernetes'), 'k8s.io/kubernetes')).toBe(versions.kubernetes);
    for (const program of GO_PROGRAMS.filter((p) => p.upstream)) {
      expect(requiredVersion(goMod(program.module), program.upstream!.path), program.module).toBe(versions[program.upstream!.version]);
    }
  });

  it('is plain KEY=VALUE: quotes, spaces and shell expansions are refused with the line number', () => {
    expect(parseEnvFile('# c\n\nA=1\nB_2=v1.2.3\n')).toEqual(new Map([['A', '1'], ['B_2', 'v1.2.3']]));
    expect(() => parseEnvFile('A=1\nB="x"\n')).toThrow(/line 2/);
    expect(() => parseEnvFile('A=$(id)\n')).toThrow(/line 1/);
    expect(() => parseEnvFile('A=a b\n')).toThrow(/line 1/);
  });
});

describe('the kind cluster configuration', () => {
  it('has one control plane and a worker per place, all on the given image and with the shared volumes directory, without kind\'s CNI', () => {
    type Node = { role: string; image: string; labels?: Record<string, string>; extraMounts: { hostPath: string; containerPath: string }[] };
    const config = JSON.parse(kindConfig('img:1', '/cache/shared')) as { networking: { disableDefaultCNI: boolean }; nodes: Node[] };
    expect(config.networking.disableDefaultCNI).toBe(true);
    expect(config.nodes.map((node) => node.role)).toEqual(['control-plane', 'worker', 'worker']);
    expect(new Set(config.nodes.map((node) => node.image))).toEqual(new Set(['img:1']));
    expect(config.nodes.map((node) => node.extraMounts)).toEqual(config.nodes.map(() => [{ hostPath: '/cache/shared', containerPath: SHARED_VOLUMES_PATH }]));
    expect(config.nodes[2]?.labels).toEqual({ 'topology.kubernetes.io/zone': 'zone-b', 'topology.kubernetes.io/region': 'us-east' });
  });

  it('gives each node a ptp network on its own podCIDR', () => {
    const config = JSON.parse(cniConfig('10.244.2.0/24')) as { plugins: { type: string; ipam?: { ranges: { subnet: string }[][] } }[] };
    expect(config.plugins.map((plugin) => plugin.type)).toEqual(['ptp', 'portmap']);
    expect(config.plugins[0]?.ipam?.ranges).toEqual([[{ subnet: '10.244.2.0/24' }]]);
  });
});
