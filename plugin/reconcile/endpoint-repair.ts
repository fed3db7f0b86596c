/**
 * Keeping endpoints and claims in agreement, in both directions:
 * - a claim whose holder still exists (or a StatefulSet member's kept
 *   binding) that its pod's endpoint does not list gets its entry back: the
 *   endpoint is how a member finds its address again, and how a DEL knows a
 *   binding (endpoints are lost with `kubectl delete bep`, a namespace being
 *   deleted while its pods still run, or their CRD deleted and re-created);
 * - an endpoint entry listing an address whose claim is gone or another
 *   pod's (a release whose endpoint write failed) loses it, so the pod does
 *   not come back to an address that is no longer its own.
 * Every write is optimistic (resourceVersion, or create) and re-reads first.
 */
import { entryAddress, entryAddresses, entryFor, entryUid, listsAddress, withEntryUids, withoutAddress } from "../cluster/endpoint-entries.ts";
import { toPool } from "../cluster/pool-choice.ts";
import { incarnationUid, isIncarnation, verifyMembership } from "../cluster/statefulset.ts";
import { parseAddress } from "../ipam/ip.ts";
import { shownOn } from "../ipam/pod-shown.ts";
import { claimName } from "../kube/claim-name.ts";
import type { ControllerApi } from "../kube/controller-api.ts";
import type { ClaimObject, EndpointIp, EndpointObject, PodObject } from "../kube/kube-api.ts";
import { KubeConflictError, KubeRequestError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";
import type { ReconcileCounters } from "./counters.ts";

/** What a repair did. */
export type RepairOutcome = "written" | "unneeded" | "refused";

/**
 * Writes the claim's address into its pod's endpoint, on this interface's
 * entry, unless the endpoint lists it already or binds that interface to
 * another address of the family. A namespace being deleted refuses every
 * create: the address is then simply held until the pod is gone.
 *
 * `rivals`: the other claims of this pod name on this interface and family
 * (a killed ADD's, a forger's). Only the binding may be written back: a
 * wrong one would make the right one look superseded, and the controller
 * would release it. So a member's claim wins over a non-member's (the
 * endpoint is the member's: cluster-add.ts leaves it to the member), the
 * address the pod shows wins over one it does not, and when nothing tells
 * them apart none is written (each stays held until its pod is gone).
 */
export async function rebuildEntry(
  api: ControllerApi,
  claim: ClaimObject,
  log: Logger,
  metrics: ReconcileCounters,
  rivals: ClaimObject[] = [],
): Promise<RepairOutcome> {
  const { podNamespace: ns, podName: name, address, interface: ifname, ipVersion: family } = claim.spec;
  const pod = await api.getPod(ns, name);
  const live = pod && isIncarnation(pod, claim.spec.podUID) ? pod : undefined;
  const why = notTheBinding(claim, rivals, live);
  if (why) {
    log.info("endpoint entry not rebuilt from this claim", { pod: `${ns}/${name}`, address, ifname, claim: claim.metadata.name, why });
    return "unneeded";
  }
  const pool = await api.getPool(claim.spec.pool);
  const prefix = pool ? toPool(pool).subnet.prefix : family === 4 ? 32 : 128;
  const gateway = pool?.spec.gateway;
  for (let attempt = 0; attempt < 3; attempt++) {
    const ep = await api.getEndpoint(ns, name);
    if (listsAddress(ep, address)) return "unneeded";
    const found = entryFor(ep, ifname);
    // The interface is bound to another address, or its entry is another incarnation's: not this claim's to fill.
    if (found && (entryAddress(found, family) || entryUid(ep!, found) !== claim.spec.podUID)) return "unneeded";
    const entry: EndpointIp = { ...(found ?? { interface: ifname }) };
    if (claim.spec.network) entry.network ??= claim.spec.network;
    entry.podUID ??= claim.spec.podUID;
    if (family === 4) Object.assign(entry, { ipv4: `${address}/${prefix}`, ipv4Pool: claim.spec.pool }, gateway ? { ipv4Gateway: gateway } : {});
    else Object.assign(entry, { ipv6: `${address}/${prefix}`, ipv6Pool: claim.spec.pool }, gateway ? { ipv6Gateway: gateway } : {});
    try {
      if (ep) {
        const ips = [...withEntryUids(ep).filter((i) => i.interface !== ifname), entry];
        await api.updateEndpoint({ metadata: ep.metadata, spec: { ...ep.spec, ips } });
      } else {
        await api.createEndpoint({ metadata: { name, namespace: ns }, spec: { ...(await ownerOf(api, claim, live)), ips: [entry] } });
      }
    } catch (err) {
      if (isKind(err, KubeConflictError)) continue; // changed meanwhile: read again
      if (isKind(err, KubeRequestError) && err.status === 403) {
        log.warn("endpoint not rebuilt: the API server refused (a namespace being deleted takes no new objects); the address stays held", {
          pod: `${ns}/${name}`,
          address,
          error: err.message,
        });
        return "refused";
      }
      throw err;
    }
    metrics.repaired("rebuild-entry");
    log.info("endpoint entry rebuilt from its claim", { pod: `${ns}/${name}`, address, ifname, claim: claim.metadata.name });
    if (live) {
      await api
        .recordEvent(podTarget(live), "Normal", "EndpointRebuilt", `berth rebuilt ${ifname}: ${address} in this pod's BerthEndpoint from its claim`)
        .catch((err) => log.warn("event not recorded", { error: (err as Error).message }));
    }
    return "written";
  }
  throw new KubeConflictError(`endpoint ${ns}/${name} kept changing while its entry for ${address} was rebuilt`);
}

/** Why `claim` is not the binding to write back, of it and its rivals; undefined when it is. */
function notTheBinding(claim: ClaimObject, rivals: ClaimObject[], live: PodObject | undefined): string | undefined {
  const others = rivals.filter((r) => r.metadata.name !== claim.metadata.name);
  if (!others.length) return undefined;
  if (!claim.spec.statefulSet && others.some((r) => r.spec.statefulSet))
    return "a StatefulSet member's claim names this pod and interface: the endpoint is the member's";
  const contenders = claim.spec.statefulSet ? others.filter((r) => r.spec.statefulSet) : others;
  if (!contenders.length) return undefined;
  const shown = live ? shownOn(live, claim.spec.interface, claim.spec.ipVersion) : [];
  if (shown.includes(claim.spec.address)) return undefined;
  if (shown.length) return `the pod shows ${shown.join(", ")} on ${claim.spec.interface}`;
  return `the pod has ${contenders.length + 1} claims on ${claim.spec.interface} and shows none of them: which is in use cannot be told`;
}

/** The endpoint-level fields of a rebuilt endpoint: the claim's incarnation, and the pod's membership when it can be checked. */
async function ownerOf(api: ControllerApi, claim: ClaimObject, pod: PodObject | undefined) {
  const verified = pod ? await verifyMembership(pod, (ns, name) => api.getStatefulSet(ns, name)) : undefined;
  const set = verified?.member.statefulSet ?? claim.spec.statefulSet;
  return {
    podUID: pod ? incarnationUid(pod) : claim.spec.podUID,
    node: claim.spec.node,
    containerID: claim.spec.containerID,
    ownerControllerType: set ? ("StatefulSet" as const) : ("None" as const),
    ...(set ? { ownerControllerName: set } : {}),
  };
}

/** An address an endpoint lists whose claim (in a scan's lists) is missing or another pod's. */
export interface PhantomSuspect {
  namespace: string;
  name: string;
  address: string;
}

/** The addresses `ep` lists whose claim is not its pod's, by `claimOf` (a claim's name → claim). */
export function phantomSuspects(ep: EndpointObject, claimOf: (name: string) => ClaimObject | undefined): PhantomSuspect[] {
  const ns = ep.metadata.namespace ?? "";
  const out: PhantomSuspect[] = [];
  for (const entry of ep.spec.ips) {
    for (const address of entryAddresses(entry)) {
      const a = parseAddress(address);
      const c = a ? claimOf(claimName(a.family, a.value)) : undefined;
      if (!c || c.spec.podNamespace !== ns || c.spec.podName !== ep.metadata.name) out.push({ namespace: ns, name: ep.metadata.name, address });
    }
  }
  return out;
}

/**
 * Strips a phantom binding, confirmed live: the address's claim is gone or
 * held by another pod. An endpoint left with no entry is deleted.
 */
export async function stripPhantom(api: ControllerApi, s: PhantomSuspect, log: Logger, metrics: ReconcileCounters): Promise<boolean> {
  const a = parseAddress(s.address);
  if (!a) return false;
  for (let attempt = 0; attempt < 3; attempt++) {
    // The endpoint first, then the claim: the write is conditional on the endpoint as read, so an ADD that
    // takes the address again (its claim, then its entry) either shows its claim to the read below or moves
    // the endpoint on and the write conflicts. Read the other way round, a claim read as gone just before
    // the ADD took it, then an endpoint read just after its entry was written, strips a running pod's binding.
    const ep = await api.getEndpoint(s.namespace, s.name);
    if (!ep || !listsAddress(ep, s.address)) return false;
    const claim = await api.getClaim(claimName(a.family, a.value));
    if (claim && claim.spec.podNamespace === s.namespace && claim.spec.podName === s.name) return false; // its own after all
    const ips = withEntryUids(ep)
      .map((i) => withoutAddress(i, s.address))
      .filter((i): i is EndpointIp => !!i);
    try {
      if (ips.length) await api.updateEndpoint({ metadata: ep.metadata, spec: { ...ep.spec, ips } });
      else await api.deleteEndpoint(s.namespace, s.name, ep.metadata.uid!, ep.metadata.resourceVersion);
    } catch (err) {
      if (isKind(err, KubeConflictError)) continue;
      throw err;
    }
    metrics.repaired("strip-phantom");
    const holder = claim ? `pod ${claim.spec.podNamespace}/${claim.spec.podName}` : "nobody (its claim is gone)";
    log.info("phantom binding stripped", { pod: `${s.namespace}/${s.name}`, address: s.address, heldBy: holder });
    return true;
  }
  return false;
}

function podTarget(pod: PodObject) {
  return { kind: "Pod", apiVersion: "v1", namespace: pod.metadata.namespace!, name: pod.metadata.name, uid: pod.metadata.uid };
}
