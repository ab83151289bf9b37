// The ContextLayer controller's reconciler: semantic checks the API server cannot do, whether its
// ConfigMaps and Secrets exist, how many VMs receive it. Rendering happens per VM (vmcontext.ts).
import type { ContextLayer, VMContext } from '../crds/index.js';
import { CONTEXT_LAYERS } from '../kube/resources.js';
import { contextLayerProblems } from '../reconcile/checks.js';
import { setConditions, type Condition, type ConditionInput } from '../reconcile/conditions.js';
import { effectivePriority, selectLayers } from '../reconcile/layers.js';
import type { SourceLookup } from '../reconcile/render.js';
import { formatPath } from '../crds/validate.js';
import type { Reconciler } from '../runtime/controller.js';
import type { Cache, ObjectWriter, SourcesOf } from './ports.js';
import { realClock, type Clock } from '../runtime/clock.js';

export interface ContextLayerDeps {
  readonly layers: Cache<ContextLayer>;
  readonly vmContexts: Cache<VMContext>;
  readonly sources: SourcesOf;
  readonly writer: ObjectWriter;
  readonly clock?: Clock;
}

export function contextLayerReconciler(deps: ContextLayerDeps): Reconciler {
  const clock = deps.clock ?? realClock;
  const now = (): Date => new Date(clock.now());
  return async (key) => {
    const layer = deps.layers.get(key);
    if (!layer || layer.metadata.deletionTimestamp) return;
    const namespace = layer.metadata.namespace ?? 'default';
    const problems = contextLayerProblems(layer.spec);
    const missing = missingSources(layer, deps.sources(namespace));
    const users = deps.vmContexts.list().filter((v) => v.metadata.namespace === namespace && selectLayers(v, [layer]).layers.length > 0).length;
    const updates: ConditionInput[] =
      problems.length > 0
        ? [
            { type: 'Invalid', status: 'True', reason: 'InvalidSpec', message: problems.map((p) => `${formatPath(p.path)}: ${p.message}`).join('; ') },
            { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'the spec has problems; see the Invalid condition' },
          ]
        : missing.length > 0
          ? [
              { type: 'Invalid', status: 'False', reason: 'Valid', message: 'the spec is valid' },
              { type: 'Ready', status: 'False', reason: 'ContentNotFound', message: `not found: ${missing.join(', ')}` },
            ]
          : [
              { type: 'Invalid', status: 'False', reason: 'Valid', message: 'the spec is valid' },
              { type: 'Ready', status: 'True', reason: 'Valid', message: 'the layer can be rendered' },
            ];
    const generation = layer.metadata.generation;
    await deps.writer.applyStatus(CONTEXT_LAYERS, layer, {
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      effectivePriority: effectivePriority(layer.spec),
      renderedFor: users,
      conditions: setConditions(layer.status?.conditions as Condition[] | undefined, updates, now(), generation),
    });
  };
}

/** ConfigMaps and Secrets (and keys) the layer needs that do not exist. Names only, never values. */
export function missingSources(layer: ContextLayer, sources: SourceLookup): string[] {
  const missing: string[] = [];
  for (const file of layer.spec.files ?? []) {
    const cm = file.contentFrom?.configMapKeyRef;
    const secret = file.contentFrom?.secretKeyRef;
    if (cm && !cm.optional && sources.configMap(cm.name)?.[cm.key] === undefined) missing.push(`ConfigMap ${cm.name} key ${cm.key}`);
    if (secret && !secret.optional && sources.secret(secret.name)?.[secret.key] === undefined) missing.push(`Secret ${secret.name} key ${secret.key}`);
  }
  for (const source of layer.spec.sources ?? []) {
    if (source.optional) continue;
    if (source.configMap && !sources.configMap(source.configMap)) missing.push(`ConfigMap ${source.configMap}`);
    if (source.secret && !sources.secret(source.secret)) missing.push(`Secret ${source.secret}`);
  }
  return missing;
}
