/**
 * This node's leases that no claim stands behind any more, which would keep
 * their addresses off the node's candidates forever:
 * - a pending lease of an ADD that is over (SIGKILLed after writing it, and
 *   its attachment never saw a DEL or GC: the kubelet retried with a new
 *   container ID), once older than its ADD's deadline;
 * - an active lease of a sandbox that went without a DEL (its pod removed
 *   while its node was cut off, say), whose claim the controller has since
 *   released, or another pod now holds.
 * The API server decides who has an address; these leases only keep this
 * node's own ADDs off it, so dropping them never hands out an address its
 * claim does not allow.
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
 * Drops this node's leases of `pool` (other attachments') that no claim
 * stands behind: pending ones past their ADD's deadline, and active ones the
 * fresh hints (a LIST of the pool's claims, just taken) no longer show
 * claimed; each confirmed by a GET of its claim, which must be gone or held
 * by another container or pod. A lease whose claim its own container still
 * holds is kept, claim and all: the controller (or that attachment's DEL/GC)
 * judges it. Called only when the pool has no candidate left as this node
 * sees it, after a LIST: the ordinary ADD sends no extra request. Returns how
 * many leases it dropped.
 */
export async function expireStaleLeases(s: Claiming, pool: Pool): Promise<number> {
  const { store, api, log } = s;
  const windowMs = s.holder.addDeadlineSeconds * 1000;
  const now = Date.now();
  const suspects = store
    .leasesOfPool(s.conf.name, pool.name)
    .filter((l) => !(l.container_id === s.containerId && l.ifname === s.ifname))
    .filter((l) => (l.state === "pending" ? pendingPastDeadline(l, windowMs, now) : !store.hints.has(pool.name, l.address)));
  let dropped = 0;
  for (const lease of suspects) {
    s.deadline.check();
    const claim = await api.getClaim(claimNameOf(lease.address));
    const fields = {
      address: lease.address,
      pool: lease.pool,
      state: lease.state,
      container: lease.container_id,
      ifname: lease.ifname,
      pod: `${lease.pod_namespace}/${lease.pod_name}`,
      since: lease.created_at,
    };
    if (claim && leaseHoldsClaim(claim, lease)) {
      if (lease.state === "pending") log.info("interrupted ADD's pending lease kept: its container still holds the claim", fields);
      continue;
    }
    // A cache write: a lease that comes back after a power cut is judged again the same way.
    const gone = store.cacheWrite(() => {
      const deleted = store.deleteLeaseIn(lease.id, lease.state);
      if (deleted) store.hints.set(pool.name, lease.address, !!claim);
      return deleted;
    });
    if (!gone) continue;
    dropped++;
    log.info(lease.state === "pending" ? "interrupted ADD's pending lease expired" : "stale local lease dropped: its claim is gone or another pod's", {
      ...fields,
      claim: claim ? `held by pod ${claim.spec.podNamespace}/${claim.spec.podName} container ${claim.spec.containerID}` : "none",
    });
  }
  return dropped;
}
