// Driver "none": builds every layer image and records it in status, attaches nothing. For GitOps
// previews and for clusters where another system delivers the images. Where the VM runs is still
// observed for real (KubeVirt: its VMI and Node), so node-dependent layers render for the right place.
import type { KubeClient } from '../kube/client.js';
import type { ConvergeResult, DesiredLayer, Driver, ObservedVM, VMTarget } from './driver.js';
import { observeKubeVirt } from './kubevirt/observe.js';

export class ImagesOnlyDriver implements Driver {
  readonly name = 'none';
  readonly #client: KubeClient;

  constructor(client: KubeClient) {
    this.#client = client;
  }

  async observe(target: VMTarget): Promise<ObservedVM | undefined> {
    if (target.kubevirt) return observeKubeVirt(this.#client, target);
    return { running: true }; // a libvirt domain without the libvirt driver: no node known
  }

  async converge(_target: VMTarget, desired: readonly DesiredLayer[]): Promise<ConvergeResult> {
    return { layers: desired.map((d) => ({ name: d.name, digest: d.digest })), detachMs: 0, attachMs: 0 };
  }

  async release(): Promise<void> {}
}
