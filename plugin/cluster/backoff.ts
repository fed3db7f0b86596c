/**
 * How long an ADD waits after the API server said an address it tried is
 * someone else's (AlreadyExists). In a burst, ADDs that lost a race would
 * otherwise go straight for the next address, where the same crowd is
 * heading; a random wait that grows with each conflict in a row spreads
 * them out ("full jitter": uniform between zero and a ceiling that doubles).
 */

/** The ceiling after the first conflict. */
export const BACKOFF_BASE_MS = 8;
/** The ceiling never grows past this: a wait longer than a round trip or two only idles. */
export const BACKOFF_CAP_MS = 200;

/** The longest wait after `conflicts` conflicts in a row (0 before any). */
export function backoffCeilingMs(conflicts: number): number {
  if (conflicts <= 0) return 0;
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(conflicts - 1, 30));
}

/**
 * The wait after `conflicts` conflicts in a row: uniform in [0, ceiling],
 * never past the `leftMs` the ADD has left (its deadline says when to stop,
 * not the wait). `random` is injectable for tests.
 */
export function backoffMs(conflicts: number, leftMs: number, random: () => number = Math.random): number {
  return Math.max(0, Math.min(leftMs, random() * backoffCeilingMs(conflicts)));
}

/** Resolves after `ms` milliseconds (at once for 0). */
export function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
