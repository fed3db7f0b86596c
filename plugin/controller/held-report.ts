/**
 * Doubtful holds, made visible: an address the controller keeps although it
 * cannot tell that its pod still uses it (judge-claim.ts `held`) is a leak
 * someone must be able to see and fix. Each full scan counts them
 * (`berth_addresses_held{reason}`); one found held for the same reason by two
 * scans in a row (a DEL about to arrive is not worth an alarm) gets one log
 * line and one Warning Event on its pod, once.
 */
import type { HeldKind } from "../reconcile/judge-claim.ts";

export class HeldReport {
  private previous = new Map<string, HeldKind>();
  private current = new Map<string, HeldKind>();
  private reported = new Map<string, HeldKind>();

  /** A new full scan begins. */
  begin(): void {
    this.current = new Map();
  }

  /** The scan found `claim` held for `kind`; returns whether it is due to be reported now. */
  note(claim: string, kind: HeldKind): boolean {
    this.current.set(claim, kind);
    return this.previous.get(claim) === kind && this.reported.get(claim) !== kind;
  }

  /** It was reported. */
  reportedNow(claim: string, kind: HeldKind): void {
    this.reported.set(claim, kind);
  }

  /** The scan is over: returns the count per kind. A claim no longer held may be reported again if it is held again later. */
  end(): Map<HeldKind, number> {
    this.previous = this.current;
    for (const [claim, kind] of this.reported) if (this.current.get(claim) !== kind) this.reported.delete(claim);
    const counts = new Map<HeldKind, number>();
    for (const kind of this.current.values()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
    return counts;
  }
}
