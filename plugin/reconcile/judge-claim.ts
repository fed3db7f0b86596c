/**
 * The controller's one decision: may this claim's address go to another pod?
 * Only when its holder can no longer be using it: the holder's pod object is
 * gone (or replaced by another incarnation of the name), or, for a static
 * pod, its node is gone. A DEL or GC that ran has already released it
 * itself. Everything else holds the address: a pod that runs, one still
 * Terminating however long past its grace period, a Succeeded or Failed pod
 * whose sandbox may still hold the address, a running pod whose endpoint was
 * lost. The doubtful holds (`held`) are reported, so that a leak is seen.
 *
 * It reads the pod, StatefulSet, endpoint and node through a Reader: a
 * snapshot (a full scan's lists) or the live API server; nothing is released
 * on a snapshot's word, the caller re-judges live first. Times compared are
 * the API server's or, for a claim's age, the controller's own first sight
 * (claim-age.ts).
 */

import { entryAddress, entryFor, listsAddress } from "../cluster/endpoint-entries.ts";
import { isIncarnation, ordinalInRange, stsKeeps } from "../cluster/statefulset.ts";
import { namesIpamClaim } from "../ipam/multus-network.ts";
import { ordinalOf } from "../ipam/pod-identity.ts";
import type { NodeObject } from "../kube/controller-api.ts";
import type { ClaimObject, EndpointObject, IpamClaimObject, PodObject, StatefulSetObject } from "../kube/kube-api.ts";
import { addWindowMs, lastWriteMs } from "./claim-age.ts";

export interface Reader {
  getPod(ns: string, name: string): Promise<PodObject | undefined>;
  getStatefulSet(ns: string, name: string): Promise<StatefulSetObject | undefined>;
  getEndpoint(ns: string, name: string): Promise<EndpointObject | undefined>;
  getNode(name: string): Promise<NodeObject | undefined>;
  /** The IPAMClaim (live); a reader without it cannot judge an IPAMClaim-held claim, which is then held. */
  getIpamClaim?(ns: string, name: string): Promise<IpamClaimObject | undefined>;
  /** The pods of a namespace (live), for the pods that name an IPAMClaim. */
  listPodsIn?(ns: string): Promise<PodObject[]>;
}

/** Why an address is held although berth cannot be sure it is in use: reported (log, Event, metric). */
export const HELD_KINDS = ["terminating", "terminal", "endpoint-lost", "unbound", "static-pod"] as const;
export type HeldKind = (typeof HELD_KINDS)[number];

export type Verdict =
  | {
      release: false;
      reason: string;
      /** A doubtful hold, to report. */
      held?: HeldKind;
      /** The pod's endpoint should list this claim's address: the controller writes it back. */
      rebuild?: boolean;
      pod?: PodObject;
    }
  | { release: true; reason: ReleaseReason; detail: string; pod?: PodObject; statefulSet?: StatefulSetObject };

export type ReleaseReason =
  | "ipamclaim-deleted"
  | "pod-deleted"
  | "pod-replaced"
  | "pod-terminated"
  | "scaled-down"
  | "statefulset-deleted"
  | "half-finished-add"
  | "node-deleted";

export interface JudgeOptions {
  /** --add-timeout-seconds: the least time an unbound claim is left to its ADD (a claim's recorded deadline may be longer). */
  addTimeoutMs: number;
  /** Time after a pod's deletion deadline from which a pod still Terminating is reported as held. */
  graceMarginMs: number;
  /** The API server's time now (ms since the epoch). */
  now: number;
}

/** "Ready", "NotReady" (condition False), "Unknown" (condition Unknown or absent) or "missing" (no Node object). */
export type NodeState = "Ready" | "NotReady" | "Unknown" | "missing";

export function nodeState(node: NodeObject | undefined): NodeState {
  if (!node) return "missing";
  const ready = node.status?.conditions?.find((c) => c.type === "Ready")?.status;
  return ready === "True" ? "Ready" : ready === "False" ? "NotReady" : "Unknown";
}

/**
 * Whether a pod's terminal phase, as this node's kubelet reports it, means
 * its sandbox is already stopped. Kubelets from 1.24 on (kubernetes#108366)
 * write Succeeded or Failed only once the pod's sandboxes are stopped, and
 * containerd's StopPodSandbox fails unless CNI DEL succeeded (the network
 * namespace stays until then). Kubelet 1.20 writes the phase first and stops
 * the sandbox after, if at all (a failed stop is retried only by its garbage
 * collection): there, and with any runtime berth has not checked, a terminal
 * pod keeps its address until its DEL runs or its object is gone.
 */
export function sandboxStoppedBeforeTerminal(node: NodeObject | undefined): boolean {
  const info = node?.status?.nodeInfo;
  const m = /^v?(\d+)\.(\d+)/.exec(info?.kubeletVersion ?? "");
  if (!m || !info?.containerRuntimeVersion?.startsWith("containerd://")) return false;
  return Number(m[1]) > 1 || Number(m[2]) >= 24;
}

export async function judgeClaim(read: Reader, claim: ClaimObject, opts: JudgeOptions): Promise<Verdict> {
  if (claim.spec.ipamClaim) return judgeIpamClaimHold(read, claim, opts);
  const { podNamespace: ns, podName: name, podUID: uid, address } = claim.spec;
  const pod = await read.getPod(ns, name);
  const ep = await read.getEndpoint(ns, name);
  const bound = listsAddress(ep, address);
  // This interface's entry names another address of the family: the binding is that one, and this claim is
  // what an ADD left that never completed (or a binding since replaced).
  const other = entryAddress(entryFor(ep, claim.spec.interface), claim.spec.ipVersion);
  const superseded = !bound && !!other && other.address !== address;
  const written = lastWriteMs(claim);
  const window = addWindowMs(claim, opts.addTimeoutMs);
  const addMayRun = !bound && (written === undefined || opts.now - written <= window);
  const where = `pod ${ns}/${name}`;

  const phase = pod?.status?.phase;
  const terminal = phase === "Succeeded" || phase === "Failed";
  const incarnation = !!pod && isIncarnation(pod, uid);
  // A terminal phase proves the sandbox is gone only where the kubelet writes it after StopPodSandbox.
  const sandboxGone = incarnation && terminal && sandboxStoppedBeforeTerminal(await read.getNode(pod.spec?.nodeName || claim.spec.node));

  if (incarnation && !sandboxGone) {
    // Its pod object exists: it may use the address until its DEL ran (which releases it) or the object is gone.
    if (addMayRun) return { release: false, reason: "ADD in progress" };
    if (superseded) {
      return {
        release: false,
        held: "unbound",
        reason: `an ADD of ${where} that never completed took it; the pod's ${claim.spec.interface} has ${other.address}; held until the pod is gone`,
        pod,
      };
    }
    if (!bound) {
      return { release: false, held: "endpoint-lost", rebuild: true, reason: `${where} exists but its endpoint does not list the address`, pod };
    }
    if (terminal) {
      return {
        release: false,
        held: "terminal",
        reason: `${where} is ${phase}, but its node's kubelet reports that before it stops the sandbox, which may hold the address until its DEL runs`,
        pod,
      };
    }
    if (pod.metadata.deletionTimestamp) {
      const deadline = Date.parse(pod.metadata.deletionTimestamp) + opts.graceMarginMs;
      if (opts.now <= deadline) return { release: false, reason: "terminating within its grace period" };
      return {
        release: false,
        held: "terminating",
        reason: `${where} is still terminating past its grace period on node ${pod.spec?.nodeName || claim.spec.node}: its DEL has not run`,
        pod,
      };
    }
    return { release: false, reason: "pod runs" };
  }

  // The holder's incarnation is gone: its pod object was deleted (another pod may have the name now), or it
  // finished and its sandbox was stopped.
  if (addMayRun) return { release: false, reason: "ADD in progress" };
  if (claim.spec.staticPod) {
    // Deleting a mirror pod does not stop the static pod: only its DEL, or its node's end, does.
    const state = nodeState(await read.getNode(claim.spec.node));
    if (state !== "missing") {
      return { release: false, held: "static-pod", reason: `static ${where}'s mirror pod is gone, but the pod may still run on node ${claim.spec.node}` };
    }
    return { release: true, reason: "node-deleted", detail: `static ${where}'s node ${claim.spec.node} is gone` };
  }
  const setName = claim.spec.statefulSet;
  const ordinal = setName ? ordinalOf(name, setName) : undefined;
  if (setName && ordinal !== undefined) {
    const sts = await read.getStatefulSet(ns, setName);
    const withPod = pod ? { pod } : {};
    if (!sts || sts.metadata.deletionTimestamp) {
      return { release: true, reason: "statefulset-deleted", detail: `StatefulSet ${ns}/${setName} is ${sts ? "being deleted" : "gone"}`, ...withPod };
    }
    if (!stsKeeps(sts, ordinal)) {
      const detail = `ordinal ${ordinal} is outside StatefulSet ${ns}/${setName}'s ${sts.spec?.replicas ?? 1} replicas`;
      return { release: true, reason: "scaled-down", detail, statefulSet: sts, ...withPod };
    }
    if (superseded) {
      const detail = `the binding of StatefulSet member ${ns}/${name} on ${claim.spec.interface} is ${other.address} now; this claim was never bound`;
      return { release: true, reason: "half-finished-add", detail, ...withPod };
    }
    // The member's binding, kept for it; an endpoint that lost it gets it back, or the member would not.
    const reason = ordinalInRange(sts, ordinal) ? "StatefulSet member in range" : "retained by ipam.berth.dev/reclaim";
    return { release: false, reason, ...(bound ? {} : { rebuild: true }) };
  }
  if (!bound) {
    const detail = `last written ${Math.round((opts.now - (written ?? opts.now)) / 1000)} s ago (its ADD had ${Math.round(window / 1000)} s) by container ${claim.spec.containerID} on ${claim.spec.node}; never bound, and ${where} (UID ${uid}) is gone`;
    return { release: true, reason: "half-finished-add", detail, ...(sandboxGone ? { pod } : {}) };
  }
  if (sandboxGone) {
    return { release: true, reason: "pod-terminated", detail: `${where} is ${phase}: its kubelet reported that only after stopping its sandbox`, pod };
  }
  if (pod) {
    return { release: true, reason: "pod-replaced", detail: `${where} now has UID ${pod.metadata.uid}, the claim was made for ${uid}`, pod };
  }
  return { release: true, reason: "pod-deleted", detail: `${where} (UID ${uid}) is gone` };
}

/**
 * An IPAMClaim-held claim (multi-network spec v1.3: a VM's address, which
 * outlives its virt-launcher pods) may go only when both:
 * - the IPAMClaim with the claim's UID is gone (deleted; one recreated under
 *   the same name is another holder), and
 * - no pod that may still use the address exists: the pod that took it last
 *   (its incarnation), and every pod of the namespace that names the
 *   IPAMClaim and was created before the current IPAMClaim of that name, if
 *   any (a live migration's source holds it too, unrecorded). A Succeeded or
 *   Failed pod counts until its kubelet is one that stops the sandbox first.
 * Its ADD's window is left alone, as for any claim. A reader that cannot
 * read IPAMClaims or list pods holds it.
 */
async function judgeIpamClaimHold(read: Reader, claim: ClaimObject, opts: JudgeOptions): Promise<Verdict> {
  const { podNamespace: ns, podName, podUID, ipamClaim } = claim.spec;
  const ref = `IPAMClaim ${ns}/${ipamClaim!.name}`;
  const written = lastWriteMs(claim);
  if (written === undefined || opts.now - written <= addWindowMs(claim, opts.addTimeoutMs)) return { release: false, reason: "ADD in progress" };
  if (!read.getIpamClaim || !read.listPodsIn) return { release: false, reason: `held by ${ref}: not judged on this reader` };
  let ic: IpamClaimObject | undefined;
  try {
    ic = await read.getIpamClaim(ns, ipamClaim!.name);
  } catch (err) {
    // Not served (no CRD, or an API server still registering it), refused, unreachable: cannot tell, so held.
    return { release: false, reason: `held by ${ref}: it cannot be read (${(err as Error).message})` };
  }
  if (ic && ic.metadata.uid === ipamClaim!.uid) return { release: false, reason: `held by ${ref}` };
  const stillUsing = async (pod: PodObject) => {
    const phase = pod.status?.phase;
    if (phase !== "Succeeded" && phase !== "Failed") return true;
    return !sandboxStoppedBeforeTerminal(await read.getNode(pod.spec?.nodeName ?? ""));
  };
  const holder = await read.getPod(ns, podName);
  if (holder && isIncarnation(holder, podUID) && (await stillUsing(holder))) {
    return { release: false, reason: `${ref} (UID ${ipamClaim!.uid}) is gone, but pod ${ns}/${podName}, which took it last, still exists`, pod: holder };
  }
  const born = ic?.metadata.creationTimestamp ? Date.parse(ic.metadata.creationTimestamp) : Number.POSITIVE_INFINITY;
  for (const pod of await read.listPodsIn(ns)) {
    if (!namesIpamClaim(pod.metadata.annotations, ns, ipamClaim!.name)) continue;
    // Created after the IPAMClaim now of that name (server timestamps, whole seconds: a tie counts as before): that one's pod.
    const created = pod.metadata.creationTimestamp ? Date.parse(pod.metadata.creationTimestamp) : 0;
    if (created > born) continue;
    if (await stillUsing(pod)) {
      return { release: false, reason: `${ref} (UID ${ipamClaim!.uid}) is gone, but pod ${ns}/${pod.metadata.name} that names it still exists`, pod };
    }
  }
  const detail = `${ref} (UID ${ipamClaim!.uid}) is ${ic ? `replaced by UID ${ic.metadata.uid}` : "gone"}, and no pod that names it exists`;
  return { release: true, reason: "ipamclaim-deleted", detail };
}
