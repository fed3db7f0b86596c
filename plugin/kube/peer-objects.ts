/**
 * The records other IPAMs leave in the API server, as `berth adopt` reads
 * them: Whereabouts v0.6.x (`whereabouts.cni.cncf.io/v1alpha1`) and
 * Spiderpool v2beta1 (`spiderpool.spidernet.io`). Only the fields adopt
 * reads; the server's JSON may carry more.
 */
import type { ObjectMeta } from "./kube-api.ts";

export const WHEREABOUTS_GROUP = "whereabouts.cni.cncf.io";
export const WHEREABOUTS_VERSION = "v1alpha1";

/** A Whereabouts IPPool: `allocations` maps an offset (decimal) from `range`'s network address to its holder. */
export interface WhereaboutsPool {
  metadata: ObjectMeta;
  spec: { range: string; allocations?: Record<string, { id: string; podref?: string }> };
}

/** A Whereabouts OverlappingRangeIPReservation, named after its address. */
export interface OverlappingReservation {
  metadata: ObjectMeta;
  spec: { containerid: string; podref?: string };
}

/** One interface of a SpiderEndpoint's `status.current.ips`. */
export interface SpiderEndpointIp {
  interface: string;
  ipv4?: string;
  ipv4Pool?: string;
  ipv4Gateway?: string;
  ipv6?: string;
  ipv6Pool?: string;
  ipv6Gateway?: string;
}

/** A SpiderEndpoint (namespaced, named as its pod); kept for a StatefulSet member across its pod's deletion. */
export interface SpiderEndpoint {
  metadata: ObjectMeta;
  status?: {
    current?: { uid?: string; node?: string; ips?: SpiderEndpointIp[] };
    ownerControllerType?: string;
    ownerControllerName?: string;
  };
}

/** A SpiderReservedIP: addresses (single, or "first-last") no pool may hand out. */
export interface SpiderReservedIP {
  metadata: ObjectMeta;
  spec?: { ipVersion?: number; ips?: string[] };
}

/** One entry of a SpiderIPPool's `status.allocatedIPs` (a JSON string keyed by address): Spiderpool's PoolIPAllocation. */
export interface SpiderAllocation {
  pod?: string;
  podUid?: string;
}
