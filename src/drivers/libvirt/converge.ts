// The one converge sequence of a libvirt domain's context drives (make before break), used by the
// driver and by the tests and benches that stand between its two halves:
//   attach:  plan from the live XML, claim every drive the plan touches in the domain's metadata,
//            then put the new images in (media changes into spare drives, hot-plugs);
//   release: empty or unplug the drives they replaced (the guest agent lets go on the eject
//            request), then record the final assignments.
// A crash between the steps is healed by the next converge: the claim names every drive touched.
// The signal is checked before each device action: an aborted converge stops between actions,
// never inside one, and leaves a record the next converge completes.
import { applyDeviceAction, type ActionOptions, type DeviceClient } from './actions.js';
import type { DomainRef, LibvirtClient } from './client.js';
import { assignmentsOf, assignmentsXml, cdromsOf, isMaking, METADATA_NAMESPACE, METADATA_PREFIX, planDevices, scsiRoomOf, type Assignment, type DevicePlan, type WantedLayer } from './devices.js';

export type ConvergeClient = DeviceClient & Pick<LibvirtClient, 'setMetadata'>;

export interface AttachedDomain {
  readonly plan: DevicePlan;
  /** Reading and planning (the paper's detach phase: finding what to replace). */
  readonly detachMs: number;
  /** Claiming and putting the new images in. */
  readonly attachMs: number;
  /** The second half: releases what the new images replaced; resolves with how long it took. */
  release(signal?: AbortSignal): Promise<number>;
}

/** The first half: plan, claim, put the new images in. Call release() when the guest may let go. */
export async function attachLayers(client: ConvergeClient, domain: DomainRef, wanted: readonly WantedLayer[], signal?: AbortSignal, options: ActionOptions = {}): Promise<AttachedDomain> {
  const started = performance.now();
  signal?.throwIfAborted();
  const xml = await client.domainXml(domain);
  const plan = planDevices(cdromsOf(xml), assignmentsOf(xml), wanted, scsiRoomOf(xml));
  const detachMs = performance.now() - started;
  const attachStarted = performance.now();
  let recorded = assignmentsXml(assignmentsOf(xml));
  const record = async (assignments: readonly Assignment[]): Promise<void> => {
    const next = assignmentsXml(assignments);
    if (next === recorded) return;
    await client.setMetadata(domain, next, METADATA_PREFIX, METADATA_NAMESPACE);
    recorded = next;
  };
  // Claim first, act, then record the outcome.
  await record(plan.intent);
  for (const action of plan.actions.filter(isMaking)) {
    signal?.throwIfAborted();
    await applyDeviceAction(client, domain, action, options);
  }
  const attachMs = performance.now() - attachStarted;
  return {
    plan,
    detachMs,
    attachMs,
    release: async (releaseSignal = signal) => {
      const releaseStarted = performance.now();
      for (const action of plan.actions.filter((a) => !isMaking(a))) {
        releaseSignal?.throwIfAborted();
        await applyDeviceAction(client, domain, action, options);
      }
      await record(plan.assignments);
      return performance.now() - releaseStarted;
    },
  };
}
