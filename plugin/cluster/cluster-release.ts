/**
 * Cluster-mode release (DEL, GC): decide whether the pod's addresses stay
 * bound, and free them on the API server when they do not.
 */
import type { IpamConfig } from "../ipam/config.ts";
import type { Logger } from "../support/logger.ts";
import type { Lease, LeaseStore } from "../../store/lease-store.ts";
import { heldBy, releaseClaimIf } from "./claims.ts";
import type { EndpointObject, KubeApi } from "../kube/kube-api.ts";
import { RECLAIM_ANNOTATION } from "../kube/crd.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import { ordinalOf } from "../ipam/pod-identity.ts";
import { isIncarnation, ordinalInRange, statefulSetMembership, stsKeeps } from "./statefulset.ts";

export interface ReleaseTarget {
  network: string;
  containerId: string;
  ifname: string;
  /** From CNI_ARGS, used when this node's database has no lease (e.g. it was lost). */
  pod?: { namespace: string; name: string; uid?: string };
}

/** Why a pod's addresses stay bound: its sandbox restarts, or it is a StatefulSet member that keeps them. */
export interface KeepReason {
  reason: string;
  /** A StatefulSet member's binding: kept whichever sandbox wrote it. */
  member: boolean;
}

/** Why the addresses stay bound, or undefined when they are to be released. */
export async function keepReason(
  api: KubeApi,
  ipam: IpamConfig,
  ns: string,
  name: string,
  uid: string | undefined,
  ep: EndpointObject | undefined,
): Promise<KeepReason | undefined> {
  const pod = await api.getPod(ns, name);
  const alive = pod && !pod.metadata.deletionTimestamp && pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed";
  if (alive && uid && isIncarnation(pod, uid)) return { reason: "the pod still runs (sandbox restart)", member: false };
  if (!ipam.enableStatefulSet) return undefined;
  // Membership from the pod object when there is one (any incarnation), else from what the endpoint recorded.
  const fromPod = pod ? statefulSetMembership(pod) : undefined;
  const set = fromPod?.statefulSet ?? (ep?.spec.ownerControllerType === "StatefulSet" ? ep.spec.ownerControllerName : undefined);
  if (!set) return undefined;
  const ordinal = ordinalOf(name, set);
  if (ordinal === undefined) return undefined;
  const sts = await api.getStatefulSet(ns, set);
  if (!sts) return undefined;
  if (ordinalInRange(sts, ordinal)) return { reason: `StatefulSet ${ns}/${set} still has ordinal ${ordinal}`, member: true };
  return stsKeeps(sts, ordinal)
    ? { reason: `StatefulSet ${ns}/${set} retains scaled-down addresses (${RECLAIM_ANNOTATION}: Retain)`, member: true }
    : undefined;
}

/** Releases (or keeps bound) one attachment's addresses. Idempotent; a missing pod or StatefulSet is not an error. */
export async function clusterRelease(api: KubeApi, store: LeaseStore, ipam: IpamConfig, at: ReleaseTarget, log: Logger): Promise<void> {
  const leases = store.leasesOf(at.network, at.containerId, at.ifname);
  const ns = leases[0]?.pod_namespace ?? at.pod?.namespace;
  const name = leases[0]?.pod_name ?? at.pod?.name;
  if (!ns || !name) {
    dropLocal(store, leases, []);
    return;
  }
  const ep = await api.getEndpoint(ns, name);
  const uid = leases[0]?.pod_uid ?? at.pod?.uid ?? ep?.spec.podUID;
  // Addresses to consider: this node's leases; without any (database lost), what the endpoint says this sandbox has.
  let addresses = leases.map((l) => ({ address: l.address, pending: l.state === "pending" }));
  if (addresses.length === 0 && ep && ep.spec.containerID === at.containerId) {
    const own = ep.spec.ips.find((i) => i.interface === at.ifname);
    addresses = [own?.ipv4, own?.ipv6].filter((c): c is string => !!c).map((c) => ({ address: c.split("/")[0], pending: false }));
  }
  if (addresses.length === 0) return;

  const keep = await keepReason(api, ipam, ns, name, uid, ep);
  const endpointOwnsSandbox = !!ep && (ep.spec.containerID === at.containerId || (!!uid && ep.spec.podUID === uid));
  // A member's binding is what the endpoint lists for this interface, whichever sandbox wrote it: the
  // DEL of a sandbox whose ADD failed half-way (its lease still pending on the re-taken address) must
  // not free the address the member comes back to.
  const entry = endpointOwnsSandbox || keep?.member ? ep?.spec.ips.find((i) => i.interface === at.ifname) : undefined;
  const boundHere = new Set([entry?.ipv4, entry?.ipv6].filter((c): c is string => !!c).map((c) => c.split("/")[0]));
  const freedHints: FreedHint[] = [];
  for (const a of addresses) {
    // Kept: a bound address of a pod that stays. For a restarting sandbox a pending one (interrupted ADD)
    // is never part of the binding.
    if (keep && boundHere.has(a.address) && (keep.member || !a.pending)) continue;
    const freed = await releaseClaimIf(api, a.address, (c) => heldBy(c, ns, name, at.containerId, uid));
    if (freed) freedHints.push({ pool: freed, address: a.address });
    log.info(freed ? "address released" : "address already released", {
      address: a.address,
      pool: freed,
      pod: `${ns}/${name}`,
      container: at.containerId,
      ifname: at.ifname,
    });
  }
  if (keep) {
    log.info("addresses stay bound", { pod: `${ns}/${name}`, reason: keep.reason, addresses: [...boundHere].join(",") });
  } else if (ep && endpointOwnsSandbox) {
    await dropInterface(api, ep, at.ifname);
  }
  dropLocal(store, leases, freedHints);
  // No pool status write: the controller keeps the counts from its watch of the claims.
}

/** An address whose claim this release deleted: the hints are to learn it is free. */
interface FreedHint {
  pool: string;
  address: string;
}

/**
 * Deletes the attachment's leases and tells the hints what was freed, in one
 * durable commit. Until it, the leases keep this node's ADDs off the freed
 * addresses anyway. With no lease (the database was lost) only hints are
 * written: a cache, committed without fsync.
 */
function dropLocal(store: LeaseStore, leases: Lease[], freed: FreedHint[]): void {
  const write = () => {
    for (const f of freed) store.setHint(f.pool, f.address, false);
    for (const l of leases) store.deleteLease(l.id);
  };
  if (leases.length) store.immediate(write);
  else if (freed.length) store.cacheWrite(write);
}

/** Removes one interface from the endpoint; deletes the endpoint when none is left. */
async function dropInterface(api: KubeApi, ep: EndpointObject, ifname: string): Promise<void> {
  const rest = ep.spec.ips.filter((i) => i.interface !== ifname);
  if (rest.length === ep.spec.ips.length) return;
  if (rest.length === 0) {
    await api.deleteEndpoint(ep.metadata.namespace!, ep.metadata.name, ep.metadata.uid!, ep.metadata.resourceVersion).catch((err) => {
      if (!isKind(err, KubeConflictError)) throw err; // recreated meanwhile by a new pod: leave it
    });
  } else {
    await api.updateEndpoint({ metadata: ep.metadata, spec: { ...ep.spec, ips: rest } }).catch((err) => {
      if (!isKind(err, KubeConflictError)) throw err;
    });
  }
}
