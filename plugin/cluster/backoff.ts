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

/**
 * The wait after a conflict of an ADD in a pool: none while it probes random
 * addresses of a large pool (a conflict there means a hint was stale, the
 * address taken long ago, not that others are heading for the same address:
 * the next random probe is as unlikely to meet them), else backoffMs. At 90%
 * full a probing ADD meets ~9 conflicts in a row; waiting after each idled
 * ~0.2–0.5 s per ADD with nobody to let ahead (measured).
 */
export function waitAfterConflictMs(conflicts: number, leftMs: number, probing: boolean, random: () => number = Math.random): number {
  return probing ? 0 : backoffMs(conflicts, leftMs, random);
}

/** Resolves after `ms` milliseconds (at once for 0). */
export function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
