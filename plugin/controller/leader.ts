/**
 * One active controller at a time, through a coordination.k8s.io/v1 Lease,
 * the way client-go's leader election does it:
 *
 * - The holder renews on its own timer (every `retryMs`), whatever else the
 *   controller is doing, and leads only until `renewDeadlineMs` after the
 *   start of its last successful renewal (local monotonic clock). A holder
 *   that cannot renew in time stops acting before anyone may take over.
 * - A standby takes the lease when it has seen no change to it (no new
 *   resourceVersion) for the lease's duration, measured on its own monotonic
 *   clock from the moment it observed the last change; never by comparing
 *   the holder's renewTime with its own clock (the clocks may disagree).
 *
 * Every write is optimistic (resourceVersion), so two replicas never both
 * believe they won; renewDeadline < duration, so the old holder has stopped
 * before a standby can have waited out the duration.
 */
import type { ControllerApi, LeaseObject } from "../kube/controller-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { brand, isKind } from "../support/errors.ts";

/** A write attempted while this replica does not (or no longer) hold the lease. */
export class NotLeaderError extends Error {
  static readonly brand = "NotLeaderError";
  constructor(what: string) {
    super(`not the leader: ${what} not sent`);
    brand(this, NotLeaderError.brand);
  }
}

export interface LeaderTiming {
  /** Lease duration written into the Lease. */
  durationSeconds: number;
  /** The holder acts until this long after the start of its last successful renewal. */
  renewDeadlineMs: number;
  /** Time between rounds. */
  retryMs: number;
}

export const DEFAULT_LEADER_TIMING: LeaderTiming = { durationSeconds: 8, renewDeadlineMs: 5000, retryMs: 2000 };

export class LeaderElector {
  private holding = false;
  private validUntil = 0;
  /** Incremented each time this replica starts a new period of leadership. */
  private termNo = 0;
  private observed?: { version: string; at: number };

  constructor(
    private readonly api: ControllerApi,
    readonly namespace: string,
    readonly name: string,
    readonly identity: string,
    readonly timing: LeaderTiming = DEFAULT_LEADER_TIMING,
    private readonly mono: () => number = () => performance.now(),
  ) {}

  /** Whether this replica leads right now: it holds the lease and renewed it recently enough. */
  get isLeader(): boolean {
    return this.holding && this.mono() < this.validUntil;
  }

  /** The current period of leadership (a new number after every gap, however short). */
  get term(): number {
    return this.termNo;
  }

  /** Throws NotLeaderError unless this replica leads now (and, if given, still in `term`). */
  check(what: string, term?: number): void {
    if (!this.isLeader || (term !== undefined && term !== this.termNo)) throw new NotLeaderError(what);
  }

  /** One round: acquire, renew, or observe. Returns whether this replica leads now. */
  async tick(): Promise<boolean> {
    const started = this.mono();
    const continuing = this.isLeader;
    try {
      if (await this.round()) {
        if (!continuing) this.termNo++;
        this.holding = true;
        this.validUntil = started + this.timing.renewDeadlineMs;
      } else {
        this.holding = false;
      }
    } catch (err) {
      // Someone else wrote the lease: lost. Unreachable or slow: keep leading until renewDeadline runs out.
      if (isKind(err, KubeConflictError)) this.holding = false;
    }
    return this.isLeader;
  }

  private async round(): Promise<boolean> {
    const now = new Date().toISOString();
    const lease = await this.api.getLease(this.namespace, this.name);
    const seenAt = this.mono();
    if (!lease) {
      await this.api.createLease({
        metadata: { name: this.name, namespace: this.namespace },
        spec: { holderIdentity: this.identity, leaseDurationSeconds: this.timing.durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
      });
      return true;
    }
    const version = lease.metadata.resourceVersion ?? JSON.stringify(lease.spec);
    if (this.observed?.version !== version) this.observed = { version, at: seenAt };
    const spec = lease.spec ?? {};
    if (spec.holderIdentity === this.identity) {
      const renewed = await this.api.updateLease({ ...lease, spec: { ...spec, renewTime: now } });
      this.observed = { version: renewed.metadata.resourceVersion ?? version, at: this.mono() };
      return true;
    }
    const duration = (spec.leaseDurationSeconds ?? this.timing.durationSeconds) * 1000;
    const expired = this.mono() > this.observed.at + duration;
    if (!spec.holderIdentity || expired) {
      const next: LeaseObject = {
        ...lease,
        spec: {
          holderIdentity: this.identity,
          leaseDurationSeconds: this.timing.durationSeconds,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: (spec.leaseTransitions ?? 0) + 1,
        },
      };
      const taken = await this.api.updateLease(next);
      this.observed = { version: taken.metadata.resourceVersion ?? version, at: this.mono() };
      return true;
    }
    return false;
  }

  /** Gives the lease up on a clean shutdown, so a standby takes over at once. */
  async release(): Promise<void> {
    const wasHolding = this.holding;
    this.holding = false;
    if (!wasHolding) return;
    const lease = await this.api.getLease(this.namespace, this.name).catch(() => undefined);
    if (lease?.spec.holderIdentity === this.identity) {
      await this.api.updateLease({ ...lease, spec: { ...lease.spec, holderIdentity: "", renewTime: new Date(0).toISOString() } }).catch(() => undefined);
    }
  }
}
