/** Carries out a release verdict: claim, endpoint entry, Event, log, metric. */
import type { ClaimObject, EndpointIp } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import type { Verdict } from "./judge-claim.ts";
import type { Metrics } from "./metrics.ts";

/** Releases the claim if it is unchanged since it was judged; returns whether it was deleted. */
export async function releaseJudgedClaim(
  api: ControllerApi,
  claim: ClaimObject,
  verdict: Extract<Verdict, { release: true }>,
  log: Logger,
  metrics: Metrics,
): Promise<boolean> {
  const { podNamespace: ns, podName: name, address, pool } = claim.spec;
  let deleted: boolean;
  try {
    deleted = await api.deleteClaimIfUnchanged(claim);
  } catch (err) {
    if (isKind(err, KubeConflictError)) {
      log.info("claim changed since it was judged; left for the next pass", { claim: claim.metadata.name });
      return false;
    }
    throw err;
  }
  if (!deleted) return false;
  await dropFromEndpoint(api, claim);
  metrics.released(verdict.reason);
  log.info("address released", { address, pool, pod: `${ns}/${name}`, reason: verdict.reason, detail: verdict.detail, claim: claim.metadata.name });
  const message = `released ${address} (pool ${pool}): ${verdict.detail}`;
  const target = verdict.pod
    ? { kind: "Pod", apiVersion: "v1", namespace: ns, name, uid: verdict.pod.metadata.uid }
    : verdict.statefulSet
      ? { kind: "StatefulSet", apiVersion: "apps/v1", namespace: ns, name: verdict.statefulSet.metadata.name, uid: verdict.statefulSet.metadata.uid }
      : claim.spec.statefulSet && verdict.reason !== "statefulset-deleted"
        ? { kind: "StatefulSet", apiVersion: "apps/v1", namespace: ns, name: claim.spec.statefulSet }
        : undefined;
  if (target)
    await api.recordEvent(target, "Normal", "AddressReleased", message).catch((err) => log.warn("event not recorded", { error: (err as Error).message }));
  return true;
}

/** Removes the released address from the pod's endpoint (the same incarnation) if it still lists it; deletes an endpoint left empty. */
async function dropFromEndpoint(api: ControllerApi, claim: ClaimObject): Promise<void> {
  const { podNamespace: ns, podName: name, address } = claim.spec;
  for (let attempt = 0; attempt < 3; attempt++) {
    const ep = await api.getEndpoint(ns, name);
    // Only the incarnation the claim was made for: a new pod of this name (another UID) may have
    // taken the same address again with a claim of its own, and its binding is not ours to strip.
    if (!ep || ep.spec.podUID !== claim.spec.podUID) return;
    const strip = (i: EndpointIp): EndpointIp => {
      const out = { ...i };
      if (out.ipv4?.split("/")[0] === address) delete out.ipv4, delete out.ipv4Pool, delete out.ipv4Gateway;
      if (out.ipv6?.split("/")[0] === address) delete out.ipv6, delete out.ipv6Pool, delete out.ipv6Gateway;
      return out;
    };
    const ips = ep.spec.ips.map(strip).filter((i) => i.ipv4 || i.ipv6);
    if (JSON.stringify(ips) === JSON.stringify(ep.spec.ips)) return;
    try {
      // Only the endpoint as read: if a new pod of this name rewrote it meanwhile, leave it (conflict → read again).
      if (ips.length === 0) await api.deleteEndpoint(ns, name, ep.metadata.uid!, ep.metadata.resourceVersion);
      else await api.updateEndpoint({ metadata: ep.metadata, spec: { ...ep.spec, ips } });
      return;
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err;
    }
  }
}
