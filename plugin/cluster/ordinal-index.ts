/** Where a StatefulSet member's address sits in its pools, for ordinal-ordered addresses. */
import { IpamError } from "../ipam/ipam-error.ts";
import type { StatefulSetObject } from "../kube/kube-api.ts";
import type { Membership } from "./statefulset.ts";

/**
 * The member's position in its pools: its ordinal counted from the set's
 * `spec.ordinals.start` (0 when absent). A pod whose ordinal lies below the
 * start (left from before `start` was raised) has no position: pools are
 * never counted backwards, which would reach below the pool's first address
 * (the gateway, say).
 */
export function ordinalIndex(member: Membership, sts: StatefulSetObject | undefined, pod: string): number {
  const start = sts?.spec?.ordinals?.start ?? 0;
  if (member.ordinal < start) {
    throw new IpamError(
      "no-pool",
      `ordinal-ordered pod ${pod} has ordinal ${member.ordinal}, below StatefulSet ${member.statefulSet}'s spec.ordinals.start ${start}: it has no address in its pools`,
    );
  }
  return member.ordinal - start;
}
