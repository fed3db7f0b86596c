/**
 * One active controller at a time, through a coordination.k8s.io/v1 Lease:
 * the holder renews it; any other replica takes it once it has not been
 * renewed for its duration. Every write is optimistic (resourceVersion), so
 * two replicas never both believe they won.
 */
import type { ControllerApi, LeaseObject } from "../kube/controller-api.ts";

export class LeaderElector {
  private leader = false;

  constructor(
    private readonly api: ControllerApi,
    readonly namespace: string,
    readonly name: string,
    readonly identity: string,
    readonly durationSeconds = 8,
  ) {}

  get isLeader(): boolean {
    return this.leader;
  }

  /** One round: acquire, renew, or observe. Returns whether this replica leads now. */
  async tick(): Promise<boolean> {
    try {
      this.leader = await this.round();
    } catch {
      this.leader = false; // unreachable or lost a race: act as a follower until the next round
    }
    return this.leader;
  }

  private async round(): Promise<boolean> {
    const now = new Date().toISOString();
    const lease = await this.api.getLease(this.namespace, this.name);
    if (!lease) {
      await this.api.createLease({
        metadata: { name: this.name, namespace: this.namespace },
        spec: { holderIdentity: this.identity, leaseDurationSeconds: this.durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    if (spec.holderIdentity === this.identity) {
      await this.api.updateLease({ ...lease, spec: { ...spec, renewTime: now } });
      return true;
    }
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = Date.now() > renewed + (spec.leaseDurationSeconds ?? this.durationSeconds) * 1000;
    if (!spec.holderIdentity || expired) {
      const next: LeaseObject = {
        ...lease,
        spec: { holderIdentity: this.identity, leaseDurationSeconds: this.durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 },
      };
      await this.api.updateLease(next);
      return true;
    }
    return false;
  }

  /** Gives the lease up on a clean shutdown, so a standby takes over at once. */
  async release(): Promise<void> {
    if (!this.leader) return;
    const lease = await this.api.getLease(this.namespace, this.name).catch(() => undefined);
    if (lease?.spec.holderIdentity === this.identity) {
      await this.api.updateLease({ ...lease, spec: { ...lease.spec, holderIdentity: "", renewTime: new Date(0).toISOString() } }).catch(() => undefined);
    }
    this.leader = false;
  }
}
