/**
 * The controller's one decision: may this claim's address be released?
 * It reads the pod, the StatefulSet and the endpoint through a Reader, which
 * is either a snapshot (a full scan's lists) or the live API server; nothing
 * is released on a snapshot's word: the caller re-judges live first.
 */
import type { ClaimObject, EndpointObject, PodObject, StatefulSetObject } from "../kube/kube-api.ts";
import { retained, stsKeeps } from "../cluster/statefulset.ts";
import { statefulSetMembership } from "../cluster/statefulset.ts";
import { ordinalOf } from "../ipam/pod-identity.ts";

export interface Reader {
  getPod(ns: string, name: string): Promise<PodObject | undefined>;
  getStatefulSet(ns: string, name: string): Promise<StatefulSetObject | undefined>;
  getEndpoint(ns: string, name: string): Promise<EndpointObject | undefined>;
}

export type Verdict =
  | { release: false; reason: string }
  | { release: true; reason: ReleaseReason; detail: string; pod?: PodObject; statefulSet?: StatefulSetObject };

export type ReleaseReason = "pod-deleted" | "pod-terminated" | "pod-replaced" | "scaled-down" | "statefulset-deleted" | "half-finished-add";

export interface JudgeOptions {
  /** Claims not bound in an endpoint after this long are a half-finished ADD. */
  addTimeoutMs: number;
  /** Extra time granted after a pod's deletion deadline before its address is taken back. */
  graceMarginMs: number;
  now: number;
}

export async function judgeClaim(read: Reader, claim: ClaimObject, opts: JudgeOptions): Promise<Verdict> {
  const { podNamespace: ns, podName: name, podUID: uid, address } = claim.spec;
  const ep = await read.getEndpoint(ns, name);
  const bound = !!ep?.spec.ips.some((i) => [i.ipv4, i.ipv6].some((c) => c?.split("/")[0] === address));
  const age = opts.now - Date.parse(claim.spec.claimedAt);
  if (!bound && age > opts.addTimeoutMs) {
    // The Event goes on the pod when it is still the one the claim was made for.
    const owner = await read.getPod(ns, name);
    return {
      release: true, reason: "half-finished-add",
      detail: `claimed ${Math.round(age / 1000)} s ago by container ${claim.spec.containerID} on ${claim.spec.node} and never bound`,
      ...(owner && owner.metadata.uid === uid ? { pod: owner } : {}),
    };
  }
  if (!bound) return { release: false, reason: "ADD in progress" };

  const pod = await read.getPod(ns, name);
  const setName = claim.spec.statefulSet;
  const ordinal = setName ? ordinalOf(name, setName) : undefined;
  const stsVerdict = async (otherwise: Verdict): Promise<Verdict> => {
    if (!setName || ordinal === undefined) return otherwise;
    const sts = await read.getStatefulSet(ns, setName);
    if (!sts || sts.metadata.deletionTimestamp) {
      return { release: true, reason: "statefulset-deleted", detail: `StatefulSet ${ns}/${setName} is ${sts ? "being deleted" : "gone"}`, ...(pod ? { pod } : {}) };
    }
    if (stsKeeps(sts, ordinal)) return { release: false, reason: retained(sts) ? "retained by ipam.berth.dev/reclaim" : "StatefulSet member in range" };
    return { release: true, reason: "scaled-down", detail: `ordinal ${ordinal} is outside StatefulSet ${ns}/${setName}'s ${sts.spec?.replicas ?? 1} replicas`, statefulSet: sts, ...(pod ? { pod } : {}) };
  };

  if (pod && pod.metadata.uid === uid) {
    const phase = pod.status?.phase;
    const deadline = pod.metadata.deletionTimestamp ? Date.parse(pod.metadata.deletionTimestamp) + opts.graceMarginMs : undefined;
    if (phase === "Succeeded" || phase === "Failed") return stsVerdict({ release: true, reason: "pod-terminated", detail: `pod ${ns}/${name} is ${phase}`, pod });
    if (deadline !== undefined && opts.now > deadline) return stsVerdict({ release: true, reason: "pod-terminated", detail: `pod ${ns}/${name} is still terminating past its grace period`, pod });
    return { release: false, reason: "pod runs" };
  }
  if (pod) {
    // Another pod of this name now. A StatefulSet member inherits the binding; anything else does not.
    if (setName && statefulSetMembership(pod)?.statefulSet === setName) return stsVerdict({ release: false, reason: "StatefulSet member" });
    return { release: true, reason: "pod-replaced", detail: `pod ${ns}/${name} now has UID ${pod.metadata.uid}, the claim was made for ${uid}`, pod };
  }
  return stsVerdict({ release: true, reason: "pod-deleted", detail: `pod ${ns}/${name} (UID ${uid}) is gone` });
}
