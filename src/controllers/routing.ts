// Which VMContexts a change to another object concerns: pure functions over the caches, so that
// every watch event enqueues exactly the keys that must be looked at again.
import type { ContextLayer, VMContext } from '../crds/index.js';
import type { VMChange } from '../drivers/driver.js';
import { keyOf } from '../kube/resources.js';
import { selectLayers } from '../reconcile/layers.js';

/** VMContexts in the layer's namespace that list it, select it, or that it selects. */
export function vmContextsUsingLayer(layer: ContextLayer, vmContexts: readonly VMContext[]): string[] {
  return vmContexts.filter((v) => v.metadata.namespace === layer.metadata.namespace && selectLayers(v, [{ ...layer, metadata: { ...layer.metadata, deletionTimestamp: undefined } }]).layers.length > 0).map(keyOf);
}

/** Layers that read the ConfigMap or Secret `name` in `namespace`. */
export function layersUsingSource(kind: 'ConfigMap' | 'Secret', namespace: string, name: string, layers: readonly ContextLayer[]): ContextLayer[] {
  return layers.filter((layer) => {
    if (layer.metadata.namespace !== namespace) return false;
    const spec = layer.spec;
    const byFile = (spec.files ?? []).some((f) => (kind === 'ConfigMap' ? f.contentFrom?.configMapKeyRef?.name : f.contentFrom?.secretKeyRef?.name) === name);
    const bySource = (spec.sources ?? []).some((s) => (kind === 'ConfigMap' ? s.configMap : s.secret) === name);
    return byFile || bySource;
  });
}

/** VMContexts whose target is the VM a driver reported a change of. */
export function vmContextsTargeting(change: VMChange, vmContexts: readonly VMContext[]): string[] {
  return vmContexts
    .filter((v) => (change.libvirtDomain !== undefined && v.spec.target.libvirt?.domain === change.libvirtDomain) || (change.kubevirt !== undefined && v.metadata.namespace === change.kubevirt.namespace && v.spec.target.kubevirt?.name === change.kubevirt.name))
    .map(keyOf);
}
