/**
 * Cluster-mode ADD. The API server decides: an address is taken by creating
 * its BerthIPClaim (AlreadyExists = someone has it), the pod's BerthEndpoint
 * is its binding. The node's SQLite database records this node's leases
 * (pending until the ADD completes) and hints at which addresses are taken.
 */
import { hostname } from "node:os";
import type { Lease } from "../../store/lease-store.ts";
import type { AddResult } from "../ipam/command.ts";
import type { Family } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import { type FamilyPools, type Pool, poolContains, resultIp } from "../ipam/pool.ts";
import { ORDINAL_IPS_ANNOTATION } from "../kube/crd.ts";
import type { EndpointIp, NamedObject, PodObject, StatefulSetObject } from "../kube/kube-api.ts";
import { abandonPending } from "./abandon-pending.ts";
import { nodeOfAdd } from "./add-node.ts";
import type { AddState, Claiming, ClusterAddInput, Taken } from "./add-state.ts";
import { claimNameOf, type Holder, releaseClaimIf, samePod } from "./claims.ts";
import { Deadline } from "./deadline.ts";
import { entryAddress, entryFor, entryUid } from "./endpoint-entries.ts";
import { releaseStaleEntry, writeEndpoint } from "./endpoint-write.ts";
import { ipamClaimOf, takeForIpamClaim } from "./ipamclaim-add.ts";
import { lostBinding } from "./lost-binding.ts";
import { ordinalIndex } from "./ordinal-index.ts";
import { podMembership } from "./pod-membership.ts";
import { choosePools } from "./pool-choice.ts";
import { withPoolFinalizer } from "./pool-finalizer.ts";
import { incarnationUid, isIncarnation, isStaticPod, type Membership } from "./statefulset.ts";
import { retakeBound, takeOrdinal } from "./take-bound.ts";
import { takeFree } from "./take-free.ts";
import { UndoLog } from "./undo-log.ts";

export type { ClusterAddInput } from "./add-state.ts";

/** Returns a held attachment's result straight from the node database, or undefined. */
export function heldResult(leases: Lease[]): AddResult | undefined {
  if (leases.length === 0 || leases.some((l) => l.state !== "active" || l.prefix === null)) return undefined;
  return {
    ips: leases.map((l) => ({ family: l.family, address: `${l.address}/${l.prefix}`, ...(l.gateway ? { gateway: l.gateway } : {}) })),
    routes: leases.flatMap((l) => (l.routes ? JSON.parse(l.routes) : [])),
  };
}

/** Allocates (or gives back) the pod's addresses for this interface; rolls back on failure or timeout. */
export async function clusterAdd(input: ClusterAddInput): Promise<AddResult> {
  const state: AddState = {
    ...input,
    api: withPoolFinalizer(input.api, input.log),
    deadline: new Deadline(input.conf.ipam.timeoutMs, input.api.server),
    undo: new UndoLog(),
    stats: { conflicts: 0 },
    nodeName: input.conf.ipam.nodeName ?? hostname(),
  };
  try {
    return await state.deadline.race(() => run(state));
  } catch (err) {
    await state.undo.run(input.log);
    throw err;
  }
}

async function run(s: AddState): Promise<AddResult> {
  const { api, store, log, conf } = s;
  // Leftovers of an interrupted ADD of this very attachment: undo them first.
  await abandonPending(api, store, conf.name, s.containerId, s.ifname, log);

  const pod = await readPod(s);
  s.nodeName = nodeOfAdd(conf.ipam.nodeName, pod);
  // The pod's element names an IPAMClaim: the addresses are the IPAMClaim's (ipamclaim-add.ts), whatever the pod is.
  const ic = await ipamClaimOf(s, pod);
  if (ic) {
    const families = await poolsFor(s, pod);
    const holder = { ...podHolder(s, pod), ipamClaim: { name: ic.metadata.name, uid: ic.metadata.uid! } };
    return finish(s, await takeForIpamClaim({ ...s, holder }, ic, families), { ipamClaim: `${s.pod.namespace}/${ic.metadata.name}` });
  }
  const uid = incarnationUid(pod);
  const endpoint = await api.getEndpoint(s.pod.namespace, s.pod.name);
  // Membership is the pod's; whether this network keeps a member's address is the network's.
  const membership = await podMembership(api, pod, endpoint);
  const sticky = conf.ipam.enableStatefulSet ? membership.member : undefined;
  const families = await poolsFor(s, pod);
  s.deadline.check();

  // This interface's binding holds for any pod whose sandbox is recreated, and for a member on a network
  // that keeps members' addresses. An earlier incarnation's entry that does not hold is cleared.
  // No endpoint at all for a member: a new one, or its endpoint was lost (lost-binding.ts).
  const entry = entryFor(endpoint, s.ifname) ?? (sticky && !endpoint ? await lostBinding(s, families, sticky.statefulSet) : undefined);
  const reuse = !!entry && (!!sticky || entryUid(endpoint!, entry) === uid);
  const keptForSet = entry && !reuse ? await releaseStaleEntry(s, endpoint!, entry) : false;
  // A pod that is no member, named like a member whose binding its set keeps (an owner reference that does
  // not name the live set: forged, or stale), takes an address of its own but leaves the endpoint to the
  // member: the endpoint is how the member finds its address again, and an entry overwritten would make
  // the controller judge the member's claim superseded and release it.
  const leaveEndpoint = keptForSet && !membership.member;

  const claiming: Claiming = { ...s, holder: { ...podHolder(s, pod), ...(sticky ? { statefulSet: sticky.statefulSet } : {}) } };
  const ordinalIndex = await ordinalPosition(s, pod, sticky, membership.sts);
  const taken: Taken[] = [];
  for (const { family, pools } of families) {
    s.deadline.check();
    taken.push(await takeFamily(claiming, family, pools, reuse ? entry : undefined, ordinalIndex));
  }

  // Every address is taken: finish even past the budget (a busy CPU must not roll back what the API server
  // accepted); confirmStillHeld re-reads the claims of an ADD that ran late.
  s.deadline.commit();
  if (leaveEndpoint) {
    log.info("endpoint left to the StatefulSet member whose binding it holds: this pod is no member of that set", {
      pod: `${s.pod.namespace}/${s.pod.name}`,
      ifname: s.ifname,
      statefulSet: endpoint!.spec.ownerControllerName,
      addresses: taken.map((t) => t.address).join(","),
    });
  } else {
    await writeEndpoint(s, endpoint, pod, membership.member, taken);
  }
  await confirmStillHeld(claiming, taken);
  return finish(s, taken, { statefulSet: sticky?.statefulSet });
}

/** The pod as the holder of what this ADD takes. */
function podHolder(s: AddState, pod: PodObject): Holder {
  return {
    namespace: s.pod.namespace,
    name: s.pod.name,
    uid: incarnationUid(pod),
    containerId: s.containerId,
    ifname: s.ifname,
    node: s.nodeName,
    network: s.conf.name,
    addDeadlineSeconds: claimDeadlineSeconds(s.conf.ipam.timeoutMs),
    ...(isStaticPod(pod) ? { staticPod: true } : {}),
  };
}

/** Makes the leases active (one durable commit), logs each address, and shapes the result. */
function finish(s: AddState, taken: Taken[], about: Record<string, string | undefined>): AddResult {
  const { store, log } = s;
  // One durable commit: the leases become active, and the hints learn the addresses are claimed
  // (until now the pending leases kept this node's other ADDs off them).
  store.immediate(() => {
    for (const t of taken) {
      store.activateLease(t.leaseId);
      store.hints.set(t.pool.name, t.address, true);
    }
  });
  // Pool status counts are derived data: the controller keeps them from its watch (pool-reconcile.ts).
  for (const t of taken) {
    log.info("address assigned", {
      address: t.address,
      pool: t.pool.name,
      pod: `${s.pod.namespace}/${s.pod.name}`,
      container: s.containerId,
      ifname: s.ifname,
      ...about,
      conflicts: s.stats.conflicts,
    });
  }
  return { ips: taken.map((t) => resultIp(t.pool, t.address)), routes: taken.flatMap((t) => t.pool.routes) };
}

/** The pod object; the UID the runtime gave must be this pod's (a recreated pod of the same name is another pod). */
async function readPod(s: AddState): Promise<PodObject> {
  const { namespace: ns, name } = s.pod;
  const pod = await s.api.getPod(ns, name);
  if (!pod) throw new IpamError("not-found", `pod ${ns}/${name} not found on API server ${s.api.server}`);
  const uid = pod.metadata.uid!;
  if (s.pod.uid && !isIncarnation(pod, s.pod.uid)) {
    throw new IpamError("not-found", `pod ${ns}/${name} on API server ${s.api.server} has UID ${uid}, not ${s.pod.uid}: the pod was deleted and recreated`);
  }
  return pod;
}

/** The candidate pools per family, in Spiderpool's order; the namespace and node are read only if a pool needs them. */
async function poolsFor(s: AddState, pod: PodObject): Promise<FamilyPools[]> {
  const { api, conf } = s;
  const once = <T>(fn: () => Promise<T>) => {
    let p: Promise<T> | undefined;
    return () => (p ??= fn());
  };
  const namespace = once<NamedObject | undefined>(() => api.getNamespace(s.pod.namespace));
  const node = once<NamedObject | undefined>(() => api.getNode(s.nodeName));
  const { families } = await choosePools({
    api,
    pod,
    ifname: s.ifname,
    network: conf.name,
    nodeName: s.nodeName,
    configDefaults: conf.ipam.defaultPools,
    namespace,
    node,
  });
  return families;
}

/**
 * Opt-in: StatefulSet pod N takes the Nth address of its pools, counted from
 * the set's `spec.ordinals.start`, predictable before the pod exists.
 */
async function ordinalPosition(s: AddState, pod: PodObject, member: Membership | undefined, sts: StatefulSetObject | undefined): Promise<number | undefined> {
  if (!member || pod.metadata.annotations?.[ORDINAL_IPS_ANNOTATION]?.toLowerCase() !== "true") return undefined;
  const set = sts ?? (await s.api.getStatefulSet(s.pod.namespace, member.statefulSet));
  return ordinalIndex(member, set, `${s.pod.namespace}/${s.pod.name}`);
}

/**
 * One family's address: the bound one when the pod still asks for its pool
 * and its claim is free or still this pod's, else the ordinal's or a free one.
 * A binding whose claim another pod holds now is stale (it was released, and
 * the endpoint not yet told): the pod takes another address rather than
 * insist on it.
 */
async function takeFamily(s: Claiming, family: Family, pools: Pool[], boundEntry: EndpointIp | undefined, ordinalIndex: number | undefined): Promise<Taken> {
  const fresh = () => (ordinalIndex === undefined ? takeFree(s, family, pools) : takeOrdinal(s, family, pools, ordinalIndex));
  const prev = entryAddress(boundEntry, family);
  if (!prev) return fresh();
  const pool = pools.find((p) => p.name === prev.pool && poolContains(p, prev.address));
  if (pool) {
    const retaken = await retakeBound(s, pool, prev.address, false);
    if (retaken) return retaken;
    s.log.info("bound address now held by another pod: its binding was stale; taking a new one", {
      address: prev.address,
      pod: `${s.holder.namespace}/${s.holder.name}`,
      ifname: s.ifname,
    });
    return fresh();
  }
  // The pod now asks for pools that do not hold its address: free it, take one from the new pools.
  const { namespace: ns, name } = s.holder;
  const freed = await releaseClaimIf(s.api, prev.address, (c) => samePod(c, s.holder) && c.spec.interface === s.ifname);
  if (freed) {
    s.store.cacheWrite(() => s.store.hints.set(freed, prev.address, false));
    s.log.info("address released: pod moved to another pool", { address: prev.address, pool: freed, pod: `${ns}/${name}` });
  }
  return fresh();
}

/**
 * How long after a claim's last write the controller must leave it alone: the
 * ADD's own budget, plus one request that may still be in flight when the
 * budget runs out (requests are capped at 10 s), plus the second-granularity
 * of server timestamps.
 */
export function claimDeadlineSeconds(timeoutMs: number): number {
  return Math.ceil((timeoutMs + Math.min(timeoutMs, 10_000)) / 1000) + 5;
}

/**
 * An ADD must never report an address whose claim it no longer holds. Within
 * its budget and half of its claims' deadline nobody may have taken them: the
 * controller leaves an unbound claim alone for the whole deadline, counted on
 * its own clock from when it first saw the claim, which was created after
 * this ADD started (so neither skewed API server clocks nor this node's can
 * shorten that). An ADD that ran past either reads them again before answering.
 */
async function confirmStillHeld(s: Claiming, taken: Taken[]): Promise<void> {
  if (s.deadline.elapsedMs() < Math.min(s.deadline.ms, (s.holder.addDeadlineSeconds * 1000) / 2)) return;
  for (const t of taken) {
    const claim = await s.api.getClaim(claimNameOf(t.address));
    if (!claim || claim.spec.containerID !== s.containerId || claim.spec.interface !== s.ifname) {
      throw new IpamError(
        "try-again",
        `address ${t.address} was released while this ADD ran (${Math.round(s.deadline.elapsedMs() / 1000)} s): its claim ${claim ? `is held by pod ${claim.spec.podNamespace}/${claim.spec.podName}` : "is gone"}`,
      );
    }
  }
}
