/**
 * Who a pod is, read from the API objects (never guessed from names): its
 * incarnation (the UID the runtime passes), whether it is a static pod, and
 * its StatefulSet membership and replica range.
 */

import { ordinalOf } from "../ipam/pod-identity.ts";
import { RECLAIM_ANNOTATION } from "../kube/crd.ts";
import type { PodObject, StatefulSetObject } from "../kube/kube-api.ts";

export interface Membership {
  statefulSet: string;
  ordinal: number;
}

/** A membership as the pod's controller owner reference claims it, with the UID that reference names. */
export interface ClaimedMembership extends Membership {
  ownerUid: string;
}

/**
 * The pod's StatefulSet and ordinal as its controller owner reference says;
 * undefined for any other pod. Anyone who may create pods may write an owner
 * reference: it counts only once `verifyMembership` has matched its UID with
 * the live StatefulSet's.
 */
export function statefulSetMembership(pod: PodObject): ClaimedMembership | undefined {
  const owner = pod.metadata.ownerReferences?.find((o) => o.controller);
  if (owner?.kind !== "StatefulSet" || !owner.apiVersion.startsWith("apps/")) return undefined;
  const ordinal = ordinalOf(pod.metadata.name, owner.name);
  return ordinal === undefined ? undefined : { statefulSet: owner.name, ordinal, ownerUid: owner.uid };
}

/**
 * The membership, if the owner reference names the StatefulSet that lives
 * now (same UID), with that StatefulSet; undefined otherwise (no owner, a
 * forged or stale reference, a set that is gone).
 */
export async function verifyMembership(
  pod: PodObject,
  getStatefulSet: (ns: string, name: string) => Promise<StatefulSetObject | undefined>,
): Promise<{ member: Membership; sts: StatefulSetObject } | undefined> {
  const claimed = statefulSetMembership(pod);
  if (!claimed) return undefined;
  const sts = await getStatefulSet(pod.metadata.namespace ?? "", claimed.statefulSet);
  if (!sts || !claimed.ownerUid || sts.metadata.uid !== claimed.ownerUid) return undefined;
  return { member: { statefulSet: claimed.statefulSet, ordinal: claimed.ordinal }, sts };
}

/** Whether the pod has a controller owner reference at all (an orphaned StatefulSet pod has none). */
export function hasController(pod: PodObject): boolean {
  return !!pod.metadata.ownerReferences?.some((o) => o.controller);
}

/**
 * Whether the ordinal is inside the set's current range:
 * [start, start + replicas), with `spec.ordinals.start` (default 0) and
 * `spec.replicas` (default 1, as the API server defaults it).
 */
export function ordinalInRange(sts: StatefulSetObject, ordinal: number): boolean {
  if (sts.metadata.deletionTimestamp) return false;
  const start = sts.spec?.ordinals?.start ?? 0;
  const replicas = sts.spec?.replicas ?? 1;
  return ordinal >= start && ordinal < start + replicas;
}

/** Whether the set (or its pod template) asks to keep addresses across scale-down: `ipam.berth.dev/reclaim: Retain`. */
export function retained(sts: StatefulSetObject): boolean {
  const value = sts.metadata.annotations?.[RECLAIM_ANNOTATION] ?? sts.spec?.template?.metadata?.annotations?.[RECLAIM_ANNOTATION];
  return value?.toLowerCase() === "retain";
}

/** Whether a member's binding stays: inside the replica range, or retained while the set exists. */
export function stsKeeps(sts: StatefulSetObject, ordinal: number): boolean {
  if (sts.metadata.deletionTimestamp) return false;
  return ordinalInRange(sts, ordinal) || retained(sts);
}

/** Kubernetes' annotation on a static pod's mirror: the kubelet's UID for the pod, which CNI_ARGS carries. */
export const CONFIG_MIRROR_ANNOTATION = "kubernetes.io/config.mirror";

/**
 * Whether `uid` (from CNI_ARGS, or a claim) names this pod object's
 * incarnation. For a static pod the kubelet passes its config hash, which the
 * API server's mirror pod carries in an annotation, not as its UID.
 */
export function isIncarnation(pod: PodObject, uid: string): boolean {
  return pod.metadata.uid === uid || pod.metadata.annotations?.[CONFIG_MIRROR_ANNOTATION] === uid;
}

/**
 * The UID berth records for the pod's incarnation: the kubelet's for a
 * static pod (the same across mirror pods: deleting the mirror does not stop
 * the static pod, and the kubelet recreates it with a new UID), else the pod's.
 */
export function incarnationUid(pod: PodObject): string {
  return pod.metadata.annotations?.[CONFIG_MIRROR_ANNOTATION] || pod.metadata.uid!;
}

/** Whether the pod object is a static pod's mirror. */
export function isStaticPod(pod: PodObject): boolean {
  return !!pod.metadata.annotations?.[CONFIG_MIRROR_ANNOTATION];
}
