/** Whether a lease may still belong to an ADD that is running. */

/**
 * True when the lease was created less than `windowMs` before `now`: an ADD
 * given that budget may still be running, and the runtime's list of valid
 * attachments (GC) cannot show it yet. Times are this node's own clock, the
 * clock the lease was stamped with. An unreadable time counts as young.
 */
export function mayBeInFlight(createdAt: string, windowMs: number, now: number): boolean {
  const t = Date.parse(createdAt);
  return !Number.isFinite(t) || now - t < windowMs;
}
