// CDI's importer and virt-handler for every VM of a namespace, played at the API only (the way
// test/integration/kubevirt-driver.test.ts plays them for one VM): each DataVolume's URL is
// downloaded, through `route` (what a Service in front of the leading replica does), and checked
// to be the image it names; the DataVolume is then marked Succeeded, and each VM's context volumes
// whose DataVolume has imported are reported Ready in its VMI's status.
import type { V1beta1DataVolume } from '@kubevirt-ui-ext/kubevirt-api/containerized-data-importer';
import type { V1VirtualMachine, V1VirtualMachineInstance } from '@kubevirt-ui-ext/kubevirt-api/kubevirt';
import type { KubeClient } from '../../src/kube/client.js';

export interface Import {
  readonly dataVolume: string;
  /** When the DataVolume was created (the API server's timestamp, whole seconds). */
  readonly createdAt: number;
  /** Which image server answered (the origin `route` chose). */
  readonly servedBy: string;
  readonly at: number;
}

export interface KubeVirtPlatform {
  readonly imports: Import[];
  /** Answers other than 200 (e.g. 404 while a new leader has not rebuilt an image yet), by status. */
  readonly refusals: Map<number, number>;
  /** Pause or resume importing (volume status is still reported for what has imported). */
  importing: boolean;
  stop(): void;
}

export function playKubeVirt(client: KubeClient, namespace: string, route: (url: URL) => URL | undefined, intervalMs = 200): KubeVirtPlatform {
  const abort = new AbortController();
  const dvPath = `/apis/cdi.kubevirt.io/v1beta1/namespaces/${namespace}/datavolumes`;
  const platform: KubeVirtPlatform = { imports: [], refusals: new Map(), importing: true, stop: () => abort.abort() };

  async function importOne(dv: V1beta1DataVolume): Promise<void> {
    const url = route(new URL(dv.spec.source?.http?.url ?? ''));
    if (!url) return;
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const body = Buffer.from(await response.arrayBuffer());
    if (response.status !== 200) {
      platform.refusals.set(response.status, (platform.refusals.get(response.status) ?? 0) + 1);
      return;
    }
    const hex = /\/v1\/images\/([0-9a-f]{64})\.iso/.exec(url.pathname)?.[1] ?? '';
    // The image's manifest names its digest: the server sent the image the URL asks for.
    if (!body.includes(`"digest": "sha256:${hex}"`)) throw new Error(`${dv.metadata?.name}: the image served is not sha256:${hex}`);
    await client.mergePatch(`${dvPath}/${dv.metadata?.name}/status`, { status: { phase: 'Succeeded', progress: '100.0%' } });
    platform.imports.push({ dataVolume: dv.metadata?.name ?? '', createdAt: Date.parse(dv.metadata?.creationTimestamp ?? ''), servedBy: url.origin, at: Date.now() });
  }

  async function round(): Promise<void> {
    const dataVolumes = (await client.list<V1beta1DataVolume>(dvPath)).items;
    if (platform.importing) await Promise.all(dataVolumes.filter((d) => d.status?.phase !== 'Succeeded').map((d) => importOne(d).catch(() => undefined)));
    const imported = new Set((await client.list<V1beta1DataVolume>(dvPath)).items.filter((d) => d.status?.phase === 'Succeeded').map((d) => d.metadata?.name));
    const vmis = new Map((await client.list<V1VirtualMachineInstance>(`/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachineinstances`)).items.map((v) => [v.metadata?.name, v]));
    for (const vm of (await client.list<V1VirtualMachine>(`/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachines`)).items) {
      const vmi = vmis.get(vm.metadata?.name);
      if (!vmi) continue;
      const volumeStatus = (vm.spec.template?.spec?.volumes ?? []).flatMap((v, i) => {
        const claim = v.dataVolume?.name;
        return claim && imported.has(claim) ? [{ name: v.name, target: `sd${String.fromCharCode(97 + (i % 26))}`, phase: 'Ready', reason: 'VolumeReady', persistentVolumeClaimInfo: { claimName: claim } }] : [];
      });
      if (JSON.stringify(vmi.status?.volumeStatus ?? []) !== JSON.stringify(volumeStatus)) {
        await client.mergePatch(`/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachineinstances/${vm.metadata?.name}/status`, { status: { volumeStatus } });
      }
    }
  }

  void (async () => {
    while (!abort.signal.aborted) {
      await round().catch(() => undefined); // the API server may be busy; the next round catches up
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return platform;
}
