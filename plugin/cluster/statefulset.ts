/** StatefulSet membership and replica range, read from the API objects (never guessed from names). */
import type { PodObject, StatefulSetObject } from "../kube/kube-api.ts";
import { RECLAIM_ANNOTATION } from "../kube/crd.ts";
import { ordinalOf } from "../ipam/pod-identity.ts";

export interface Membership {
  statefulSet: string;
  ordinal: number;
}

/** The pod's StatefulSet and ordinal, from its controller owner reference; undefined for any other pod. */
export function statefulSetMembership(pod: PodObject): Membership | undefined {
  const owner = pod.metadata.ownerReferences?.find((o) => o.controller);
  if (owner?.kind !== "StatefulSet" || !owner.apiVersion.startsWith("apps/")) return undefined;
  const ordinal = ordinalOf(pod.metadata.name, owner.name);
  return ordinal === undefined ? undefined : { statefulSet: owner.name, ordinal };
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
 * Whether `uid` (from CNI_ARGS) names this pod object's incarnation. For a
 * static pod the kubelet passes its config hash, which the API server's
 * mirror pod carries in an annotation, not as its UID.
 */
export function isIncarnation(pod: PodObject, uid: string): boolean {
  return pod.metadata.uid === uid || pod.metadata.annotations?.[CONFIG_MIRROR_ANNOTATION] === uid;
}
