/**
 * What `berth check` judges a cluster on: every pool, claim, endpoint, pod,
 * StatefulSet and node, each LISTed in pages (no lock, no watch: it runs
 * beside live ADDs and the controller), kept only as far as the checks read
 * them. Pods are kept by what they show: the addresses inside berth pools in
 * their `status.podIPs` and in Multus' `k8s.v1.cni.cncf.io/network-status`,
 * which berth does not write, so a check sees what berth's own records would
 * hide.
 */

import { entryAddresses, entryUid } from "../cluster/endpoint-entries.ts";
import { toPool } from "../cluster/pool-choice.ts";
import { CONFIG_MIRROR_ANNOTATION, incarnationUid } from "../cluster/statefulset.ts";
import { inRanges } from "../ipam/ip.ts";
import { ipamClaimNames, NETWORKS_ANNOTATION } from "../ipam/multus-network.ts";
import { shownAddresses } from "../ipam/pod-shown.ts";
import type { Pool } from "../ipam/pool.ts";
import type { ControllerApi, NodeObject } from "../kube/controller-api.ts";
import type { ClaimObject, EndpointObject, IpamClaimObject, PodObject, PoolObject, StatefulSetObject } from "../kube/kube-api.ts";
import { collectGarbage } from "../support/collect-garbage.ts";

/** An address a pod shows, and where it shows it ("status.podIPs", or the network-status interface). */
export interface Shown {
  address: string;
  where: string;
}

/** A pod as the checks read it. */
export interface PodFacts {
  namespace: string;
  name: string;
  uid: string;
  /** The UID berth records for it (a static pod's kubelet UID). */
  incarnation: string;
  resourceVersion?: string;
  phase: string;
  deletion?: string;
  node?: string;
  mirror?: string;
  /** No deletionTimestamp, phase Pending or Running. */
  live: boolean;
  /** The addresses inside berth pools it shows. */
  shown: Shown[];
  /** Its Multus networks annotation, when it names an IPAMClaim (judge-claim.ts reads it). */
  networks?: string;
}

/** A BerthEndpoint as the checks read it. */
export interface EndpointFacts {
  namespace: string;
  name: string;
  resourceVersion?: string;
  /** Its entries, each with its incarnation and addresses (without prefix). */
  entries: { interface: string; podUID: string; addresses: string[] }[];
}

/** A SpiderIPPool, with its spec parsed (undefined when its spec is invalid). */
export interface PoolFacts {
  object: PoolObject;
  pool?: Pool;
  error?: string;
}

export interface ClusterFacts {
  pools: Map<string, PoolFacts>;
  claims: ClaimObject[];
  pods: Map<string, PodFacts>;
  endpoints: EndpointFacts[];
  statefulSets: Map<string, StatefulSetObject>;
  nodes: Map<string, NodeObject>;
  /** IPAMClaims by namespace/name; undefined when they could not be listed (not served, no permission). */
  ipamClaims?: Map<string, IpamClaimObject>;
  /** Whether a controller holds its Lease now: only then are pool counts kept. */
  controllerLeads: boolean;
  /** The API server's time when the lists were taken (ms since the epoch). */
  now: number;
  /** LIST requests per kind. */
  requests: Map<string, number>;
}

const key = (ns: string | undefined, name: string) => `${ns}/${name}`;

/** Pages (of any list) between forced collections while listing. */
const GC_PAGES = 20;

/** Lists everything the checks need, in pages of `pageSize`. */
export async function gatherFacts(api: ControllerApi, pageSize: number, lease: { namespace: string; name: string }): Promise<ClusterFacts> {
  const requests = new Map<string, number>();
  const pools = new Map<string, PoolFacts>();
  for (const object of await api.listPools()) {
    try {
      pools.set(object.metadata.name, { object, pool: toPool(object) });
    } catch (err) {
      pools.set(object.metadata.name, { object, error: (err as Error).message });
    }
  }
  requests.set("pools", 1);
  const covered = [...pools.values()].flatMap((p) => (p.pool ? [p.pool] : []));
  const claims: ClaimObject[] = [];
  const pods = new Map<string, PodFacts>();
  const endpoints: EndpointFacts[] = [];
  const statefulSets = new Map<string, StatefulSetObject>();
  const nodes = new Map<string, NodeObject>();
  const counted = async (kind: string, run: () => Promise<number>) => requests.set(kind, await run());
  // Every GC_PAGES pages (of any list), a full collection: each page parsed is garbage once kept slim, and
  // the engine would otherwise let it pile up far past the live data (find-problems.ts has the figures).
  let pages = 0;
  const paged = () => {
    if (++pages % GC_PAGES === 0) collectGarbage();
  };
  await counted("claims", () =>
    api.listAllClaims(pageSize, (page) => {
      for (const c of page) claims.push(slimmer(c));
      paged();
    }),
  );
  const claimed = new Set(claims.map((c) => key(c.spec.podNamespace, c.spec.podName)));
  await Promise.all([
    counted("pods", () =>
      api.listAllPods(pageSize, (page) => {
        for (const p of page) {
          // A pod no claim names, that shows no berth address and names no IPAMClaim (whose claim it may still
          // need: judge-claim.ts) is nothing to any check: not kept.
          const k = key(p.metadata.namespace, p.metadata.name);
          const facts = podFacts(p, covered);
          if (facts.shown.length || claimed.has(k) || facts.networks) pods.set(k, facts);
        }
        paged();
      }),
    ),
    counted("endpoints", () =>
      api.listAllEndpoints(pageSize, (page) => {
        for (const e of page) endpoints.push(endpointFacts(e));
        paged();
      }),
    ),
    counted("statefulsets", () =>
      api.listAllStatefulSets(pageSize, (page) => {
        for (const s of page) statefulSets.set(key(s.metadata.namespace, s.metadata.name), s);
        paged();
      }),
    ),
    counted("nodes", () =>
      api.listAllNodes(pageSize, (page) => {
        for (const n of page) nodes.set(n.metadata.name, n);
        paged();
      }),
    ),
  ]);
  collectGarbage();
  const ipamClaims = await listIpamClaims(api, pageSize);
  const now = api.serverNow();
  const l = await api.getLease(lease.namespace, lease.name).catch(() => undefined);
  const renewed = l?.spec.renewTime ? Date.parse(l.spec.renewTime) : Number.NaN;
  const controllerLeads = !!l?.spec.holderIdentity && renewed + (l.spec.leaseDurationSeconds ?? 8) * 1000 > now;
  return { pools, claims, pods, endpoints, statefulSets, nodes, ipamClaims, controllerLeads, now, requests };
}

/**
 * Every IPAMClaim; undefined when they cannot be listed (no permission, or
 * the kind is not served, which a restarting API server also answers): the
 * IPAMClaim-held claims are then held, never reported as orphans.
 */
async function listIpamClaims(api: ControllerApi, pageSize: number): Promise<Map<string, IpamClaimObject> | undefined> {
  const out = new Map<string, IpamClaimObject>();
  try {
    await api.listAllIpamClaims(pageSize, (page) => {
      for (const ic of page) out.set(key(ic.metadata.namespace, ic.metadata.name), ic);
    });
  } catch {
    return undefined;
  }
  return out;
}

/** A claim with what the checks read: its spec, identity, version and timestamps (no managedFields but their times). */
function slimmer(c: ClaimObject): ClaimObject {
  const times = (c.metadata.managedFields ?? []).map((f) => ({ time: f.time }));
  return {
    metadata: {
      name: c.metadata.name,
      uid: c.metadata.uid,
      resourceVersion: c.metadata.resourceVersion,
      creationTimestamp: c.metadata.creationTimestamp,
      generation: c.metadata.generation,
      managedFields: times,
    },
    spec: c.spec,
  };
}

/** The pod as the checks read it, keeping only the addresses it shows inside `pools`. */
export function podFacts(p: PodObject & { status?: { podIPs?: { ip?: string }[] } }, pools: Pool[]): PodFacts {
  const m = p.metadata;
  const phase = p.status?.phase ?? "";
  const shown: Shown[] = [];
  const seen = new Set<string>();
  for (const { address, family, value, where } of shownAddresses(p)) {
    if (!pools.some((pool) => pool.family === family && inRanges(value, pool.ips)) || seen.has(`${address} ${where}`)) continue;
    seen.add(`${address} ${where}`);
    shown.push({ address, where });
  }
  // One address shown by both (Multus lists the default network too) counts once, as the interface it names.
  const byAddress = new Map<string, Shown>();
  for (const s of shown) if (!byAddress.has(s.address) || byAddress.get(s.address)!.where === "status.podIPs") byAddress.set(s.address, s);
  return {
    namespace: m.namespace ?? "",
    name: m.name,
    uid: m.uid ?? "",
    incarnation: m.uid ? incarnationUid(p) : "",
    resourceVersion: m.resourceVersion,
    phase,
    deletion: m.deletionTimestamp,
    node: p.spec?.nodeName,
    mirror: m.annotations?.[CONFIG_MIRROR_ANNOTATION],
    live: !m.deletionTimestamp && (phase === "Pending" || phase === "Running"),
    shown: [...byAddress.values()],
    ...(ipamClaimNames(m.annotations, m.namespace ?? "").length ? { networks: m.annotations![NETWORKS_ANNOTATION] } : {}),
  };
}

function endpointFacts(e: EndpointObject): EndpointFacts {
  return {
    namespace: e.metadata.namespace ?? "",
    name: e.metadata.name,
    resourceVersion: e.metadata.resourceVersion,
    entries: e.spec.ips.map((i) => ({ interface: i.interface, podUID: entryUid(e, i), addresses: entryAddresses(i) })),
  };
}

/** The pod a PodFacts stands for, with what the controller's judgement reads. */
export function podObject(f: PodFacts): PodObject {
  return {
    metadata: {
      name: f.name,
      namespace: f.namespace,
      uid: f.uid,
      ...(f.deletion ? { deletionTimestamp: f.deletion } : {}),
      ...(f.mirror || f.networks
        ? { annotations: { ...(f.mirror ? { [CONFIG_MIRROR_ANNOTATION]: f.mirror } : {}), ...(f.networks ? { [NETWORKS_ANNOTATION]: f.networks } : {}) } }
        : {}),
    },
    spec: f.node ? { nodeName: f.node } : {},
    status: f.phase ? { phase: f.phase } : {},
  };
}

/** The endpoint an EndpointFacts stands for, with what the judgement reads. */
export function endpointObject(f: EndpointFacts): EndpointObject {
  return {
    metadata: { name: f.name, namespace: f.namespace, resourceVersion: f.resourceVersion },
    spec: {
      podUID: f.entries[0]?.podUID ?? "",
      node: "",
      ownerControllerType: "None",
      ips: f.entries.map((e) => {
        const out: EndpointObject["spec"]["ips"][number] = { interface: e.interface, podUID: e.podUID };
        for (const a of e.addresses) {
          if (a.includes(":")) out.ipv6 = `${a}/128`;
          else out.ipv4 = `${a}/32`;
        }
        return out;
      }),
    },
  };
}
