// The desired state of one VMContext, as pure functions: which layers, rendered for which node,
// with which digests; what triggered a change; and the status to write. The controller does the
// I/O around it (caches, image store, driver, API writes).
import type { ContextLayer, RecontextTrigger, VMContext, VMContextStatus } from '../crds/index.js';
import { RECONTEXT_TRIGGERS } from '../crds/index.js';
import type { AttachedLayer, ConvergeResult, ObservedVM } from './platform.js';
import { kindOf, type NotReadyReason } from './reasons.js';
import { setConditions, type Condition, type ConditionInput } from './conditions.js';
import { selectLayers } from './layers.js';
import { LayerError, layerUsesNode, renderLayer, type NodeFacts, type RenderedLayer, type SourceLookup } from './render.js';

export type Trigger = RecontextTrigger | 'Initial';

export interface PlanInputs {
  readonly vmContext: VMContext;
  readonly layers: readonly ContextLayer[];
  readonly sources: SourceLookup;
  readonly observed: ObservedVM | undefined;
  readonly node: NodeFacts | undefined;
  readonly maxLayerBytes?: number;
}

/** Why the VM cannot get its layers now; becomes Ready=False with this reason (its kind: reasons.ts). */
export interface NotReady {
  readonly kind: 'not-ready';
  readonly reason: NotReadyReason;
  readonly message: string;
  /** VMNotRunning: the layers the VM will carry once it runs (a driver may make room for them now). */
  readonly layers?: readonly string[];
}

/** A layer as it should be on the VM. `rendered` is what to build; absent for a layer kept as it is. */
export interface PlannedLayer {
  readonly name: string;
  readonly class: string;
  readonly priority: number;
  readonly digest: string;
  readonly rendered?: RenderedLayer;
}

export interface Converge {
  readonly kind: 'converge';
  /** Highest priority first. */
  readonly layers: readonly PlannedLayer[];
  readonly trigger: Trigger | undefined;
  readonly node: string | undefined;
}

export function planVMContext(inputs: PlanInputs): NotReady | Converge {
  const { vmContext, observed } = inputs;
  const selection = selectLayers(vmContext, inputs.layers);
  if (selection.missing.length > 0) {
    return { kind: 'not-ready', reason: 'LayerNotFound', message: `ContextLayer ${selection.missing.join(', ')} not found in namespace ${vmContext.metadata.namespace}` };
  }
  if (!observed) return { kind: 'not-ready', reason: 'VMNotFound', message: 'the target VM does not exist' };
  const needsNode = selection.layers.filter(layerUsesNode);
  if (needsNode.length > 0 && (!observed.running || !inputs.node)) {
    return {
      kind: 'not-ready',
      reason: 'VMNotRunning',
      message: `layers ${needsNode.map((l) => l.metadata.name).join(', ')} depend on the node, and the VM is not running on one`,
      layers: selection.layers.map((l) => l.metadata.name),
    };
  }
  const vm = {
    name: vmContext.spec.target.kubevirt?.name ?? vmContext.spec.target.libvirt?.domain ?? vmContext.metadata.name,
    namespace: vmContext.metadata.namespace ?? 'default',
    labels: vmContext.metadata.labels ?? {},
  };
  const rendered: RenderedLayer[] = [];
  for (const layer of selection.layers) {
    try {
      rendered.push(renderLayer(layer, { vm, ...(inputs.node ? { node: inputs.node } : {}), sources: inputs.sources, ...(inputs.maxLayerBytes ? { maxLayerBytes: inputs.maxLayerBytes } : {}) }));
    } catch (error: unknown) {
      if (error instanceof LayerError) return { kind: 'not-ready', reason: error.reason, message: error.message };
      throw error;
    }
  }
  const trigger = triggerOf(vmContext.status, observed, rendered);
  return { kind: 'converge', layers: holdBack(vmContext, trigger, rendered), trigger, node: observed.node };
}

/** What changed since the status was written; undefined when nothing did. */
export function triggerOf(status: VMContextStatus | undefined, observed: ObservedVM, rendered: readonly RenderedLayer[]): Trigger | undefined {
  if (!status?.layers) return 'Initial';
  if (observed.migrationId && observed.migrationId !== status.lastMigrationId) return 'Migration';
  if (observed.node && status.node && observed.node !== status.node) return 'NodeChange';
  const before = new Map(status.layers.map((l) => [l.name, l.digest]));
  const changed = rendered.length !== before.size || rendered.some((l) => before.get(l.name) !== l.digest);
  return changed ? 'LayerChange' : undefined;
}

/**
 * recontextOn: a trigger the user opted out of does not swap layers the VM already has (they keep
 * their current digests); layers it does not have yet are still added.
 */
function holdBack(vmContext: VMContext, trigger: Trigger | undefined, rendered: readonly RenderedLayer[]): PlannedLayer[] {
  const enabled = new Set<RecontextTrigger>(vmContext.spec.recontextOn ?? RECONTEXT_TRIGGERS);
  const hold = trigger !== undefined && trigger !== 'Initial' && !enabled.has(trigger);
  const previous = new Map((vmContext.status?.layers ?? []).map((l) => [l.name, l]));
  return rendered.map((layer) => {
    const kept = hold ? previous.get(layer.name) : undefined;
    const identity = { name: layer.name, class: layer.class, priority: layer.priority };
    return kept ? { ...identity, digest: kept.digest } : { ...identity, digest: layer.digest, rendered: layer };
  });
}

export interface Timing {
  readonly startedAt: Date;
  readonly resolveMs: number;
  readonly detachMs: number;
  readonly buildMs: number;
  readonly attachMs: number;
  readonly releaseMs?: number;
  readonly attachStepsMs?: ConvergeResult['attachStepsMs'];
  readonly sinceMigrationMs?: ConvergeResult['sinceMigrationMs'];
}

export interface StatusInputs {
  readonly vmContext: VMContext;
  readonly vmDisplay: string;
  readonly plan: NotReady | Converge;
  readonly attached?: readonly AttachedLayer[];
  readonly imageBytes?: ReadonlyMap<string, number>;
  readonly timing?: Timing;
  readonly observed?: ObservedVM;
  /** Whether the driver puts images on the VM (false: images only, Ready once they are built). */
  readonly attaches: boolean;
  readonly now: Date;
}

/** The complete status this operator owns (server-side apply replaces what it omits). */
export function vmContextStatus(inputs: StatusInputs): VMContextStatus {
  const { vmContext, plan, now } = inputs;
  const previous = vmContext.status ?? {};
  const generation = vmContext.metadata.generation;
  const base = {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    vm: inputs.vmDisplay,
    ...(inputs.observed?.node ? { node: inputs.observed.node } : previous.node ? { node: previous.node } : {}),
    ...(previous.layers ? { layers: previous.layers } : {}),
    ...(previous.lastRecontext ? { lastRecontext: previous.lastRecontext } : {}),
    ...(previous.lastMigrationId ? { lastMigrationId: previous.lastMigrationId } : {}),
  };
  if (plan.kind === 'not-ready') {
    // A VM that no longer exists holds no layers: say so (and let their images be collected).
    const { layers: _gone, ...withoutLayers } = base;
    const kept = plan.reason === 'VMNotFound' ? withoutLayers : base;
    const updates: ConditionInput[] = [
      { type: 'Ready', status: 'False', reason: plan.reason, message: plan.message },
      { type: 'Recontextualizing', status: 'False', reason: plan.reason, message: plan.message },
    ];
    // Someone has to act (pending and retry pass by themselves).
    const kind = kindOf(plan.reason);
    if (kind === 'blocked' || kind === 'terminal') updates.push({ type: 'Degraded', status: 'True', reason: plan.reason, message: plan.message });
    return { ...kept, conditions: setConditions(previous.conditions as Condition[] | undefined, updates, now, generation) };
  }
  const attached = new Map((inputs.attached ?? []).map((a) => [a.name, a]));
  const previousLayers = new Map((previous.layers ?? []).map((l) => [l.name, l]));
  const layers = plan.layers.map((layer) => {
    const a = attached.get(layer.name);
    const before = previousLayers.get(layer.name);
    const bytes = inputs.imageBytes?.get(layer.digest) ?? before?.bytes;
    const attachedAt = a?.attachedAt ?? (before?.digest === layer.digest ? before.attachedAt : undefined);
    return {
      name: layer.name,
      class: layer.class,
      priority: layer.priority,
      digest: layer.digest,
      ...(bytes !== undefined ? { bytes } : {}),
      ...(a?.device ? { device: a.device } : {}),
      ...(attachedAt ? { attachedAt } : {}),
    };
  });
  const notAttached = !inputs.attaches ? [] : layers.filter((l) => attached.get(l.name)?.digest !== l.digest);
  const ready: ConditionInput =
    notAttached.length > 0
      ? { type: 'Ready', status: 'False', reason: 'Attaching', message: `waiting for ${notAttached.map((l) => l.name).join(', ')} to be attached` }
      : !inputs.attaches
        ? { type: 'Ready', status: 'True', reason: 'ImagesReady', message: `${layers.length} layer images built; the driver attaches none (images only)` }
        : { type: 'Ready', status: 'True', reason: 'Converged', message: `${layers.length} layers attached` };
  const timing = inputs.timing;
  const lastRecontext =
    plan.trigger && timing
      ? {
          trigger: plan.trigger,
          startedAt: timing.startedAt.toISOString().replace(/\.\d+Z$/, 'Z'),
          phasesMs: { resolve: ms(timing.resolveMs), detach: ms(timing.detachMs), build: ms(timing.buildMs), attach: ms(timing.attachMs) },
          totalMs: ms(timing.resolveMs + timing.detachMs + timing.buildMs + timing.attachMs),
          ...(timing.releaseMs !== undefined ? { releaseMs: ms(timing.releaseMs) } : {}),
          ...(timing.attachStepsMs ? { attachStepsMs: { import: ms(timing.attachStepsMs.import), apply: ms(timing.attachStepsMs.apply), ready: ms(timing.attachStepsMs.ready) } } : {}),
          // Only when this recontextualization answers that very migration.
          ...(timing.sinceMigrationMs && plan.trigger === 'Migration' && timing.sinceMigrationMs.migrationId === inputs.observed?.migrationId
            ? { sinceMigrationMs: { volumeInSpec: ms(timing.sinceMigrationMs.volumeInSpec), volumeReady: ms(timing.sinceMigrationMs.volumeReady) } }
            : {}),
        }
      : previous.lastRecontext;
  const conditions = setConditions(
    previous.conditions as Condition[] | undefined,
    [
      ready,
      { type: 'Recontextualizing', status: 'False', reason: 'Idle', message: 'no recontextualization in progress' },
      { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'all layers render' },
    ],
    now,
    generation,
  );
  const migrationId = inputs.observed?.migrationId ?? previous.lastMigrationId;
  return {
    ...base,
    layers,
    ...(lastRecontext ? { lastRecontext } : {}),
    ...(migrationId ? { lastMigrationId: migrationId } : {}),
    conditions,
  };
}

const ms = (value: number) => Math.max(0, Math.round(value));
