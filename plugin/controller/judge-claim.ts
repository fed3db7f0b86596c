/**
 * The controller's one decision: may this claim's address be released?
 * It reads the pod, the StatefulSet, the endpoint and the node through a
 * Reader, which is either a snapshot (a full scan's lists) or the live API
 * server; nothing is released on a snapshot's word: the caller re-judges
 * live first. Every time compared is the API server's (creation and update
 * times, deletion deadlines), never a node's.
 */
import type { NodeObject } from "../kube/controller-api.ts";
import type { ClaimObject, EndpointObject, PodObject, StatefulSetObject } from "../kube/kube-api.ts";
import { isIncarnation, retained, statefulSetMembership, stsKeeps } from "../cluster/statefulset.ts";
import { ordinalOf } from "../ipam/pod-identity.ts";
import { addWindowMs, lastWriteMs } from "./claim-age.ts";

export interface Reader {
  getPod(ns: string, name: string): Promise<PodObject | undefined>;
  getStatefulSet(ns: string, name: string): Promise<StatefulSetObject | undefined>;
  getEndpoint(ns: string, name: string): Promise<EndpointObject | undefined>;
  getNode(name: string): Promise<NodeObject | undefined>;
}

export type Verdict =
  | { release: false; reason: string }
  | { release: true; reason: ReleaseReason; detail: string; pod?: PodObject; statefulSet?: StatefulSetObject };

export type ReleaseReason = "pod-deleted" | "pod-terminated" | "pod-replaced" | "scaled-down" | "statefulset-deleted" | "half-finished-add";

export interface JudgeOptions {
  /** --add-timeout-seconds: the least time an unbound claim is left to its ADD (a claim's recorded deadline may be longer). */
  addTimeoutMs: number;
  /** Extra time granted after a pod's deletion deadline before its address is taken back. */
  graceMarginMs: number;
  /** The API server's time now (ms since the epoch). */
  now: number;
  /** Release a Terminating pod past its grace period even when its node is not Ready (off: kept until the pod object is gone). */
  releaseTerminatingOnUnreadyNodes?: boolean;
}

/** "Ready", "NotReady" (condition False), "Unknown" (condition Unknown or absent) or "missing" (no Node object). */
export type NodeState = "Ready" | "NotReady" | "Unknown" | "missing";

export function nodeState(node: NodeObject | undefined): NodeState {
  if (!node) return "missing";
  const ready = node.status?.conditions?.find((c) => c.type === "Ready")?.status;
  return ready === "True" ? "Ready" : ready === "False" ? "NotReady" : "Unknown";
}

export async function judgeClaim(read: Reader, claim: ClaimObject, opts: JudgeOptions): Promise<Verdict> {
  const { podNamespace: ns, podName: name, podUID: uid, address } = claim.spec;
  const ep = await read.getEndpoint(ns, name);
  const bound = !!ep?.spec.ips.some((i) => [i.ipv4, i.ipv6].some((c) => c?.split("/")[0] === address));
  if (!bound) {
    // An ADD in progress, or one that never finished. Its age is the server's: since the claim's last write.
    const written = lastWriteMs(claim);
    const window = addWindowMs(claim, opts.addTimeoutMs);
    if (written === undefined || opts.now - written <= window) return { release: false, reason: "ADD in progress" };
    // The Event goes on the pod when it is still the one the claim was made for (not needed to decide: a
    // pod that cannot be read gets no Event).
    const owner = await read.getPod(ns, name).catch(() => undefined);
    return {
      release: true,
      reason: "half-finished-add",
      detail: `last written ${Math.round((opts.now - written) / 1000)} s ago (by the API server's clock; its ADD had ${Math.round(window / 1000)} s) by container ${claim.spec.containerID} on ${claim.spec.node} and never bound`,
      ...(owner && isIncarnation(owner, uid) ? { pod: owner } : {}),
    };
  }

  const pod = await read.getPod(ns, name);
  const setName = claim.spec.statefulSet;
  const ordinal = setName ? ordinalOf(name, setName) : undefined;
  const stsVerdict = async (otherwise: Verdict): Promise<Verdict> => {
    if (!setName || ordinal === undefined) return otherwise;
    const sts = await read.getStatefulSet(ns, setName);
    if (!sts || sts.metadata.deletionTimestamp) {
      return {
        release: true,
        reason: "statefulset-deleted",
        detail: `StatefulSet ${ns}/${setName} is ${sts ? "being deleted" : "gone"}`,
        ...(pod ? { pod } : {}),
      };
    }
    if (stsKeeps(sts, ordinal)) return { release: false, reason: retained(sts) ? "retained by ipam.berth.dev/reclaim" : "StatefulSet member in range" };
    return {
      release: true,
      reason: "scaled-down",
      detail: `ordinal ${ordinal} is outside StatefulSet ${ns}/${setName}'s ${sts.spec?.replicas ?? 1} replicas`,
      statefulSet: sts,
      ...(pod ? { pod } : {}),
    };
  };

  // A static pod's claim carries the kubelet's UID, which its mirror pod keeps in an annotation, not as its UID.
  if (pod && isIncarnation(pod, uid)) {
    const phase = pod.status?.phase;
    const deadline = pod.metadata.deletionTimestamp ? Date.parse(pod.metadata.deletionTimestamp) + opts.graceMarginMs : undefined;
    if (phase === "Succeeded" || phase === "Failed")
      return stsVerdict({ release: true, reason: "pod-terminated", detail: `pod ${ns}/${name} is ${phase}`, pod });
    if (deadline !== undefined && opts.now > deadline) {
      // Past its grace period, the kubelet should have stopped it: unless its node is cut off, where it may still run.
      const nodeName = pod.spec?.nodeName || claim.spec.node;
      const state = nodeState(await read.getNode(nodeName));
      if (state !== "Ready" && !opts.releaseTerminatingOnUnreadyNodes) {
        return { release: false, reason: `terminating on node ${nodeName}, which is ${state === "missing" ? "not found" : state}: it may still run there` };
      }
      const where = state === "Ready" ? "" : ` on node ${nodeName} (${state === "missing" ? "not found" : state}; --release-terminating-on-unready-nodes)`;
      return stsVerdict({ release: true, reason: "pod-terminated", detail: `pod ${ns}/${name} is still terminating past its grace period${where}`, pod });
    }
    return { release: false, reason: "pod runs" };
  }
  if (pod) {
    // Another pod of this name now. A StatefulSet member inherits the binding; anything else does not.
    if (setName && statefulSetMembership(pod)?.statefulSet === setName) return stsVerdict({ release: false, reason: "StatefulSet member" });
    return { release: true, reason: "pod-replaced", detail: `pod ${ns}/${name} now has UID ${pod.metadata.uid}, the claim was made for ${uid}`, pod };
  }
  return stsVerdict({ release: true, reason: "pod-deleted", detail: `pod ${ns}/${name} (UID ${uid}) is gone` });
}
