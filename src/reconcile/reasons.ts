// Why a VMContext is not Ready: every reason its Ready=False condition can carry, in four kinds
// that say what happens next (docs/troubleshooting.md). A driver's error carries one of them
// (src/drivers/driver.ts); the error classes of the same kinds (src/runtime/errors.ts) tell the
// controller's queue what to do:
//   pending  — not a failure: something is still at work (a VM starting, an image importing).
//              Looked at again soon, at a fixed interval (the backoff does not grow).
//   blocked  — someone has to act on something no watch of ours sees (the VM's definition, the
//              platform's setup). Looked at again slowly, at a fixed interval.
//   retry    — a failure that may pass by itself (a host unreachable). Retried with growing backoff.
//   terminal — the object, or an object it refers to (both watched), must change. Not looked at
//              again until one does.

export const REASONS = {
  pending: ['VMNotFound', 'VMNotRunning', 'ImportInProgress', 'VolumeNotReady', 'DeviceRemovalPending'],
  blocked: ['NoFreeDrive', 'RestartRequired', 'CDIMissing', 'KubeVirtMissing', 'HotplugDisabled', 'NotAVirtualMachine', 'VolumeNameConflict', 'ImportFailed'],
  retry: ['HostUnavailable'],
  terminal: ['LayerNotFound', 'ContentNotFound', 'TemplateError', 'PathConflict', 'InvalidPath', 'TooLarge', 'NodeUnknown'],
} as const;

/** The same four words as ErrorKind of src/runtime/errors.ts (controllers/vmcontext.ts maps one onto the other). */
export type ReasonKind = keyof typeof REASONS;
/** The driver did its part; the platform is still at work (or the VM is not there yet). */
export type PendingReason = (typeof REASONS.pending)[number];
/** The VM or its platform must change before the layers can be delivered (someone has to act). */
export type ConfigurationReason = (typeof REASONS.blocked)[number];
export type RetryReason = (typeof REASONS.retry)[number];
export type TerminalReason = (typeof REASONS.terminal)[number];
/** A layer that cannot be rendered as specified (render.ts's LayerError). */
export type LayerErrorReason = Exclude<TerminalReason, 'LayerNotFound'>;
export type NotReadyReason = PendingReason | ConfigurationReason | RetryReason | TerminalReason;

/** Why a MigrationPolicy cannot ask for a move (blocked: the policy asks again at its next sample). */
export type MigrationImpossibleReason = 'NoTargetNode' | 'NotMigratable' | 'NotRunning' | 'MigrationInFlight';

const KIND_OF = new Map<string, ReasonKind>(Object.entries(REASONS).flatMap(([kind, reasons]) => reasons.map((reason) => [reason, kind as ReasonKind] as const)));

export function isNotReadyReason(reason: string): reason is NotReadyReason {
  return KIND_OF.has(reason);
}

export function kindOf(reason: NotReadyReason): ReasonKind {
  return KIND_OF.get(reason)!;
}
