// How long to wait before the next reconnect attempt to a libvirt daemon.

/**
 * Delay before attempt `attempt` (0 = the first retry): doubling from `baseMs` up to `maxMs`,
 * with "equal jitter" — half of it fixed, half random — so sessions to daemons that restarted
 * together do not retry in lockstep, and the delay never collapses to zero.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
