/**
 * Cluster-mode release (DEL, GC): decide whether the pod's addresses stay
 * bound, and free them on the API server when they do not.
 */

import type { Lease, LeaseStore } from "../../store/lease-store.ts";
import type { IpamConfig } from "../ipam/config.ts";
import { ordinalOf } from "../ipam/pod-identity.ts";
import { RECLAIM_ANNOTATION } from "../kube/crd.ts";
import type { EndpointObject, KubeApi } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import type { Logger } from "../support/logger.ts";
import { claimNameOf, heldBy, releaseClaimIf } from "./claims.ts";
import { entryAddresses, entryFor, entryUid, withEntryUids } from "./endpoint-entries.ts";
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

/**
 * Why the addresses stay bound, or undefined when they are to be released.
 * A sandbox of a pod that still runs keeps them (it is being recreated). A
 * StatefulSet member keeps its binding while the set keeps the ordinal (in
 * range, or Retain) on a network that keeps members' addresses. Membership
 * comes from the pod object while there is one (its owner reference checked
 * against the live set), else from what the endpoint recorded of the pod.
 */
export async function keepReason(
  api: KubeApi,
  ipam: IpamConfig,
  ns: string,
  name: string,
  uid: string | undefined,
  ep: EndpointObject | undefined,
  /**
   * The set a claim of this pod records, asked for only when the endpoint is
   * gone and the pod object cannot tell (both are written by the ADD that
   * checked membership).
   */
  claimSet?: () => Promise<string | undefined>,
): Promise<KeepReason | undefined> {
  const pod = await api.getPod(ns, name);
  const alive = pod && !pod.metadata.deletionTimestamp && pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed";
  if (alive && uid && isIncarnation(pod, uid)) return { reason: "the pod still runs (sandbox restart)", member: false };
  if (!ipam.enableStatefulSet) return undefined;
  const claimed = pod ? statefulSetMembership(pod) : undefined;
  const recorded = async () => (ep ? (ep.spec.ownerControllerType === "StatefulSet" ? ep.spec.ownerControllerName : undefined) : claimSet?.());
  const set = claimed?.statefulSet ?? (await recorded());
  if (!set) return undefined;
  const ordinal = ordinalOf(name, set);
  if (ordinal === undefined) return undefined;
  const sts = await api.getStatefulSet(ns, set);
  if (!sts) return undefined;
  // A pod's owner reference counts only when it names the live set; the endpoint's record was checked when written.
  if (claimed && claimed.ownerUid !== sts.metadata.uid && (await recorded()) !== set) return undefined;
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
    const mine = entryFor(ep, at.ifname);
    addresses = (mine ? entryAddresses(mine) : []).map((address) => ({ address, pending: false }));
  }
  if (addresses.length === 0) return;

  // No endpoint (lost, or never written for this pod): a claim of the sandbox records the pod's set instead,
  // read at most once, and only if keepReason needs it.
  let claimSet: Promise<string | undefined> | undefined;
  const keep = await keepReason(api, ipam, ns, name, uid, ep, () => (claimSet ??= setOfClaims(api, addresses, ns, name)));
  // This interface's entry, if it is this sandbox's or this incarnation's. A member's binding is what the
  // entry lists, whichever sandbox wrote it: the DEL of a sandbox whose ADD failed half-way (its lease
  // still pending on the re-taken address) must not free the address the member comes back to.
  const own = entryFor(ep, at.ifname);
  // Judged by the entry's own incarnation: the endpoint-level containerID names only its last writer (another
  // interface's sandbox, perhaps of another pod of this name). Without a UID (a runtime that sends none), by that.
  const entryOwnsSandbox = !!own && (uid ? entryUid(ep!, own) === uid : ep!.spec.containerID === at.containerId);
  const entry = entryOwnsSandbox || keep?.member ? own : undefined;
  const boundHere = new Set(entry ? entryAddresses(entry) : []);
  // A pod that stays (a sandbox restart, a member its set keeps) whose endpoint has no entry for this interface
  // lost it (`kubectl delete bep`, the CRD re-created): an active lease is an ADD that completed, so its address
  // is the binding, kept until the controller writes the entry back. Without this, a restart in that gap would
  // free the address the pod comes back to.
  if (keep && !own) for (const a of addresses) if (!a.pending) boundHere.add(a.address);
  const freedHints: FreedHint[] = [];
  for (const a of addresses) {
    // Kept: a bound address of a pod that stays. For a restarting sandbox a pending one (interrupted ADD)
    // is never part of the binding.
    if (keep && boundHere.has(a.address) && (keep.member || !a.pending)) continue;
    // An IPAMClaim's address outlives its pods: releaseClaimIf leaves it to the controller (judge-claim.ts).
    let ipamClaim: string | undefined;
    const freed = await releaseClaimIf(api, a.address, (c) => {
      const mine = heldBy(c, ns, name, at.containerId, uid);
      if (mine && c.spec.ipamClaim) ipamClaim = `${c.spec.podNamespace}/${c.spec.ipamClaim.name}`;
      return mine;
    });
    if (freed) freedHints.push({ pool: freed, address: a.address });
    log.info(freed ? "address released" : ipamClaim ? "address stays with its IPAMClaim" : "address already released", {
      address: a.address,
      ...(ipamClaim ? { ipamClaim } : {}),
      pool: freed,
      pod: `${ns}/${name}`,
      container: at.containerId,
      ifname: at.ifname,
    });
  }
  if (keep) {
    log.info("addresses stay bound", { pod: `${ns}/${name}`, reason: keep.reason, addresses: [...boundHere].join(",") });
  } else if (ep && entryOwnsSandbox) {
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
    for (const f of freed) store.hints.set(f.pool, f.address, false);
    for (const l of leases) store.deleteLease(l.id);
  };
  if (leases.length) store.immediate(write);
  else if (freed.length) store.cacheWrite(write);
}

/** Removes one interface's entry from the endpoint (the others keep their incarnations); deletes the endpoint when none is left. */
async function dropInterface(api: KubeApi, ep: EndpointObject, ifname: string): Promise<void> {
  const rest = withEntryUids(ep).filter((i) => i.interface !== ifname);
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

/** The StatefulSet recorded by the claim of this pod's first completed address, if any. */
async function setOfClaims(api: KubeApi, addresses: { address: string; pending: boolean }[], ns: string, name: string): Promise<string | undefined> {
  const first = addresses.find((a) => !a.pending);
  if (!first) return undefined;
  const claim = await api.getClaim(claimNameOf(first.address));
  return claim && claim.spec.podNamespace === ns && claim.spec.podName === name ? claim.spec.statefulSet : undefined;
}
