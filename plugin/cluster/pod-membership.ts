/**
 * StatefulSet membership as an ADD establishes it: a fact of the pod, not of
 * the network being added or of the last ADD.
 */

import { ordinalOf } from "../ipam/pod-identity.ts";
import type { EndpointObject, KubeApi, PodObject, StatefulSetObject } from "../kube/kube-api.ts";
import { hasController, incarnationUid, type Membership, verifyMembership } from "./statefulset.ts";

export interface PodMembership {
  member?: Membership;
  /** The live StatefulSet, when the owner reference was verified against it. */
  sts?: StatefulSetObject;
  /** Set when the membership is the one this incarnation had before it was orphaned. */
  orphaned?: boolean;
}

/**
 * The pod's StatefulSet membership:
 * - its controller owner reference, when the reference's UID is the live
 *   StatefulSet's (a reference anyone could have written counts for nothing
 *   until then);
 * - else, for a pod with no controller at all (orphaned, as `kubectl delete
 *   sts --cascade=orphan` leaves a set's pods so that the set can be
 *   re-created with changed immutable fields), the StatefulSet its own
 *   incarnation was a member of, as its endpoint recorded: orphaning does not
 *   end the binding, and the re-created set adopts the pod again.
 */
export async function podMembership(api: KubeApi, pod: PodObject, endpoint: EndpointObject | undefined): Promise<PodMembership> {
  const verified = await verifyMembership(pod, (ns, name) => api.getStatefulSet(ns, name));
  if (verified) return verified;
  if (hasController(pod) || !endpoint || endpoint.spec.ownerControllerType !== "StatefulSet" || !endpoint.spec.ownerControllerName) return {};
  const ownEntries = endpoint.spec.ips.some((i) => (i.podUID ?? endpoint.spec.podUID) === incarnationUid(pod));
  const ordinal = ordinalOf(pod.metadata.name, endpoint.spec.ownerControllerName);
  if (!ownEntries || ordinal === undefined) return {};
  return { member: { statefulSet: endpoint.spec.ownerControllerName, ordinal }, orphaned: true };
}
