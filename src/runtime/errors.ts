// The two errors a reconciler throws on purpose, checked by identity (instanceof), never by shape.

/** The object cannot be reconciled until something else changes: do not retry (the next watch event will). */
export class TerminalError extends Error {
  override readonly name = 'TerminalError';
}

/** Not a failure: something is not ready yet (a VM starting, an image importing). Check again soon. */
export class WaitingError extends Error {
  override readonly name = 'WaitingError';
  constructor(
    message: string,
    readonly retryAfterMs = 1000,
  ) {
    super(message);
  }
}
