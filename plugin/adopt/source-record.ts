/** What `berth adopt` reads from another IPAM: one address in use, and what that IPAM knows of its holder. */
import type { Family } from "../ipam/ip.ts";

/** The IPAMs adopt reads (`--from`), also the value of crd.ts ADOPTED_FROM_LABEL. */
export const SOURCES = ["whereabouts", "spiderpool"] as const;
export type Source = (typeof SOURCES)[number];

export interface SourceRecord {
  address: string;
  family: Family;
  namespace: string;
  name: string;
  /** The pod incarnation the record was written for (Spiderpool records it; Whereabouts does not). */
  podUid?: string;
  /** The sandbox that took it (Whereabouts' allocation id; Spiderpool records none). */
  containerId?: string;
  /** The pod's interface, when the record says (SpiderEndpoint). */
  interface?: string;
  node?: string;
  /** The StatefulSet the record says the pod belongs to (SpiderEndpoint owner), for a pod that is gone. */
  statefulSet?: string;
  /** Where it was read, for the plan's reasons ("IPPool kube-system/10.6.195.0-24"). */
  from: string;
}

/** An address a SpiderReservedIP keeps out of every pool. */
export interface Reserved {
  address: string;
  by: string;
}

/** Everything read from the source. */
export interface SourceRead {
  records: SourceRecord[];
  reserved: Reserved[];
  /** Ranges (CIDR) the source allocates from, for pools that would be needed (Whereabouts). */
  ranges: { range: string; from: string }[];
}
