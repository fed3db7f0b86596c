/**
 * The plan of `berth adopt`: per address the other IPAM gave out, whether
 * berth takes it over (adopt), already has it (skip, or the holder is gone:
 * skip), or cannot (conflict), with the reason; and the pools it needs. It
 * reads, never writes: apply.ts carries the plan out.
 */
import { claimFor, claimNameOf, type Holder } from "../cluster/claims.ts";
import { claimDeadlineSeconds } from "../cluster/cluster-add.ts";
import { entryAddress, entryFor, setEntryAddress } from "../cluster/endpoint-entries.ts";
import { toPool } from "../cluster/pool-choice.ts";
import { incarnationUid, stsKeeps, verifyMembership } from "../cluster/statefulset.ts";
import { inRanges, parseAddress } from "../ipam/ip.ts";
import { ordinalOf } from "../ipam/pod-identity.ts";
import { NETWORK_STATUS_ANNOTATION, networkStatus } from "../ipam/pod-shown.ts";
import type { Pool } from "../ipam/pool.ts";
import type { AdoptApi } from "../kube/adopt-client.ts";
import { ADOPTED_FROM_LABEL } from "../kube/crd.ts";
import type { ClaimObject, EndpointIp, PodObject, PoolObject, StatefulSetObject } from "../kube/kube-api.ts";
import { type PoolNote, poolNotes } from "./pool-notes.ts";
import type { Source, SourceRead, SourceRecord } from "./source-record.ts";

export type Action = "adopt" | "skip" | "conflict";

/** One address of the plan, as `-o json` prints it. */
export interface PlanItem {
  address: string;
  pool: string | null;
  pod: string;
  interface: string;
  action: Action;
  reason: string;
}

/** What apply writes for an item: the claim (a replacement when `replaces` is set) and the pod's endpoint entry. */
export interface Write {
  claim: ClaimObject;
  replaces?: ClaimObject;
  entry: EndpointIp;
  endpoint: { namespace: string; name: string; podUID: string; node: string; containerID?: string; statefulSet?: string };
}

export interface Planned extends PlanItem {
  write?: Write;
}

export interface Plan {
  plan: Planned[];
  pools: PoolNote[];
  /** Addresses no SpiderIPPool holds (adopt cannot run without their pools). */
  missing: string[];
  /** Pool objects by name, as read (apply writes excludeIPs on them). */
  poolObjects: Map<string, PoolObject>;
}

export interface PlanOptions {
  source: Source;
  /** The interface when the records and the pod's network-status do not say (--interface). */
  defaultInterface: string;
}

/** A claim field the source did not record (no sandbox ID in Spiderpool, no UID for a gone pod in Whereabouts). */
export const UNKNOWN = "unknown";

export async function makePlan(api: AdoptApi, read: SourceRead, opts: PlanOptions): Promise<Plan> {
  const poolObjects = new Map((await api.listPools()).map((p) => [p.metadata.name, p]));
  const pools: Pool[] = [];
  for (const obj of [...poolObjects.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    try {
      pools.push(toPool(obj));
    } catch {
      // An invalid pool serves nobody: an address only it would hold shows as needing a pool.
    }
  }
  const pods = cached((key: string) => api.getPod(...split(key)));
  const sets = cached((key: string) => api.getStatefulSet(...split(key)));
  const getSet = (ns: string, name: string) => sets(`${ns}/${name}`);

  const byAddress = new Map<string, SourceRecord[]>();
  for (const r of read.records) byAddress.set(r.address, [...(byAddress.get(r.address) ?? []), r]);
  const out: Planned[] = [];
  const missing: string[] = [];
  /** pod/interface/family already given an address by this plan. */
  const given = new Map<string, string>();

  for (const [address, records] of [...byAddress].sort(([a], [b]) => compareAddresses(a, b))) {
    const holders = new Map<string, SourceRecord[]>();
    for (const r of records) holders.set(`${r.namespace}/${r.name}`, [...(holders.get(`${r.namespace}/${r.name}`) ?? []), r]);
    const live: string[] = [];
    for (const key of holders.keys()) if (await pods(key)) live.push(key);
    const pool = pools.find((p) => p.family === records[0].family && inRanges(parseAddress(address)!.value, p.ips));
    const base = { address, pool: pool?.name ?? null };
    const sources = records.map((r) => r.from).join("; ");

    if (live.length > 1) {
      out.push({ ...base, pod: live.join(","), interface: "", action: "conflict", reason: `${opts.source} gives it to ${live.length} live pods (${sources})` });
      continue;
    }
    let key = live[0];
    let member: { set: string; sts: StatefulSetObject } | undefined;
    if (!key) {
      // No holder lives: only a StatefulSet member whose set still keeps its ordinal is adopted.
      const kept: string[] = [];
      for (const [k, rs] of holders) {
        const m = await keptMember(k, rs, getSet);
        if (m) kept.push(k), (member = m);
      }
      if (kept.length !== 1) {
        const pod = [...holders.keys()].join(",");
        const reason =
          kept.length > 1
            ? `${opts.source} gives it to ${kept.length} StatefulSet members that are gone (${sources})`
            : `pod ${pod} no longer exists and is no StatefulSet member its set keeps: not adopted, the address is free for berth (${sources})`;
        out.push({ ...base, pod, interface: "", action: kept.length > 1 ? "conflict" : "skip", reason });
        continue;
      }
      key = kept[0];
    }
    const rs = holders.get(key)!;
    const [ns, name] = split(key);
    const pod = await pods(key);
    const ifname = rs.find((r) => r.interface)?.interface ?? (pod && statusInterface(pod, address)) ?? opts.defaultInterface;
    const item = { ...base, pod: key, interface: ifname };
    const family = records[0].family;
    const slot = `${key}/${ifname}/${family}`;
    if (given.has(slot)) {
      out.push({
        ...item,
        action: "conflict",
        reason: `pod ${key} already gets ${given.get(slot)} on ${ifname} in this plan: one address per family and interface (its interface is not recorded; give --interface, or check the pod's network-status)`,
      });
      continue;
    }
    if (!pool) {
      missing.push(address);
      out.push({ ...item, action: "adopt", reason: `no SpiderIPPool holds ${address}: create the pool listed under pools first (${sources})` });
      given.set(slot, address);
      continue;
    }

    const verified = pod ? await verifyMembership(pod, getSet) : undefined;
    const statefulSet = verified?.member.statefulSet ?? member?.set;
    // The API server refuses an empty string in a claim's required fields: what the source did not record is UNKNOWN.
    const uid = pod ? incarnationUid(pod) : (rs.find((r) => r.podUid)?.podUid ?? UNKNOWN);
    const containerId = rs.find((r) => r.containerId)?.containerId ?? "";
    const node = pod?.spec?.nodeName || rs.find((r) => r.node)?.node || UNKNOWN;
    const holder: Holder = {
      namespace: ns,
      name,
      uid,
      containerId: containerId || UNKNOWN,
      ifname,
      node,
      network: "",
      addDeadlineSeconds: claimDeadlineSeconds(30_000),
      ...(statefulSet ? { statefulSet } : {}),
    };
    const claim = claimFor(family, address, pool.name, holder);
    claim.metadata.labels = { ...claim.metadata.labels, [ADOPTED_FROM_LABEL]: opts.source };
    const existing = await api.getClaim(claimNameOf(address));
    const ep = await api.getEndpoint(ns, name);
    const bound = entryAddress(entryFor(ep, ifname), family);
    const whose = pod ? `live pod ${key}` : `StatefulSet ${ns}/${statefulSet} member ${key} (pod gone, ordinal kept)`;
    given.set(slot, address);

    if (existing) {
      const s = existing.spec;
      if (s.podNamespace !== ns || s.podName !== name || s.interface !== ifname) {
        out.push({ ...item, action: "conflict", reason: `berth holds it for pod ${s.podNamespace}/${s.podName} interface ${s.interface}; left alone` });
        continue;
      }
      const stale = !!pod && s.podUID !== uid && existing.metadata.labels?.[ADOPTED_FROM_LABEL] !== undefined;
      if (!stale) {
        // An adopted claim whose endpoint entry a run cut short never wrote: written now. berth's own claims are its ADD's.
        const adopted = existing.metadata.labels?.[ADOPTED_FROM_LABEL] !== undefined;
        const entry = !adopted || bound?.address === address ? undefined : entryOf(ifname, uid, address, pool);
        out.push({
          ...item,
          action: "skip",
          reason: `berth already holds it for this pod${entry ? " (its endpoint entry is written back)" : ""}`,
          ...(entry && !bound ? { write: { claim: existing, entry, endpoint: { namespace: ns, name, podUID: uid, node, statefulSet } } } : {}),
        });
        continue;
      }
      out.push({
        ...item,
        action: "adopt",
        reason: `berth's adopted claim named an earlier incarnation (UID ${s.podUID}); re-adopted for ${whose} (UID ${uid})`,
        write: {
          claim: { ...claim, metadata: { ...existing.metadata, labels: claim.metadata.labels } },
          replaces: existing,
          entry: entryOf(ifname, uid, address, pool),
          endpoint: epOf(),
        },
      });
      continue;
    }
    if (bound && bound.address !== address) {
      out.push({ ...item, action: "conflict", reason: `berth's endpoint of pod ${key} binds ${ifname} to ${bound.address}; left alone` });
      continue;
    }
    out.push({ ...item, action: "adopt", reason: `${whose} (${sources})`, write: { claim, entry: entryOf(ifname, uid, address, pool), endpoint: epOf() } });

    function epOf(): Write["endpoint"] {
      return { namespace: ns, name, podUID: uid, node, ...(containerId ? { containerID: containerId } : {}), ...(statefulSet ? { statefulSet } : {}) };
    }
  }
  return { plan: out, missing, poolObjects, pools: poolNotes(opts.source, read, out, pools, poolObjects) };
}

/** The endpoint entry berth's ADD would have written for the address. */
function entryOf(ifname: string, uid: string, address: string, pool: Pool): EndpointIp {
  const entry: EndpointIp = { interface: ifname, podUID: uid };
  setEntryAddress(entry, pool, address);
  return entry;
}

/**
 * A gone pod's StatefulSet, if its set still keeps the ordinal (in range, or
 * Retain). The set is the one the records name (SpiderEndpoint); Whereabouts
 * records none, so the pod's name is read as `<set>-<ordinal>`.
 */
async function keptMember(
  key: string,
  rs: SourceRecord[],
  getSet: (ns: string, name: string) => Promise<StatefulSetObject | undefined>,
): Promise<{ set: string; sts: StatefulSetObject } | undefined> {
  const [ns, name] = split(key);
  const set = rs.find((r) => r.statefulSet)?.statefulSet ?? /^(.+)-\d+$/.exec(name)?.[1];
  const ordinal = set ? ordinalOf(name, set) : undefined;
  if (!set || ordinal === undefined) return undefined;
  const sts = await getSet(ns, set);
  return sts && stsKeeps(sts, ordinal) ? { set, sts } : undefined;
}

/** The interface Multus' network-status shows the address on, if it does. */
function statusInterface(pod: PodObject, address: string): string | undefined {
  const hit = networkStatus(pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]).find((n) => n.ips?.some((ip) => ip.split("/")[0] === address));
  return hit?.interface || undefined;
}

function split(key: string): [string, string] {
  const i = key.indexOf("/");
  return [key.slice(0, i), key.slice(i + 1)];
}

function cached<T>(fn: (key: string) => Promise<T>): (key: string) => Promise<T> {
  const memo = new Map<string, Promise<T>>();
  return (key) => {
    let p = memo.get(key);
    if (!p) memo.set(key, (p = fn(key)));
    return p;
  };
}

function compareAddresses(a: string, b: string): number {
  const x = parseAddress(a)!;
  const y = parseAddress(b)!;
  return x.family - y.family || (x.value < y.value ? -1 : x.value > y.value ? 1 : 0);
}
