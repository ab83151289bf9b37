// Which layers a VM receives, in which order. Pure: resources in, decision out.
import { DEFAULT_PRIORITY, type ContextLayer, type ContextLayerSpec, type VMContext } from '../crds/index.js';
import { selectorMatches } from './labels.js';

export function effectivePriority(spec: Pick<ContextLayerSpec, 'class' | 'priority'>): number {
  return spec.priority ?? DEFAULT_PRIORITY[spec.class];
}

/**
 * Highest priority first; equal priorities are ordered by name, and the first wins in the guest
 * too, so the order is total and every reader of the manifest agrees on it.
 */
export function compareLayers(a: ContextLayer, b: ContextLayer): number {
  return effectivePriority(b.spec) - effectivePriority(a.spec) || a.metadata.name.localeCompare(b.metadata.name);
}

export interface LayerSelection {
  readonly layers: readonly ContextLayer[];
  /** Names listed in spec.layers that do not exist (in the VMContext's namespace). */
  readonly missing: readonly string[];
}

/** Layers of a VMContext: listed by name, matched by its layerSelector, or whose vmSelector matches it. */
export function selectLayers(vmContext: VMContext, candidates: readonly ContextLayer[]): LayerSelection {
  const namespace = vmContext.metadata.namespace;
  const inNamespace = candidates.filter((l) => l.metadata.namespace === namespace && !l.metadata.deletionTimestamp);
  const byName = new Map(inNamespace.map((l) => [l.metadata.name, l]));
  const chosen = new Map<string, ContextLayer>();
  const missing: string[] = [];
  for (const ref of vmContext.spec.layers ?? []) {
    const layer = byName.get(ref.name);
    if (layer) chosen.set(ref.name, layer);
    else missing.push(ref.name);
  }
  const layerSelector = vmContext.spec.layerSelector;
  for (const layer of inNamespace) {
    if (layerSelector && selectorMatches(layerSelector, layer.metadata.labels)) chosen.set(layer.metadata.name, layer);
    const vmSelector = layer.spec.vmSelector;
    if (vmSelector && selectorMatches(vmSelector, vmContext.metadata.labels)) chosen.set(layer.metadata.name, layer);
  }
  return { layers: [...chosen.values()].sort(compareLayers), missing };
}

/**
 * Why a layer of the VMContext's namespace is not among its layers, for `recontext render`:
 * each way a layer can be chosen, and why it does not apply.
 */
export function whyNotSelected(vmContext: VMContext, layer: ContextLayer): string {
  const show = (labels: Readonly<Record<string, string>> | undefined) =>
    Object.keys(labels ?? {}).length === 0 ? 'none' : Object.entries(labels!).map(([k, v]) => `${k}=${v}`).join(',');
  const selector = (s: NonNullable<ContextLayerSpec['vmSelector']>) =>
    [...Object.entries(s.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`), ...(s.matchExpressions ?? []).map((e) => `${e.key} ${e.operator}${e.values ? ` (${e.values.join(',')})` : ''}`)].join(',') || 'everything';
  const reasons = ['not in spec.layers'];
  const layerSelector = vmContext.spec.layerSelector;
  reasons.push(layerSelector ? `layerSelector ${selector(layerSelector)} does not match its labels (${show(layer.metadata.labels)})` : 'the VMContext has no layerSelector');
  const vmSelector = layer.spec.vmSelector;
  reasons.push(vmSelector ? `its vmSelector ${selector(vmSelector)} does not match the VMContext's labels (${show(vmContext.metadata.labels)})` : 'it has no vmSelector');
  return reasons.join('; ');
}
