/** Carries out a release verdict: claim, endpoint entry, Event, log, metric. */

import { deleteAsJudged } from "../cluster/claims.ts";
import { withEntryUids, withoutAddress } from "../cluster/endpoint-entries.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import { BERTH_API_VERSION, BERTH_GROUP, CLAIM_KIND } from "../kube/crd.ts";
import type { ClaimObject, EndpointIp } from "../kube/kube-api.ts";
import { isApiFailure, KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";
import type { ReconcileCounters } from "./counters.ts";
import type { Verdict } from "./judge-claim.ts";

/**
 * Releases the claim if it is unchanged since it was judged; returns whether
 * it was deleted. The Event goes on the holder (its pod or StatefulSet, where
 * an operator looks), or with `eventOn: "claim"` on the claim itself (the
 * object changed: `berth check --repair`).
 */
export async function releaseJudgedClaim(
  api: ControllerApi,
  claim: ClaimObject,
  verdict: Extract<Verdict, { release: true }>,
  log: Logger,
  metrics: ReconcileCounters,
  eventOn: "holder" | "claim" = "holder",
): Promise<boolean> {
  const { podNamespace: ns, podName: name, address, pool } = claim.spec;
  let deleted: boolean;
  try {
    deleted = claim.spec.ipamClaim ? await deleteAsJudged(api, claim) : await api.deleteClaimIfUnchanged(claim);
  } catch (err) {
    if (isKind(err, KubeConflictError)) {
      log.info("claim changed since it was judged; left for the next pass", { claim: claim.metadata.name });
      return false;
    }
    throw err;
  }
  if (!deleted) return false;
  // The release is done once the claim is gone: it is logged and counted whatever happens to the endpoint.
  await dropFromEndpoint(api, claim).catch((err) => {
    if (!isApiFailure(err)) throw err; // e.g. the controller no longer leads: stop here
    log.warn("endpoint not updated after a release: the next full scan strips the phantom binding", {
      address,
      pod: `${ns}/${name}`,
      error: (err as Error).message,
    });
  });
  metrics.released(verdict.reason);
  log.info("address released", { address, pool, pod: `${ns}/${name}`, reason: verdict.reason, detail: verdict.detail, claim: claim.metadata.name });
  const message = `released ${address} (pool ${pool}): ${verdict.detail}`;
  const target = eventOn === "claim" ? claimEventTarget(claim) : holderTarget(claim, verdict);
  if (target)
    await api.recordEvent(target, "Normal", "AddressReleased", message).catch((err) => log.warn("event not recorded", { error: (err as Error).message }));
  return true;
}

/**
 * Removes the released address from the entries of the claim's incarnation
 * in the pod's endpoint; deletes an endpoint left empty. Another
 * incarnation's entry (a new pod of this name that took the address again
 * with a claim of its own) is not ours to strip. A write that fails leaves a
 * phantom binding, which the next full scan finds and strips
 * (endpoint-repair.ts).
 */
async function dropFromEndpoint(api: ControllerApi, claim: ClaimObject): Promise<void> {
  const { podNamespace: ns, podName: name, address, podUID } = claim.spec;
  for (let attempt = 0; attempt < 3; attempt++) {
    const ep = await api.getEndpoint(ns, name);
    if (!ep) return;
    const entries = withEntryUids(ep);
    const ips = entries.map((i) => (i.podUID === podUID ? withoutAddress(i, address) : i)).filter((i): i is EndpointIp => !!i);
    if (ips.length === entries.length && ips.every((i, k) => i === entries[k])) return;
    try {
      // Only the endpoint as read: if a new pod of this name rewrote it meanwhile, read again (conflict).
      if (ips.length === 0) await api.deleteEndpoint(ns, name, ep.metadata.uid!, ep.metadata.resourceVersion);
      else await api.updateEndpoint({ metadata: ep.metadata, spec: { ...ep.spec, ips } });
      return;
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err;
    }
  }
}

/** Where an operator looks for a release: the pod, else its StatefulSet (unless that went too), else nowhere. */
function holderTarget(claim: ClaimObject, verdict: Extract<Verdict, { release: true }>) {
  const { podNamespace: ns, podName: name, statefulSet } = claim.spec;
  if (verdict.pod) return { kind: "Pod", apiVersion: "v1", namespace: ns, name, uid: verdict.pod.metadata.uid };
  const sts = verdict.statefulSet;
  if (sts) return { kind: "StatefulSet", apiVersion: "apps/v1", namespace: ns, name: sts.metadata.name, uid: sts.metadata.uid };
  if (statefulSet && verdict.reason !== "statefulset-deleted") return { kind: "StatefulSet", apiVersion: "apps/v1", namespace: ns, name: statefulSet };
  return undefined;
}

/** A claim as an Event's object: cluster-scoped, so its Events live in the default namespace. */
export function claimEventTarget(claim: ClaimObject) {
  return { kind: CLAIM_KIND, apiVersion: `${BERTH_GROUP}/${BERTH_API_VERSION}`, namespace: "default", name: claim.metadata.name, uid: claim.metadata.uid };
}
