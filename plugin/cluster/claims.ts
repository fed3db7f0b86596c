/** Building, recognising and releasing BerthIPClaims. */
import { type Family, parseAddress } from "../ipam/ip.ts";
import { claimName } from "../kube/claim-name.ts";
import { IPAMCLAIM_FINALIZER, IPAMCLAIM_UID_LABEL, labelValue, POOL_LABEL } from "../kube/crd.ts";
import type { ClaimObject, ClaimSpec, KubeApi } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";

export interface Holder {
  namespace: string;
  name: string;
  /** The pod's incarnation (statefulset.ts incarnationUid: the kubelet's UID for a static pod). */
  uid: string;
  containerId: string;
  ifname: string;
  node: string;
  /** Set when this network keeps the member's address (enableStatefulSet) and the pod is one. */
  statefulSet?: string;
  /** The network (netconf name) taking the address. */
  network: string;
  staticPod?: boolean;
  /** The IPAMClaim (in `namespace`) the pod's element names: it holds the addresses, by its UID (ipamclaim-add.ts). */
  ipamClaim?: { name: string; uid: string };
  /**
   * Seconds after the claim's last write (by the API server's clock) until
   * which the ADD holding it may still be running; the controller never
   * judges the claim half-finished before then.
   */
  addDeadlineSeconds: number;
}

/**
 * The containerID of a claim written for a running pod by someone other than
 * its ADD (`berth check --repair`, `berth adopt`): the sandbox is unknown, and
 * kube-apiserver 1.20 refuses an empty string in a required field. The pod's
 * DEL still releases such a claim by the pod's UID (`heldBy`).
 */
export const UNKNOWN_CONTAINER = "unknown";

/** The claim object for `address` of `pool`, held by `holder`. */
export function claimFor(family: Family, address: string, pool: string, holder: Holder, existing?: ClaimObject): ClaimObject {
  const value = parseAddress(address)!.value;
  const spec: ClaimSpec = {
    address,
    ipVersion: family,
    pool,
    podNamespace: holder.namespace,
    podName: holder.name,
    podUID: holder.uid,
    containerID: holder.containerId,
    interface: holder.ifname,
    node: holder.node,
    claimedAt: new Date().toISOString(),
    addDeadlineSeconds: holder.addDeadlineSeconds,
  };
  if (holder.statefulSet) spec.statefulSet = holder.statefulSet;
  if (holder.network) spec.network = holder.network;
  if (holder.staticPod) spec.staticPod = true;
  const labels: Record<string, string> = { ...(existing?.metadata.labels ?? {}), [POOL_LABEL]: labelValue(pool) };
  const metadata = { ...(existing?.metadata ?? {}), name: claimName(family, value), labels };
  if (holder.ipamClaim) {
    spec.ipamClaim = { ...holder.ipamClaim };
    labels[IPAMCLAIM_UID_LABEL] = holder.ipamClaim.uid;
  } else if (labels[IPAMCLAIM_UID_LABEL] || metadata.finalizers?.includes(IPAMCLAIM_FINALIZER)) {
    delete labels[IPAMCLAIM_UID_LABEL];
    metadata.finalizers = metadata.finalizers?.filter((f) => f !== IPAMCLAIM_FINALIZER);
  }
  return { metadata, spec };
}

/** Whether the claim names this pod (any sandbox, any incarnation). */
export function samePod(claim: ClaimObject, holder: Pick<Holder, "namespace" | "name">): boolean {
  return claim.spec.podNamespace === holder.namespace && claim.spec.podName === holder.name;
}

/** The claim's name for a textual address. */
export function claimNameOf(address: string): string {
  const a = parseAddress(address)!;
  return claimName(a.family, a.value);
}

/** Whether the claim is held by this pod (by name), and by this sandbox or pod incarnation. */
export function heldBy(claim: ClaimObject, namespace: string, name: string, containerId: string, uid: string | null | undefined): boolean {
  const s = claim.spec;
  return s.podNamespace === namespace && s.podName === name && (s.containerID === containerId || (!!uid && s.podUID === uid));
}

/**
 * Deletes the claim of `address` if `mayRelease` accepts its current holder
 * and no IPAMClaim holds it. Returns the pool it counted against, or
 * undefined when nothing was deleted.
 */
export async function releaseClaimIf(api: KubeApi, address: string, mayRelease: (claim: ClaimObject) => boolean): Promise<string | undefined> {
  const claim = await api.getClaim(claimNameOf(address));
  // An IPAMClaim's address outlives its pods: only the controller releases it (judge-claim.ts), never a
  // DEL, GC, an interrupted ADD's undo or a pool move.
  if (!claim || !mayRelease(claim) || claim.spec.ipamClaim) return undefined;
  // Deleted only as judged: a claim re-taken meanwhile (new resourceVersion) is someone else's now.
  const deleted = await api.deleteClaim(claim.metadata.name, claim.metadata.uid!, claim.metadata.resourceVersion).catch((err) => {
    if (isKind(err, KubeConflictError)) return false;
    throw err;
  });
  return deleted ? claim.spec.pool : undefined;
}

/**
 * Deletes the claim if it is still as judged (uid, resourceVersion). An
 * IPAMClaim-held claim's finalizer is taken off first, on the same
 * condition: berth's own releases go through; a delete by a berth that does
 * not know the finalizer only marks the claim.
 */
export async function deleteAsJudged(api: KubeApi, claim: ClaimObject): Promise<boolean> {
  let c = claim;
  if (c.metadata.finalizers?.includes(IPAMCLAIM_FINALIZER)) {
    const finalizers = c.metadata.finalizers.filter((f) => f !== IPAMCLAIM_FINALIZER);
    c = await api.updateClaim({ metadata: { ...c.metadata, finalizers }, spec: c.spec });
    // Already marked deleted (by an older berth): the last finalizer gone, the server removed it.
    if (claim.metadata.deletionTimestamp && finalizers.length === 0) return true;
  }
  return api.deleteClaim(c.metadata.name, c.metadata.uid!, c.metadata.resourceVersion);
}
