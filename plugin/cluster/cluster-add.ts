/**
 * Cluster-mode ADD. The API server decides: an address is taken by creating
 * its BerthIPClaim (AlreadyExists = someone has it), the pod's BerthEndpoint
 * is its binding. The node's SQLite database records this node's leases
 * (pending until the ADD completes) and hints at which addresses are taken.
 */
import { type Family, addressAt, countAddresses, findFree, formatAddress, inRanges, parseAddress } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import type { Logger } from "../support/logger.ts";
import type { PodIdentity } from "../ipam/pod-identity.ts";
import { type Pool, resultIp } from "../ipam/pool.ts";
import type { AddResult } from "../ipam/command.ts";
import type { Lease, LeaseStore } from "../../store/lease-store.ts";
import { type Holder, claimFor, claimNameOf, heldBy, releaseClaim } from "./claims.ts";
import { Deadline } from "./deadline.ts";
import { ORDINAL_IPS_ANNOTATION } from "../kube/crd.ts";
import type { EndpointIp, EndpointObject, KubeApi, NamedObject, PodObject } from "../kube/kube-api.ts";
import { KubeConflictError } from "../kube/kube-errors.ts";
import { isKind } from "../support/errors.ts";
import { choosePools } from "./pool-choice.ts";
import { CountDeltas, EXACT_COUNT_LIMIT, updatePoolCounts } from "./pool-counts.ts";
import { type Membership, statefulSetMembership } from "./statefulset.ts";
import { UndoLog } from "./undo-log.ts";
import type { NetConf } from "../ipam/config.ts";

/** Hints older than this are refreshed from a full LIST before they are used. */
export const HINT_TTL_MS = 30_000;
/** After this many AlreadyExists in a row, the hints are refreshed. */
const CONFLICTS_BEFORE_REFRESH = 8;

export interface ClusterAddInput {
  conf: NetConf;
  containerId: string;
  ifname: string;
  pod: PodIdentity;
  api: KubeApi;
  store: LeaseStore;
  log: Logger;
}

interface Taken {
  family: Family;
  address: string;
  pool: Pool;
  leaseId: number;
}

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
  const { conf, api, store, log } = input;
  const deadline = new Deadline(conf.ipam.timeoutMs, api.server);
  const undo = new UndoLog();
  const counts = new CountDeltas();
  try {
    return await deadline.race(() => run(input, deadline, undo, counts));
  } catch (err) {
    await undo.run(log);
    // Counts move with what was really undone; recount the touched pools.
    await updatePoolCounts(api, counts.deltas, log).catch(() => undefined);
    throw err;
  }
}

async function run(input: ClusterAddInput, deadline: Deadline, undo: UndoLog, counts: CountDeltas): Promise<AddResult> {
  const { conf, api, store, log, containerId, ifname } = input;
  const { ipam } = conf;
  const network = conf.name;
  const ns = input.pod.namespace;
  const podName = input.pod.name;

  // Leftovers of an interrupted ADD of this very attachment: undo them first.
  await abandonPending(api, store, network, containerId, ifname, log, counts);

  const pod = await api.getPod(ns, podName);
  if (!pod) throw new IpamError("not-found", `pod ${ns}/${podName} not found on API server ${api.server}`);
  const uid = pod.metadata.uid!;
  if (input.pod.uid && input.pod.uid !== uid) {
    throw new IpamError("not-found", `pod ${ns}/${podName} on API server ${api.server} has UID ${uid}, not ${input.pod.uid}: the pod was deleted and recreated`);
  }
  const member: Membership | undefined = ipam.enableStatefulSet ? statefulSetMembership(pod) : undefined;
  const once = <T>(fn: () => Promise<T>) => {
    let p: Promise<T> | undefined;
    return () => (p ??= fn());
  };
  const namespace = once<NamedObject | undefined>(() => api.getNamespace(ns));
  const node = once<NamedObject | undefined>(() => api.getNode(ipam.nodeName));
  const { families } = await choosePools({ api, pod, ifname, network, nodeName: ipam.nodeName, configDefaults: ipam.defaultPools, namespace, node });
  deadline.check();

  const endpoint = await api.getEndpoint(ns, podName);
  // The binding holds for a StatefulSet member whatever its UID, and for any pod whose sandbox is recreated.
  const reuse = !!endpoint && (!!member || endpoint.spec.podUID === uid);
  if (endpoint && !reuse) await releaseStaleEndpoint(api, endpoint, log, counts);

  // Opt-in: StatefulSet pod N takes the Nth address of its pools, predictable before the pod exists.
  let ordinalIndex: number | undefined;
  if (member && pod.metadata.annotations?.[ORDINAL_IPS_ANNOTATION]?.toLowerCase() === "true") {
    const sts = await api.getStatefulSet(ns, member.statefulSet);
    ordinalIndex = member.ordinal - (sts?.spec?.ordinals?.start ?? 0);
  }
  const holder: Holder = { namespace: ns, name: podName, uid, containerId, ifname, node: ipam.nodeName, ...(member ? { statefulSet: member.statefulSet } : {}) };
  const taken: Taken[] = [];
  for (const { family, pools } of families) {
    deadline.check();
    const prev = reuse ? previous(endpoint!, ifname, family) : undefined;
    if (prev) {
      const pool = pools.find((p) => p.name === prev.pool && contains(p, prev.address));
      if (pool) {
        taken.push(await reclaim(input, pool, prev.address, holder, undo, counts));
        continue;
      }
      // The pod now asks for pools that do not hold its address: free it, take one from the new pools.
      const freed = await releaseClaim(api, prev.address, (c) => c.spec.podNamespace === ns && c.spec.podName === podName);
      if (freed) {
        counts.add(freed, -1);
        store.setHint(freed, prev.address, false);
        log.info("address released: pod moved to another pool", { address: prev.address, pool: freed, pod: `${ns}/${podName}` });
      }
    }
    taken.push(ordinalIndex === undefined
      ? await claimFree(input, family, pools, holder, deadline, undo, counts)
      : await claimOrdinal(input, family, pools, ordinalIndex, holder, undo, counts));
  }

  deadline.check();
  await writeEndpoint(api, endpoint, pod, member, ifname, taken, containerId, ipam.nodeName, undo);
  store.immediate(() => {
    for (const t of taken) store.activateLease(t.leaseId);
  });
  await updatePoolCounts(api, counts.deltas, log);
  for (const t of taken) log.info("address assigned", { address: t.address, pool: t.pool.name, pod: `${ns}/${podName}`, container: containerId, ifname, statefulSet: member?.statefulSet });
  return { ips: taken.map((t) => resultIp(t.pool, t.address)), routes: taken.flatMap((t) => t.pool.routes) };
}

function contains(pool: Pool, address: string): boolean {
  const a = parseAddress(address);
  return !!a && a.family === pool.family && inRanges(a.value, pool.ranges);
}

function previous(ep: EndpointObject, ifname: string, family: Family): { address: string; pool: string } | undefined {
  const entry = ep.spec.ips.find((i) => i.interface === ifname);
  const cidr = family === 4 ? entry?.ipv4 : entry?.ipv6;
  const pool = family === 4 ? entry?.ipv4Pool : entry?.ipv6Pool;
  return cidr && pool ? { address: cidr.split("/")[0], pool } : undefined;
}

/** Records a pending lease before its claim exists, so a crash in between is found by the next command. */
function pending(input: ClusterAddInput, pool: Pool, address: string): number | undefined {
  const { store, conf } = input;
  try {
    return store.immediate(() =>
      store.addLease({
        network: conf.name, address, family: pool.family, pool: pool.name, container_id: input.containerId, ifname: input.ifname,
        pod_namespace: input.pod.namespace, pod_name: input.pod.name, pod_uid: input.pod.uid ?? null,
        state: "pending", prefix: pool.subnet.prefix, gateway: pool.gateway ?? null, routes: JSON.stringify(pool.routes),
      }));
  } catch (err) {
    // Another attachment on this node holds it locally: taken, whatever the hints say.
    if (String((err as { code?: string }).code).startsWith("SQLITE_CONSTRAINT")) return undefined;
    throw err;
  }
}

/** Takes back the pod's bound address: its claim is updated to this sandbox, or re-created if it vanished. */
async function reclaim(input: ClusterAddInput, pool: Pool, address: string, holder: Holder, undo: UndoLog, counts: CountDeltas): Promise<Taken> {
  const { api, store } = input;
  const local = store.leaseAt(input.conf.name, address);
  if (local) {
    const samePod = local.pod_namespace === holder.namespace && local.pod_name === holder.name;
    // The API server decides whose the address is. A local lease is stale when it is an older
    // sandbox of this pod (its DEL never came), or when it belongs to another pod whose ADD had
    // completed but whose claim is gone or now held by this pod (the controller freed it while
    // this node never saw the DEL). A pending lease of another pod is an ADD in flight: a conflict.
    const claim = samePod ? undefined : await api.getClaim(claimNameOf(address));
    const ours = !!claim && claim.spec.podNamespace === holder.namespace && claim.spec.podName === holder.name;
    if (samePod || ours || (local.state === "active" && !claim)) {
      store.deleteLease(local.id);
      if (!samePod) input.log.info("stale local lease dropped", { address, container: local.container_id, pod: `${local.pod_namespace}/${local.pod_name}` });
    }
  }
  const leaseId = pending(input, pool, address);
  if (leaseId === undefined) throw new IpamError("conflict", `address ${address} bound to pod ${holder.namespace}/${holder.name} is leased on this node to container ${local?.container_id}`);
  for (let attempt = 0; attempt < 3; attempt++) {
    const claim = await api.getClaim(claimNameOf(address));
    if (claim && !(claim.spec.podNamespace === holder.namespace && claim.spec.podName === holder.name)) {
      store.immediate(() => store.deleteLease(leaseId));
      throw new IpamError("conflict", `address ${address} bound to pod ${holder.namespace}/${holder.name} is claimed by pod ${claim.spec.podNamespace}/${claim.spec.podName} on node ${claim.spec.node}`);
    }
    try {
      if (claim) {
        await api.updateClaim(claimFor(pool.family, address, pool.name, holder, claim));
      } else {
        const created = await api.createClaim(claimFor(pool.family, address, pool.name, holder));
        counts.add(pool.name, 1);
        undo.push(`delete claim ${created.metadata.name}`, async () => {
          if (await api.deleteClaim(created.metadata.name, created.metadata.uid!)) counts.add(pool.name, -1);
        });
      }
      store.setHint(pool.name, address, true);
      return { family: pool.family, address, pool, leaseId };
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err; // lost a race with another writer: read again
    }
  }
  throw new IpamError("conflict", `address ${address} of pod ${holder.namespace}/${holder.name}: its claim kept changing under us`);
}

/** Claims a free address from the first pool that has one. */
async function claimFree(input: ClusterAddInput, family: Family, candidates: Pool[], holder: Holder, deadline: Deadline, undo: UndoLog, counts: CountDeltas): Promise<Taken> {
  // A pool being deleted keeps serving the pods bound to it, and takes no new ones.
  const pools = candidates.filter((p) => !p.deleting);
  if (pools.length === 0) {
    throw new IpamError("no-pool", `no IPv${family} pool can serve pod ${holder.namespace}/${holder.name}: ${candidates.map((p) => p.name).join(", ")} being deleted`);
  }
  for (const pool of pools) {
    const t = await claimInPool(input, pool, holder, deadline, undo, counts);
    if (t) return t;
  }
  const usage = await Promise.all(pools.map(async (p) => `${p.name} (${(await input.api.listClaims(p.name, true)).length} of ${p.total} claimed)`));
  throw new IpamError(
    "exhausted",
    pools.length === 1 ? `IPv${family} pool ${usage[0].replace(" (", " exhausted (")}` : `every IPv${family} pool exhausted: ${usage.join(", ")}`,
    `pod ${holder.namespace}/${holder.name}, container ${holder.containerId}, interface ${holder.ifname}`,
  );
}

/**
 * Ordinal-ordered mode: the address at position `index` of the pools' addresses
 * (in order, spilling from one pool into the next). Taken by another pod: an
 * error, never a silent substitute, since operators rely on the prediction.
 */
async function claimOrdinal(input: ClusterAddInput, family: Family, candidates: Pool[], index: number, holder: Holder, undo: UndoLog, counts: CountDeltas): Promise<Taken> {
  let rest = BigInt(index);
  for (const pool of candidates.filter((p) => !p.deleting)) {
    if (rest >= pool.total) {
      rest -= pool.total;
      continue;
    }
    const address = formatAddress(pool.family, addressAt(pool.ranges, rest)!);
    const holderNow = await input.api.getClaim(claimNameOf(address));
    if (holderNow && !(holderNow.spec.podNamespace === holder.namespace && holderNow.spec.podName === holder.name)) {
      throw new IpamError("conflict", `address ${address} (position ${index} of pool ${pool.name}, for ordinal-ordered pod ${holder.namespace}/${holder.name}) is claimed by pod ${holderNow.spec.podNamespace}/${holderNow.spec.podName}`);
    }
    return reclaim(input, pool, address, holder, undo, counts);
  }
  throw new IpamError("exhausted", `no IPv${family} address at position ${index} for ordinal-ordered pod ${holder.namespace}/${holder.name}: pools ${candidates.map((p) => `${p.name} (${p.total})`).join(", ")} are smaller`);
}

async function refreshHints(input: ClusterAddInput, pool: Pool): Promise<void> {
  // The watch cache's view: a moment stale at worst, which hints tolerate (the create decides).
  const claims = await input.api.listClaims(pool.name);
  input.store.immediate(() => input.store.replaceHints(pool.name, claims.map((c) => c.spec.address)));
}

async function claimInPool(input: ClusterAddInput, pool: Pool, holder: Holder, deadline: Deadline, undo: UndoLog, counts: CountDeltas): Promise<Taken | undefined> {
  const { api, store } = input;
  if (pool.total === 0n) return undefined;
  // A large pool is never LISTed up front: listing tens of thousands of claims costs seconds. Its
  // ADDs probe random addresses the hints do not know as taken; each AlreadyExists teaches the
  // hints. At 90% full that is ~10 creates, not a LIST. Only many conflicts in a row, or finding
  // nothing, make it LIST once, and exhaustion is declared only after that.
  const large = pool.total > EXACT_COUNT_LIMIT;
  let refreshed = false;
  const listedAt = store.hintsListedAt(pool.name);
  if (!large && (listedAt === undefined || Date.now() - listedAt > HINT_TTL_MS)) {
    await refreshHints(input, pool);
    refreshed = true;
  }
  const taken = (v: bigint) => store.hintedTaken(pool.name, formatAddress(pool.family, v));
  const size = Number(countAddresses(pool.ranges));
  const randomIndex = () => BigInt(Math.floor(Math.random() * size));
  // Start somewhere random: nodes racing for one pool then rarely want the same address.
  const start = addressAt(pool.ranges, randomIndex())!;
  let conflicts = 0;
  for (;;) {
    deadline.check();
    let value: bigint | undefined;
    if (large && !refreshed) {
      for (let i = 0; i < 32 && value === undefined; i++) {
        const v = addressAt(pool.ranges, randomIndex())!;
        if (!taken(v)) value = v;
      }
    }
    value ??= findFree(pool.ranges, start - 1n, (v) => !taken(v));
    if (value === undefined) {
      if (refreshed) return undefined; // a fresh LIST agrees: the pool is full
      await refreshHints(input, pool);
      refreshed = true;
      continue;
    }
    const address = formatAddress(pool.family, value);
    const leaseId = pending(input, pool, address);
    if (leaseId === undefined) {
      store.setHint(pool.name, address, true);
      continue;
    }
    try {
      const created = await api.createClaim(claimFor(pool.family, address, pool.name, holder));
      counts.add(pool.name, 1);
      // Fault injection for the crash tests: die the hardest way right after the claim exists.
      if (process.env.BERTH_FAULT === "kill-after-claim") process.kill(process.pid, "SIGKILL");
      // Register the undo first: whatever fails from here on must give the claim back.
      undo.push(`delete claim ${created.metadata.name}`, async () => {
        if (await api.deleteClaim(created.metadata.name, created.metadata.uid!)) {
          counts.add(pool.name, -1);
          store.setHint(pool.name, address, false);
        }
        store.deleteLease(leaseId);
      });
      store.setHint(pool.name, address, true);
      return { family: pool.family, address, pool, leaseId };
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err; // the pending lease stays: DEL or the next ADD resolves it
      store.immediate(() => {
        store.deleteLease(leaseId);
        store.setHint(pool.name, address, true);
      });
      if (++conflicts % (large ? CONFLICTS_BEFORE_REFRESH * 8 : CONFLICTS_BEFORE_REFRESH) === 0 && !refreshed) {
        await refreshHints(input, pool);
        refreshed = true;
      }
    }
  }
}

/** Writes the pod's BerthEndpoint with this interface's addresses (the binding). */
async function writeEndpoint(
  api: KubeApi, current: EndpointObject | undefined, pod: PodObject, member: Membership | undefined, ifname: string,
  taken: Taken[], containerId: string, node: string, undo: UndoLog,
): Promise<void> {
  const entry: EndpointIp = { interface: ifname };
  for (const t of taken) {
    const cidr = `${t.address}/${t.pool.subnet.prefix}`;
    if (t.family === 4) Object.assign(entry, { ipv4: cidr, ipv4Pool: t.pool.name }, t.pool.gateway ? { ipv4Gateway: t.pool.gateway } : {});
    else Object.assign(entry, { ipv6: cidr, ipv6Pool: t.pool.name }, t.pool.gateway ? { ipv6Gateway: t.pool.gateway } : {});
  }
  const uid = pod.metadata.uid!;
  for (let attempt = 0; attempt < 5; attempt++) {
    const ep = attempt === 0 ? current : await api.getEndpoint(pod.metadata.namespace!, pod.metadata.name);
    // Other interfaces of the same pod (or the same StatefulSet member) stay.
    const others = ep && (ep.spec.podUID === uid || member) ? ep.spec.ips.filter((i) => i.interface !== ifname) : [];
    const spec = {
      podUID: uid, node, containerID: containerId,
      ownerControllerType: member ? ("StatefulSet" as const) : ("None" as const),
      ...(member ? { ownerControllerName: member.statefulSet } : {}),
      ips: [...others, entry],
    };
    try {
      if (ep) {
        await api.updateEndpoint({ metadata: ep.metadata, spec });
        undo.push(`restore endpoint ${ep.metadata.namespace}/${ep.metadata.name}`, async () => {
          const now = await api.getEndpoint(ep.metadata.namespace!, ep.metadata.name);
          if (now) await api.updateEndpoint({ metadata: now.metadata, spec: ep.spec });
        });
      } else {
        const created = await api.createEndpoint({ metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace }, spec });
        undo.push(`delete endpoint ${pod.metadata.namespace}/${pod.metadata.name}`, () => api.deleteEndpoint(pod.metadata.namespace!, pod.metadata.name, created.metadata.uid!));
      }
      return;
    } catch (err) {
      if (!isKind(err, KubeConflictError)) throw err;
    }
  }
  throw new IpamError("try-again", `endpoint ${pod.metadata.namespace}/${pod.metadata.name} kept changing under us`);
}

/** An earlier pod of this name (not a StatefulSet member) left an endpoint: free what its UID still claims. */
async function releaseStaleEndpoint(api: KubeApi, ep: EndpointObject, log: Logger, counts: CountDeltas): Promise<void> {
  for (const entry of ep.spec.ips) {
    for (const cidr of [entry.ipv4, entry.ipv6]) {
      if (!cidr) continue;
      const address = cidr.split("/")[0];
      const freed = await releaseClaim(api, address, (c) => c.spec.podUID === ep.spec.podUID);
      if (freed) {
        counts.add(freed, -1);
        log.info("address released: left by an earlier pod of this name", { address, pool: freed, pod: `${ep.metadata.namespace}/${ep.metadata.name}`, uid: ep.spec.podUID });
      }
    }
  }
}

/**
 * Undoes what an interrupted ADD of this attachment left: pending leases and
 * the claims they were about to take (if this container holds them).
 */
export async function abandonPending(api: KubeApi, store: LeaseStore, network: string, containerId: string, ifname: string, log: Logger, counts: CountDeltas): Promise<void> {
  const stale = store.leasesOf(network, containerId, ifname).filter((l) => l.state === "pending");
  if (stale.length === 0) return;
  const first = stale[0];
  // An address the pod's endpoint lists is its binding (a StatefulSet member being re-taken): keep that claim.
  const ep = first.pod_namespace && first.pod_name ? await api.getEndpoint(first.pod_namespace, first.pod_name) : undefined;
  const bound = new Set((ep?.spec.ips ?? []).flatMap((i) => [i.ipv4, i.ipv6]).filter((c): c is string => !!c).map((c) => c.split("/")[0]));
  for (const l of stale) {
    const freed = bound.has(l.address)
      ? undefined
      : await releaseClaim(api, l.address, (c) => heldBy(c, l.pod_namespace ?? "", l.pod_name ?? "", containerId, undefined) && c.spec.containerID === containerId);
    if (freed) counts.add(freed, -1);
    store.immediate(() => {
      store.deleteLease(l.id);
      if (freed) store.setHint(l.pool, l.address, false);
    });
    log.info("undid an interrupted ADD", { address: l.address, pool: l.pool, container: containerId, claimDeleted: !!freed });
  }
}
