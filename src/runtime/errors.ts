// The one vocabulary of how a reconciliation ends short of success, thrown by drivers and
// reconcilers and checked by identity (instanceof) in the controller's outcome switch. Each kind
// carries a reason (a condition reason: the VMContext's are listed in src/reconcile/reasons.ts)
// and says what the queue does with the key:
//   PendingError  — not a failure: again after retryAfterMs; the failure count is reset.
//   BlockedError  — someone has to act on something not watched: again after retryAfterMs (long).
//   RetryError    — a failure that may pass: again with the queue's growing backoff (as any other error).
//   TerminalError — cannot succeed until the object changes: not again until a watch event brings it.

/** How soon a pending key is looked at again unless the error says otherwise. */
export const PENDING_RETRY_MS = 5_000;
/** How soon a blocked key is looked at again (the change that unblocks it may not be watched). */
export const BLOCKED_RETRY_MS = 60_000;

export type ErrorKind = 'pending' | 'blocked' | 'retry' | 'terminal';

export abstract class ReconcileError<Reason extends string = string> extends Error {
  abstract readonly kind: ErrorKind;
  constructor(
    readonly reason: Reason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A kind the queue takes up again after a fixed delay, whatever happened before (no backoff). */
export abstract class DelayedError<Reason extends string = string> extends ReconcileError<Reason> {
  constructor(
    reason: Reason,
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(reason, message);
  }
}

export class PendingError<Reason extends string = string> extends DelayedError<Reason> {
  override readonly name: string = 'PendingError';
  readonly kind = 'pending';
  constructor(reason: Reason, message: string, retryAfterMs = PENDING_RETRY_MS) {
    super(reason, message, retryAfterMs);
  }
}

export class BlockedError<Reason extends string = string> extends DelayedError<Reason> {
  override readonly name: string = 'BlockedError';
  readonly kind = 'blocked';
  constructor(reason: Reason, message: string, retryAfterMs = BLOCKED_RETRY_MS) {
    super(reason, message, retryAfterMs);
  }
}

export class RetryError<Reason extends string = string> extends ReconcileError<Reason> {
  override readonly name: string = 'RetryError';
  readonly kind = 'retry';
}

export class TerminalError<Reason extends string = string> extends ReconcileError<Reason> {
  override readonly name: string = 'TerminalError';
  readonly kind = 'terminal';
}
