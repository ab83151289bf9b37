// The local cluster's versions: test/cluster/versions.env is their one definition (shell-sourceable,
// so test/e2e/kind/run.sh reads the same file).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLUSTER_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface ClusterVersions {
  readonly kind: string;
  readonly kubernetes: string;
  readonly etcd: string;
  readonly coredns: string;
  readonly pause: string;
  readonly localPathProvisioner: string;
  readonly criTools: string;
  readonly debianSuite: string;
  readonly nodejs: string;
  readonly kubevirt: string;
  readonly cdi: string;
}

const KEYS: Record<keyof ClusterVersions, string> = {
  kind: 'KIND_VERSION',
  kubernetes: 'KUBERNETES_VERSION',
  etcd: 'ETCD_VERSION',
  coredns: 'COREDNS_VERSION',
  pause: 'PAUSE_VERSION',
  localPathProvisioner: 'LOCAL_PATH_PROVISIONER_VERSION',
  criTools: 'CRI_TOOLS_VERSION',
  debianSuite: 'DEBIAN_SUITE',
  nodejs: 'NODEJS_VERSION',
  kubevirt: 'KUBEVIRT_VERSION',
  cdi: 'CDI_VERSION',
};

/** KEY=VALUE lines; comments and blank lines ignored. No shell expansion: values are literal. */
export function parseEnvFile(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Z][A-Z0-9_]*)=([^\s'"$`]+)$/.exec(line);
    if (!match?.[1] || !match[2]) throw new Error(`versions.env line ${index + 1}: expected KEY=VALUE without quotes or spaces, got ${JSON.stringify(raw)}`);
    values.set(match[1], match[2]);
  }
  return values;
}

export function clusterVersions(path = join(CLUSTER_DIR, 'versions.env')): ClusterVersions {
  const values = parseEnvFile(readFileSync(path, 'utf8'));
  const entries = Object.entries(KEYS).map(([field, key]) => {
    const value = values.get(key);
    if (value === undefined) throw new Error(`${path} does not set ${key}`);
    return [field, value] as const;
  });
  return Object.fromEntries(entries) as unknown as ClusterVersions;
}
