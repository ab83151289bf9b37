// The GlusterFS example installed into a namespace of a real API server, with what KubeVirt
// would provide (a VMI running on a labelled node), for the operator integration tests.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { VMContext } from '../../src/crds/index.js';
import type { KubeClient } from '../../src/kube/client.js';
import type { KubectlResult } from '../controlplane/shared.js';

export const REPO = join(import.meta.dirname, '..', '..');
export const SECRET_VALUE = 'demo-placeholder-not-a-real-key';
export const ZONE_A = { 'topology.kubernetes.io/zone': 'zone-a', 'topology.kubernetes.io/region': 'eu-north' };
export const ZONE_B = { 'topology.kubernetes.io/zone': 'zone-b', 'topology.kubernetes.io/region': 'us-east' };

export type Kubectl = (args: readonly string[], options?: { input?: string; kubeconfig?: string }) => Promise<KubectlResult>;

/** kubectl that throws on a non-zero exit. */
export function strict(kubectl: Kubectl): (args: string[], input?: string) => Promise<string> {
  return async (args, input) => {
    const result = await kubectl(args, input === undefined ? {} : { input });
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  };
}

export function nodeYaml(name: string, labels: Record<string, string>): string {
  return `apiVersion: v1\nkind: Node\nmetadata:\n  name: ${name}\n  labels:\n${Object.entries(labels).map(([k, v]) => `    ${k}: ${v}`).join('\n')}\n`;
}

/** CRDs (ours and the VMI stand-in), nodes, a running VMI and the examples in `namespace`. */
export async function installScenario(kubectl: Kubectl, namespace: string, options: { installCrds: boolean; nodePrefix: string }): Promise<void> {
  const run = strict(kubectl);
  if (options.installCrds) {
    const crds = readdirSync(join(REPO, 'config', 'crd')).map((f) => join(REPO, 'config', 'crd', f));
    await run(['apply', '--server-side', ...crds.flatMap((f) => ['-f', f])]);
  }
  await run(['apply', '--server-side', '-f', join(REPO, 'test', 'fixtures', 'kubevirt', 'vmi-crd.yaml')]);
  await run(['wait', '--for=condition=Established', '--timeout=60s', 'crd/virtualmachineinstances.kubevirt.io', 'crd/vmcontexts.recontext.dev', 'crd/contextlayers.recontext.dev']);
  await run(['create', 'namespace', namespace]);
  await run(['apply', '-f', '-'], nodeYaml(`${options.nodePrefix}-a`, ZONE_A));
  await run(['apply', '-f', '-'], nodeYaml(`${options.nodePrefix}-b`, ZONE_B));
  await run(['apply', '-n', namespace, '-f', '-'], 'apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata:\n  name: gluster-client-1\nspec: {}\n');
  await run(['patch', '-n', namespace, 'vmi', 'gluster-client-1', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { phase: 'Running', nodeName: `${options.nodePrefix}-a` } })]);
  await run(['apply', '--server-side', '-n', namespace, '-f', join(REPO, 'examples', 'gluster')]);
}

export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error: unknown) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function getVMContext(client: KubeClient, namespace: string, name = 'gluster-client-1'): Promise<VMContext> {
  return client.get<VMContext>(`/apis/recontext.dev/v1alpha1/namespaces/${namespace}/vmcontexts/${name}`);
}

export function digestOf(vm: VMContext, layer: string): string | undefined {
  return vm.status?.layers?.find((l) => l.name === layer)?.digest;
}

export function isReady(vm: VMContext): boolean {
  return vm.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true && vm.status.observedGeneration === vm.metadata.generation;
}
