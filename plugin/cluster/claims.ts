/** Building, recognising and releasing BerthIPClaims. */
import { type Family, parseAddress } from "../ipam/ip.ts";
import { claimName } from "../kube/claim-name.ts";
import { POOL_LABEL, labelValue } from "../kube/crd.ts";
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
  const labels = { ...(existing?.metadata.labels ?? {}), [POOL_LABEL]: labelValue(pool) };
  return { metadata: { ...(existing?.metadata ?? {}), name: claimName(family, value), labels }, spec };
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
 * Deletes the claim of `address` if `mayRelease` accepts its current holder.
 * Returns the pool it counted against, or undefined when nothing was deleted.
 */
export async function releaseClaimIf(api: KubeApi, address: string, mayRelease: (claim: ClaimObject) => boolean): Promise<string | undefined> {
  const claim = await api.getClaim(claimNameOf(address));
  if (!claim || !mayRelease(claim)) return undefined;
  // Deleted only as judged: a claim re-taken meanwhile (new resourceVersion) is someone else's now.
  const deleted = await api.deleteClaim(claim.metadata.name, claim.metadata.uid!, claim.metadata.resourceVersion).catch((err) => {
    if (isKind(err, KubeConflictError)) return false;
    throw err;
  });
  return deleted ? claim.spec.pool : undefined;
}
