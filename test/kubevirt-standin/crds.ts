// Installs the KubeVirt and CDI CRDs of test/fixtures/kubevirt (VirtualMachine, VMI, migration,
// KubeVirt, DataVolume) into a test API server with server-side apply and waits until each is
// Established.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KUBEVIRT_CRD_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'kubevirt');

interface Kubectl {
  kubectl(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

export function kubevirtCrdFiles(): string[] {
  return readdirSync(KUBEVIRT_CRD_DIR)
    .filter((name) => name.endsWith('.yaml'))
    .sort()
    .map((name) => join(KUBEVIRT_CRD_DIR, name));
}

const installed = new WeakMap<object, Promise<void>>();

/** Once per control plane object (several files share one plane; fault tests take their own). */
export function installKubeVirtCrds(plane: Kubectl): Promise<void> {
  const done = installed.get(plane);
  if (done) return done;
  const installing = (async () => {
    const files = kubevirtCrdFiles().flatMap((file) => ['-f', file]);
    const applied = await plane.kubectl(['apply', '--server-side', '--field-manager=kubevirt-standin', ...files]);
    if (applied.code !== 0) throw new Error(`installing the KubeVirt/CDI CRDs failed:\n${applied.stderr}${applied.stdout}`);
    const waited = await plane.kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...files]);
    if (waited.code !== 0) throw new Error(`KubeVirt/CDI CRDs did not become Established:\n${waited.stderr}${waited.stdout}`);
  })();
  installed.set(plane, installing);
  return installing;
}
