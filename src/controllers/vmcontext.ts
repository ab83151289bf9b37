// The VMContext controller's reconciler: observe the VM, plan (pure, src/reconcile/vmcontext),
// build missing images, let the driver converge the devices, write status. Timed per phase.
import type { ContextLayer, VMContext } from '../crds/index.js';
import { describeTarget, targetOf, type ConvergeResult, type DesiredLayer, type Driver, type ObservedVM } from '../drivers/driver.js';
import type { LayerImageStore } from '../images/layer-image.js';
import { IsoInputError, IsoLimitError } from '../iso/errors.js';
import { VM_CONTEXTS } from '../kube/resources.js';
import { findCondition } from '../reconcile/conditions.js';
import type { NodeFacts } from '../reconcile/render.js';
import { isNotReadyReason, kindOf, type NotReadyReason, type ReasonKind } from '../reconcile/reasons.js';
import { planVMContext, vmContextStatus, type NotReady, type Converge } from '../reconcile/vmcontext.js';
import type { Reconciler } from '../runtime/controller.js';
import { BlockedError, PendingError, ReconcileError, RetryError, TerminalError } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import type { Cache, EventSink, ObjectWriter, SourcesOf } from './ports.js';
import { realClock, type Clock } from '../runtime/clock.js';

export const FINALIZER = 'recontext.dev/release-devices';
export const MIGRATING_REQUEUE_MS = 1_000;

export interface VMContextDeps {
  readonly vmContexts: Cache<VMContext>;
  readonly layers: Cache<ContextLayer>;
  readonly sources: SourcesOf;
  readonly writer: ObjectWriter;
  readonly events: EventSink;
  readonly driver: Driver;
  readonly images: LayerImageStore;
  readonly metrics: OperatorMetrics;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly maxLayerBytes?: number;
}

export function vmContextReconciler(dependencies: VMContextDeps): Reconciler {
  const clock = dependencies.clock ?? realClock;
  const now = (): Date => new Date(clock.now());
  const ownWrites = readYourWrites(dependencies.writer);
  const deps = { ...dependencies, writer: ownWrites.writer };
  return async (key, signal) => {
    const vmContext = ownWrites.overlay(deps.vmContexts.get(key));
    if (!vmContext) {
      ownWrites.forget(key);
      return; // gone; cleanup ran before its finalizer was removed
    }
    const target = targetOf(vmContext);

    if (vmContext.metadata.deletionTimestamp) {
      if (vmContext.metadata.finalizers?.includes(FINALIZER)) {
        // (A finalizer left by an earlier, delivering driver goes too: this one has nothing to release.)
        await deps.driver.release?.(target, signal);
        await deps.writer.setFinalizers(VM_CONTEXTS, vmContext, []);
        deps.logger.info('released devices of deleted VMContext', { key });
      }
      return;
    }
    if (deps.driver.release && !vmContext.metadata.finalizers?.includes(FINALIZER)) {
      await deps.writer.setFinalizers(VM_CONTEXTS, vmContext, [FINALIZER]);
    }

    const startedAt = now();
    const t0 = performance.now();
    let observed: ObservedVM | undefined;
    try {
      observed = await deps.driver.observe(target, signal);
    } catch (error: unknown) {
      return notReady(deps, vmContext, describeTarget(target), error, now());
    }
    if (observed?.migrating) {
      // Between the source pausing and the destination resuming: which node to render for is
      // about to change. The driver's "migrated" event usually wakes us before this timer.
      deps.logger.debug('vm is migrating; looking again shortly', { key, node: observed.node });
      return { requeueAfterMs: MIGRATING_REQUEUE_MS };
    }
    const namespace = vmContext.metadata.namespace ?? 'default';
    const plan = planVMContext({
      vmContext,
      layers: deps.layers.list(),
      sources: deps.sources(namespace),
      observed,
      node: observed?.node ? { name: observed.node, labels: observed.nodeLabels ?? {} } : undefined,
      ...(deps.maxLayerBytes ? { maxLayerBytes: deps.maxLayerBytes } : {}),
    });
    const resolveMs = performance.now() - t0;
    if (plan.kind === 'not-ready') {
      if (plan.layers && observed && deps.driver.reserve) {
        try {
          await deps.driver.reserve(target, plan.layers, signal);
        } catch (error: unknown) {
          return notReady(deps, vmContext, describeTarget(target), error, now(), observed);
        }
      }
      return notReady(deps, vmContext, describeTarget(target), errorOf(plan), now(), observed);
    }

    const t1 = performance.now();
    let desired: Awaited<ReturnType<typeof buildImages>>;
    try {
      desired = await buildImages(deps, plan);
    } catch (error: unknown) {
      // Content the renderer let through but an image cannot hold: the user must change the layer.
      if (!(error instanceof IsoInputError)) throw error;
      const reason = error instanceof IsoLimitError ? 'TooLarge' : 'InvalidPath';
      return notReady(deps, vmContext, describeTarget(target), errorOf({ reason, message: `cannot build the image: ${error.message}` }), now(), observed);
    }
    const buildMs = performance.now() - t1;
    let result: ConvergeResult;
    try {
      result = await deps.driver.converge(target, desired, signal);
    } catch (error: unknown) {
      return notReady(deps, vmContext, describeTarget(target), error, now(), observed);
    }
    const status = vmContextStatus({
      vmContext,
      vmDisplay: describeTarget(target),
      plan,
      attached: result.layers,
      imageBytes: new Map(desired.map((d) => [d.digest, d.bytes])),
      timing: {
        startedAt,
        resolveMs,
        detachMs: result.detachMs,
        buildMs,
        attachMs: result.attachMs,
        ...(result.releaseMs !== undefined ? { releaseMs: result.releaseMs } : {}),
        ...(result.attachStepsMs ? { attachStepsMs: result.attachStepsMs } : {}),
        ...(result.sinceMigrationMs ? { sinceMigrationMs: result.sinceMigrationMs } : {}),
      },
      ...(observed ? { observed } : {}),
      attaches: deps.driver.attaches,
      now: now(),
    });
    await deps.writer.applyStatus(VM_CONTEXTS, vmContext, status);
    if (plan.trigger && status.lastRecontext) {
      const phases = status.lastRecontext.phasesMs;
      deps.metrics.recontextDuration.observe({ trigger: plan.trigger, driver: deps.driver.name }, status.lastRecontext.totalMs / 1000);
      for (const [phase, ms] of Object.entries(phases)) deps.metrics.recontextPhase.observe({ phase, driver: deps.driver.name }, (ms ?? 0) / 1000);
      if (status.lastRecontext.releaseMs !== undefined) deps.metrics.recontextPhase.observe({ phase: 'release', driver: deps.driver.name }, status.lastRecontext.releaseMs / 1000);
      for (const [step, ms] of Object.entries(status.lastRecontext.attachStepsMs ?? {})) deps.metrics.attachStep.observe({ step, driver: deps.driver.name }, (ms ?? 0) / 1000);
      const since = status.lastRecontext.sinceMigrationMs;
      if (since) for (const [stage, ms] of Object.entries(since)) deps.metrics.sinceMigration.observe({ stage, driver: deps.driver.name }, (ms ?? 0) / 1000);
      deps.events.record(vmContext, 'Normal', plan.trigger === 'Initial' ? 'ContextDelivered' : 'Recontextualized',
        `${plan.trigger}: ${status.layers?.length ?? 0} layers for node ${observed?.node ?? 'unknown'} in ${status.lastRecontext.totalMs} ms`);
      deps.logger.info('recontextualized', { key, trigger: plan.trigger, node: observed?.node, totalMs: status.lastRecontext.totalMs });
    }
    return undefined;
  };
}

/**
 * Builds the images the VMContext `key` will need on `node`, before the VM is there (a live
 * migration toward it has begun). Returns how many were built; nothing is attached or written.
 */
export async function prepareImages(deps: Pick<VMContextDeps, 'vmContexts' | 'layers' | 'sources' | 'images' | 'metrics' | 'maxLayerBytes' | 'driver'>, key: string, node: NodeFacts, signal: AbortSignal): Promise<number> {
  const vmContext = deps.vmContexts.get(key);
  if (!vmContext || vmContext.metadata.deletionTimestamp) return 0;
  const plan = planVMContext({
    vmContext,
    layers: deps.layers.list(),
    sources: deps.sources(vmContext.metadata.namespace ?? 'default'),
    observed: { running: true, node: node.name, nodeLabels: node.labels },
    node,
    ...(deps.maxLayerBytes ? { maxLayerBytes: deps.maxLayerBytes } : {}),
  });
  if (plan.kind === 'not-ready') return 0;
  const built = await buildImages(deps, plan);
  await deps.driver.prepare?.(targetOf(vmContext), built, signal);
  return built.filter((b) => b.built).length;
}

async function buildImages(deps: Pick<VMContextDeps, 'images' | 'metrics'>, plan: Converge): Promise<(DesiredLayer & { built: boolean })[]> {
  return Promise.all(
    plan.layers.map(async (layer) => {
      const identity = { name: layer.name, class: layer.class, priority: layer.priority, digest: layer.digest };
      if (!layer.rendered) {
        // Kept as it is (recontextOn opted out of this trigger): the image is already in the store.
        return { ...identity, image: deps.images.path(layer.digest), bytes: 0, built: false };
      }
      const image = await deps.images.ensure(layer.rendered);
      if (image.built) {
        deps.metrics.imageBuilds.inc();
        deps.metrics.imageBuildBytes.inc(image.bytes);
      }
      return { ...identity, image: image.path, bytes: image.bytes, built: image.built };
    }),
  );
}

/** The error of the vocabulary (src/runtime/errors.ts) that a reason's kind calls for. */
const ERROR_OF_KIND = {
  pending: PendingError,
  blocked: BlockedError,
  retry: RetryError,
  terminal: TerminalError,
} satisfies { readonly [K in ReasonKind]: abstract new (reason: NotReadyReason, message: string) => ReconcileError & { readonly kind: K } };

function errorOf(notReady: Pick<NotReady, 'reason' | 'message'>): ReconcileError<NotReadyReason> {
  return new ERROR_OF_KIND[kindOf(notReady.reason)](notReady.reason, notReady.message);
}

/**
 * Ends a reconciliation short of Ready: an error of the vocabulary with a VMContext reason
 * becomes the Ready=False condition; then the error goes to the controller, whose queue acts by
 * its kind. Any other error goes there as it is (retried with backoff, no condition).
 */
async function notReady(deps: VMContextDeps, vmContext: VMContext, vm: string, error: unknown, now: Date, observed?: ObservedVM): Promise<never> {
  if (error instanceof ReconcileError && isNotReadyReason(error.reason)) {
    await writeNotReady(deps, vmContext, vm, { kind: 'not-ready', reason: error.reason, message: error.message }, now, observed);
  }
  throw error;
}

async function writeNotReady(deps: VMContextDeps, vmContext: VMContext, vm: string, plan: NotReady, now: Date, observed?: ObservedVM): Promise<void> {
  const before = findCondition(vmContext.status?.conditions, 'Ready');
  const status = vmContextStatus({ vmContext, vmDisplay: vm, plan, ...(observed ? { observed } : {}), attaches: deps.driver.attaches, now });
  await deps.writer.applyStatus(VM_CONTEXTS, vmContext, status);
  if (before?.reason !== plan.reason) {
    deps.metrics.recontextFailures.inc({ reason: plan.reason });
    deps.events.record(vmContext, kindOf(plan.reason) === 'pending' ? 'Normal' : 'Warning', plan.reason, plan.message);
  }
}

/**
 * The cache lags behind our own status writes: a reconciliation right after one would see the
 * status from before it and, e.g., count a migration twice. Until the cache has moved past the
 * version we wrote over, reconcile with the status we wrote.
 */
function readYourWrites(writer: ObjectWriter): { writer: ObjectWriter; overlay(vm: VMContext | undefined): VMContext | undefined; forget(key: string): void } {
  const written = new Map<string, { readonly over: string; readonly status: object }>();
  const keyOf = (o: { metadata: { name: string; namespace?: string } }) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  return {
    writer: {
      async applyStatus(resource, current, status) {
        const wrote = await writer.applyStatus(resource, current, status);
        const over = (current as VMContext).metadata.resourceVersion;
        if (wrote && over !== undefined) written.set(keyOf(current), { over, status });
        return wrote;
      },
      setFinalizers: (resource, current, finalizers) => writer.setFinalizers(resource, current, finalizers),
    },
    forget: (key) => void written.delete(key),
    overlay(vm) {
      if (!vm) return vm;
      const mine = written.get(keyOf(vm));
      if (!mine) return vm;
      if (vm.metadata.resourceVersion !== mine.over) {
        written.delete(keyOf(vm)); // the cache has caught up (or someone else wrote): trust it
        return vm;
      }
      return { ...vm, status: mine.status as VMContext['status'] };
    },
  };
}
