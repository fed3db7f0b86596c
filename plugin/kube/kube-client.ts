/**
 * KubeApi and ControllerApi on a real API server: each kind is one
 * `resource(...)` (kube-resource.ts) over one transport (kube-request.ts).
 * Loaded only in cluster mode (dynamic import), so local mode never pays for
 * it; the plugin's client does not load @kubernetes/client-node either
 * (open-transport.ts), the controller's does (controller-client.ts).
 */
import type { ControllerApi, LeaseObject, NodeObject, WatchKind } from "./controller-api.ts";
import {
  BERTH_API_VERSION,
  BERTH_GROUP,
  CLAIM_KIND,
  CLAIM_PLURAL,
  ENDPOINT_KIND,
  ENDPOINT_PLURAL,
  IPAMCLAIM_GROUP,
  IPAMCLAIM_KIND,
  IPAMCLAIM_PLURAL,
  IPAMCLAIM_UID_LABEL,
  IPAMCLAIM_VERSION,
  labelValue,
  POOL_FINALIZER,
  POOL_GROUP,
  POOL_KIND,
  POOL_LABEL,
  POOL_PLURAL,
  POOL_VERSION,
} from "./crd.ts";
import type { ClaimObject, EndpointObject, IpamClaimObject, KubeApi, NamedObject, ObjectMeta, PodObject, PoolObject, StatefulSetObject } from "./kube-api.ts";
import type { BeforeWrite, KubeTransport, TimeLeft } from "./kube-request.ts";
import { resource } from "./kube-resource.ts";
import { openTransport } from "./open-transport.ts";

/** How the client talks to the API server. */
export interface KubeClientOptions {
  /** Per-request timeout. */
  requestTimeoutMs: number;
  /** Checked right before every request other than GET is sent; throwing stops it (kube-request.ts BeforeWrite). */
  beforeWrite?: BeforeWrite;
  /** What is left of the command's budget: each request gets at most that, none is sent once it is 0 (kube-request.ts TimeLeft). */
  timeLeft?: TimeLeft;
}

/** Reads the kubeconfig file (rejects if it cannot) and returns a KubeApi. */
export async function createKubeClient(kubeconfigPath: string, options: KubeClientOptions): Promise<KubeApi> {
  const t = await openTransport(kubeconfigPath, options.requestTimeoutMs, options.beforeWrite, options.timeLeft);
  return apiOver(t, () => Promise.reject(new Error("watches are the controller's (controller-client.ts)")));
}

/** Streams a kind's events at a collection path until the watch ends (resolves then; the caller restarts it). */
/**
 * Watches `path` from `resourceVersion` (from a replay of everything when
 * absent); resolves when the watch ends with the last resourceVersion seen,
 * or undefined when the server said it is too old (410 Gone).
 */
export type WatchAt = (
  path: string,
  onEvent: (type: string, obj: { metadata: ObjectMeta }) => void,
  resourceVersion?: string,
) => Promise<{ resourceVersion?: string }>;

/** A core/v1 Event, as berth records it. */
interface EventObject {
  metadata: Omit<ObjectMeta, "name"> & { generateName: string };
  involvedObject: { kind: string; apiVersion: string; namespace: string; name: string; uid?: string };
  type: string;
  reason: string;
  message: string;
  firstTimestamp: string;
  lastTimestamp: string;
  count: number;
  source: { component: string };
  reportingComponent: string;
  reportingInstance: string;
}

/** The full client over a transport: the plugin's KubeApi plus what the controller needs, watches through `watchAt`. */
export function apiOver(t: KubeTransport, watchAt: WatchAt): ControllerApi {
  const pods = resource<PodObject>(t, { group: "", version: "v1", plural: "pods", namespaced: true, kind: "Pod" });
  const namespaces = resource<NamedObject>(t, { group: "", version: "v1", plural: "namespaces", namespaced: false, kind: "Namespace" });
  const nodes = resource<NodeObject>(t, { group: "", version: "v1", plural: "nodes", namespaced: false, kind: "Node" });
  const events = resource<EventObject>(t, { group: "", version: "v1", plural: "events", namespaced: true, kind: "Event" });
  const statefulSets = resource<StatefulSetObject>(t, { group: "apps", version: "v1", plural: "statefulsets", namespaced: true, kind: "StatefulSet" });
  const leases = resource<LeaseObject>(t, { group: "coordination.k8s.io", version: "v1", plural: "leases", namespaced: true, kind: "Lease" });
  const pools = resource<PoolObject>(t, { group: POOL_GROUP, version: POOL_VERSION, plural: POOL_PLURAL, namespaced: false, kind: POOL_KIND });
  const claims = resource<ClaimObject>(t, { group: BERTH_GROUP, version: BERTH_API_VERSION, plural: CLAIM_PLURAL, namespaced: false, kind: CLAIM_KIND });
  const endpoints = resource<EndpointObject>(t, {
    group: BERTH_GROUP,
    version: BERTH_API_VERSION,
    plural: ENDPOINT_PLURAL,
    namespaced: true,
    kind: ENDPOINT_KIND,
  });
  const ipamClaims = resource<IpamClaimObject>(t, {
    group: IPAMCLAIM_GROUP,
    version: IPAMCLAIM_VERSION,
    plural: IPAMCLAIM_PLURAL,
    namespaced: true,
    kind: IPAMCLAIM_KIND,
  });
  const ipamClaimPath = (ns: string, name: string) =>
    `/apis/${IPAMCLAIM_GROUP}/${IPAMCLAIM_VERSION}/namespaces/${encodeURIComponent(ns)}/${IPAMCLAIM_PLURAL}/${encodeURIComponent(name)}`;
  const watchPaths: Record<WatchKind, string> = {
    ipamclaims: ipamClaims.path,
    pods: pods.path,
    statefulsets: statefulSets.path,
    claims: claims.path,
    endpoints: endpoints.path,
    pools: pools.path,
    nodes: nodes.path,
  };

  return {
    server: t.server,
    serverNow: () => t.serverNow(),
    getPod: (namespace, name) => pods.get({ namespace, name }),
    getNamespace: (name) => namespaces.get({ name }),
    getNode: (name) => nodes.get({ name }),
    getStatefulSet: (namespace, name) => statefulSets.get({ namespace, name }),
    getPool: (name) => pools.get({ name }),
    listPools: () => pools.list(),
    // A merge patch replaces the whole list: the resourceVersion precondition makes that safe.
    addPoolFinalizer: (pool) =>
      pools.patch(
        pool.metadata,
        { metadata: { resourceVersion: pool.metadata.resourceVersion, finalizers: [...(pool.metadata.finalizers ?? []), POOL_FINALIZER] } },
        { what: `add finalizer ${POOL_FINALIZER} to spiderippool ${pool.metadata.name}` },
      ),
    getClaim: (name) => claims.get({ name }),
    // Not fresh: served from the API server's watch cache ("0"). From etcd, a label-selected LIST reads
    // every claim in the cluster (measured: 8 s for a pool with no claims while the cluster held
    // 59,000). Fresh (counts): a consistent read from etcd; a 1.20 watch cache cannot be asked to catch
    // up with a revision when claims are idle (504 "Too large resource version").
    listClaims: async (pool, fresh = false) => {
      const query = { labelSelector: `${POOL_LABEL}=${labelValue(pool)}`, resourceVersion: fresh ? undefined : "0" };
      const items = await claims.list(query, `list berthipclaims of pool ${pool}`);
      return items.filter((c) => c.spec.pool === pool); // a cut label may be shared by two long pool names
    },
    createClaim: (claim) => claims.create(claim),
    updateClaim: (claim) => claims.replace(claim),
    deleteClaim: (name, uid, resourceVersion) => claims.delete({ name }, resourceVersion ? { uid, resourceVersion } : { uid }),
    // Consistent (from etcd): a claim another ADD of the same IPAMClaim made a moment ago must be seen.
    listClaimsOfIpamClaim: (uid) =>
      claims
        .list({ labelSelector: `${IPAMCLAIM_UID_LABEL}=${uid}` }, `list berthipclaims of ipamclaim ${uid}`)
        .then((l) => l.filter((c) => c.spec.ipamClaim?.uid === uid)),
    getIpamClaim: (namespace, name) => ipamClaims.get({ namespace, name }),
    updateIpamClaimStatus: (ic) =>
      t.request<IpamClaimObject>(
        `update ipamclaim ${ic.metadata.namespace}/${ic.metadata.name} status`,
        "PUT",
        `${ipamClaimPath(ic.metadata.namespace!, ic.metadata.name)}/status`,
        { apiVersion: `${IPAMCLAIM_GROUP}/${IPAMCLAIM_VERSION}`, kind: IPAMCLAIM_KIND, ...ic },
      ),
    listPodsIn: async (namespace) =>
      (await t.request<{ items: PodObject[] }>(`list pods of namespace ${namespace}`, "GET", `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`)).items,
    getEndpoint: (namespace, name) => endpoints.get({ namespace, name }),
    createEndpoint: (ep) => endpoints.create(ep),
    updateEndpoint: (ep) => endpoints.replace(ep),
    deleteEndpoint: (namespace, name, uid, resourceVersion) => endpoints.delete({ namespace, name }, { uid, resourceVersion }),
    // resourceVersion in a patch is a precondition: 409 Conflict if the pool moved on meanwhile.
    patchPoolStatus: (name, resourceVersion, status) => pools.patch({ name }, { metadata: { resourceVersion }, status }, { status: true }),
    listAllClaims: (pageSize, onPage) => claims.listPages(pageSize, onPage),
    listAllPods: (pageSize, onPage) => pods.listPages(pageSize, onPage),
    listAllStatefulSets: (pageSize, onPage) => statefulSets.listPages(pageSize, onPage),
    listAllEndpoints: (pageSize, onPage) => endpoints.listPages(pageSize, onPage),
    listAllNodes: (pageSize, onPage) => nodes.listPages(pageSize, onPage),
    listAllIpamClaims: (pageSize, onPage) => ipamClaims.listPages(pageSize, onPage),
    deleteClaimIfUnchanged: (claim) => claims.delete(claim.metadata, { uid: claim.metadata.uid, resourceVersion: claim.metadata.resourceVersion }),
    setPoolFinalizers: (pool, finalizers) =>
      pools.patch(
        pool.metadata,
        { metadata: { resourceVersion: pool.metadata.resourceVersion, finalizers } },
        { what: `set finalizers of spiderippool ${pool.metadata.name}` },
      ),
    getLease: (namespace, name) => leases.get({ namespace, name }),
    createLease: (lease) => leases.create(withMicroTimes(lease)),
    updateLease: (lease) => leases.replace(withMicroTimes(lease)),
    recordEvent: async (target, type, reason, message) => {
      const now = new Date().toISOString();
      await events.create(
        {
          metadata: { generateName: `${target.name}.`, namespace: target.namespace },
          involvedObject: { kind: target.kind, apiVersion: target.apiVersion, namespace: target.namespace, name: target.name, uid: target.uid },
          type,
          reason,
          message,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          source: { component: "berth-controller" },
          reportingComponent: "berth-controller",
          reportingInstance: "berth-controller",
        },
        `record event on ${target.kind} ${target.namespace}/${target.name}`,
      );
    },
    watch: (kind, onEvent, from) => watchAt(watchPaths[kind], onEvent, from),
    collectionVersion: async (kind) =>
      (await t.request<{ metadata?: { resourceVersion?: string } }>(`list ${kind} (version only)`, "GET", watchPaths[kind], undefined, { limit: "1" })).metadata
        ?.resourceVersion,
  };
}

/**
 * The lease with MicroTime fields in the form the API server parses: six
 * fractional digits. JavaScript writes milliseconds (three), which a 1.20 API
 * server rejects.
 */
function withMicroTimes(lease: LeaseObject): LeaseObject {
  const spec = { ...lease.spec };
  for (const k of ["acquireTime", "renewTime"] as const) {
    const v = spec[k];
    if (typeof v === "string") spec[k] = new Date(v).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
  }
  return { metadata: lease.metadata, spec };
}
