/**
 * Pending leases left by ADDs that are over: an ADD SIGKILLed after writing
 * its pending lease, whose attachment never saw a DEL or GC (the kubelet
 * retried with a new container ID), would keep its address off this node's
 * candidates forever. Such a lease expires once it is older than its ADD's
 * deadline and no claim stands behind it.
 */
import type { Lease } from "../../store/lease-store.ts";
import { mayBeInFlight } from "../ipam/in-flight.ts";
import type { Pool } from "../ipam/pool.ts";
import type { ClaimObject } from "../kube/kube-api.ts";
import type { Claiming } from "./add-state.ts";
import { claimNameOf } from "./claims.ts";

/** Whether `claim` is the one the ADD that wrote `lease` took: same pod, container and interface. */
export function leaseHoldsClaim(claim: ClaimObject, lease: Lease): boolean {
  const c = claim.spec;
  return c.podNamespace === lease.pod_namespace && c.podName === lease.pod_name && c.containerID === lease.container_id && c.interface === lease.ifname;
}

/**
 * Whether `lease` is pending and older than its ADD's deadline (`windowMs`,
 * claimDeadlineSeconds: the ADD's budget, a request in flight, and slack), so
 * its ADD cannot still be taking addresses: it died, or it committed (then
 * its claim exists and names it, which the caller checks).
 */
export function pendingPastDeadline(lease: Lease, windowMs: number, now = Date.now()): boolean {
  return lease.state === "pending" && !mayBeInFlight(lease.created_at, windowMs, now);
}

/**
 * Drops this node's pending leases of `pool` (other attachments') that are
 * past their ADD's deadline and have no claim behind them: the address's
 * claim is gone, or held by another container or pod. A lease whose claim
 * its own container still holds is kept, claim and all: the controller (or
 * that attachment's DEL/GC) judges it. Costs one local query, and one GET
 * per old pending lease; called only when the pool has no candidate left as
 * this node sees it, so the ordinary ADD sends no extra request. Returns
 * how many leases it dropped.
 */
export async function expireStalePending(s: Claiming, pool: Pool): Promise<number> {
  const { store, api, log } = s;
  const windowMs = s.holder.addDeadlineSeconds * 1000;
  const now = Date.now();
  const old = store
    .pendingLeases(s.conf.name, pool.name)
    .filter((l) => !(l.container_id === s.containerId && l.ifname === s.ifname) && pendingPastDeadline(l, windowMs, now));
  let dropped = 0;
  for (const lease of old) {
    s.deadline.check();
    const claim = await api.getClaim(claimNameOf(lease.address));
    const fields = {
      address: lease.address,
      pool: lease.pool,
      container: lease.container_id,
      ifname: lease.ifname,
      pod: `${lease.pod_namespace}/${lease.pod_name}`,
      since: lease.created_at,
    };
    if (claim && leaseHoldsClaim(claim, lease)) {
      log.info("interrupted ADD's pending lease kept: its container still holds the claim", fields);
      continue;
    }
    // A cache write: a lease that comes back after a power cut is judged again the same way.
    const gone = store.cacheWrite(() => {
      const deleted = store.deletePendingLease(lease.id);
      if (deleted) store.hints.set(pool.name, lease.address, !!claim);
      return deleted;
    });
    if (!gone) continue;
    dropped++;
    log.info("interrupted ADD's pending lease expired", {
      ...fields,
      claim: claim ? `held by pod ${claim.spec.podNamespace}/${claim.spec.podName} container ${claim.spec.containerID}` : "none",
    });
  }
  return dropped;
}
