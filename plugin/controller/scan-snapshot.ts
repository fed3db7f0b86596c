/**
 * The data of one full scan: every claim, and of the pods, StatefulSets,
 * endpoints and nodes only what those claims need, each LISTed in pages
 * (`--list-page-size`) and kept slim (slim.ts), so neither a request nor the
 * memory grows with the whole cluster in one piece. A list that fails voids
 * only the judgements that need it: the Reader throws IncompleteListError
 * for that kind, and the scan judges every claim it still can.
 */
import type { ControllerApi, NodeObject } from "../kube/controller-api.ts";
import type { ClaimObject, EndpointObject, PoolObject, StatefulSetObject } from "../kube/kube-api.ts";
import { type PhantomSuspect, phantomSuspects } from "../reconcile/endpoint-repair.ts";
import type { Reader } from "../reconcile/judge-claim.ts";
import { collectGarbage } from "../support/collect-garbage.ts";
import { brand } from "../support/errors.ts";
import { endpointFromRecord, endpointRecord, type PodRecord, podFromRecord, podRecord, slimClaim, slimNode, slimStatefulSet } from "./slim.ts";

export type ListKind = "claims" | "pods" | "statefulsets" | "endpoints" | "nodes" | "pools";

/** A judgement needed a list that failed in this scan. */
export class IncompleteListError extends Error {
  static readonly brand = "IncompleteListError";
  constructor(readonly kind: ListKind) {
    super(`the ${kind} list of this scan failed`);
    brand(this, IncompleteListError.brand);
  }
}

export interface Snapshot {
  /** Every claim (slim); undefined when the claims list failed. */
  claims: ClaimObject[] | undefined;
  pools: PoolObject[] | undefined;
  /** Reads the lists; throws IncompleteListError for a kind whose list failed. */
  reader: Reader;
  /** Kinds whose list failed, with the error. */
  failed: Map<ListKind, Error>;
  /** LIST requests per kind. */
  requests: Map<ListKind, number>;
  /** Endpoint addresses whose claim, in this snapshot, is missing or another pod's: to confirm live and strip. */
  phantoms: PhantomSuspect[];
}

const key = (ns: string | undefined, name: string) => `${ns}/${name}`;

/** Pages (500 objects each by default) between forced collections during a scan. */
const GC_PAGES = 20;

/**
 * Lists everything a full scan judges. `known` gives the controller's own
 * copy of a claim by name: when the listed claim is that same version (uid
 * and resourceVersion), the snapshot holds that copy instead of a new one,
 * so a scan of a big cluster does not hold every claim twice (the view it
 * replaces, and the list).
 */
export async function takeSnapshot(api: ControllerApi, pageSize: number, known?: (name: string) => ClaimObject | undefined): Promise<Snapshot> {
  const failed = new Map<ListKind, Error>();
  const requests = new Map<ListKind, number>();
  // Every GC_PAGES pages (of any list), a collection: the peak stays near the live data on a big cluster.
  let pages = 0;
  const paged = () => {
    if (++pages % GC_PAGES === 0) collectGarbage();
  };
  const list = async (kind: ListKind, run: () => Promise<number>): Promise<boolean> => {
    try {
      requests.set(kind, await run());
      return true;
    } catch (err) {
      failed.set(kind, err as Error);
      return false;
    }
  };

  let claims: ClaimObject[] | undefined = [];
  if (
    !(await list("claims", () =>
      api.listAllClaims(pageSize, (page) => {
        for (const c of page) {
          const mine = known?.(c.metadata.name);
          const same = mine && mine.metadata.uid === c.metadata.uid && mine.metadata.resourceVersion === c.metadata.resourceVersion;
          claims!.push(same ? mine : slimClaim(c));
        }
        paged();
      }),
    ))
  )
    claims = undefined;

  // What the claims need: their pods (and endpoints, named as the pods), their StatefulSets.
  const podKeys = new Set<string>();
  const stsKeys = new Set<string>();
  for (const c of claims ?? []) {
    podKeys.add(key(c.spec.podNamespace, c.spec.podName));
    if (c.spec.statefulSet) stsKeys.add(key(c.spec.podNamespace, c.spec.statefulSet));
  }
  const pods = new Map<string, PodRecord>();
  const sets = new Map<string, StatefulSetObject>();
  const endpoints = new Map<string, string>();
  const nodes = new Map<string, NodeObject>();
  let pools: PoolObject[] | undefined;
  const wanted =
    <T extends { metadata: { namespace?: string; name: string } }, K>(keys: Set<string>, into: Map<string, K>, slim: (o: T) => K, also?: (o: T) => void) =>
    (page: T[]) => {
      for (const o of page) {
        const k = key(o.metadata.namespace, o.metadata.name);
        if (keys.has(k)) into.set(k, slim(o));
        also?.(o);
      }
      paged();
    };
  // Every endpoint is compared with the claims, not only those of pods with claims: a phantom is an
  // address whose claim is gone.
  const byName = new Map((claims ?? []).map((c) => [c.metadata.name, c]));
  const phantoms: PhantomSuspect[] = [];
  const comparePhantoms = (ep: EndpointObject) => {
    for (const p of phantomSuspects(ep, (n) => byName.get(n))) phantoms.push(p);
  };
  await Promise.all([
    claims ? list("pods", () => api.listAllPods(pageSize, wanted(podKeys, pods, podRecord))) : undefined,
    claims ? list("statefulsets", () => api.listAllStatefulSets(pageSize, wanted(stsKeys, sets, slimStatefulSet))) : undefined,
    claims ? list("endpoints", () => api.listAllEndpoints(pageSize, wanted(podKeys, endpoints, endpointRecord, comparePhantoms))) : undefined,
    claims
      ? list("nodes", () =>
          api.listAllNodes(pageSize, (page) => {
            for (const n of page) nodes.set(n.metadata.name, slimNode(n));
          }),
        )
      : undefined,
    list("pools", async () => {
      pools = await api.listPools();
      return 1;
    }),
  ]);

  const from = <T>(kind: ListKind, map: Map<string, T>, k: string): Promise<T | undefined> =>
    failed.has(kind) ? Promise.reject(new IncompleteListError(kind)) : Promise.resolve(map.get(k));
  const reader: Reader = {
    getPod: async (ns, name) => {
      const r = await from("pods", pods, key(ns, name));
      return r && podFromRecord(ns, name, r);
    },
    getStatefulSet: (ns, name) => from("statefulsets", sets, key(ns, name)),
    getEndpoint: async (ns, name) => {
      const r = await from("endpoints", endpoints, key(ns, name));
      return r === undefined ? undefined : endpointFromRecord(ns, name, r);
    },
    getNode: (name) => from("nodes", nodes, name),
    // IPAMClaim-held claims are judged live: the scan lists neither IPAMClaims nor pods' annotations.
    getIpamClaim: (ns, name) => api.getIpamClaim(ns, name),
    listPodsIn: (ns) => api.listPodsIn(ns),
  };
  byName.clear();
  return { claims, pools, reader, failed, requests, phantoms };
}
