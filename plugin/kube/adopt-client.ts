/**
 * The client of `berth adopt`: berth's own objects (the controller's client,
 * ControllerApi) plus the other IPAMs' records it reads, and the one pool
 * write it makes (SpiderReservedIPs into `excludeIPs`).
 */
import { clientNodeWire, loadKubeConfig } from "./client-node-wire.ts";
import type { ControllerApi } from "./controller-api.ts";
import { POOL_GROUP, POOL_KIND, POOL_PLURAL, POOL_VERSION } from "./crd.ts";
import type { PoolObject } from "./kube-api.ts";
import { apiOver } from "./kube-client.ts";
import { transportOver } from "./kube-request.ts";
import { resource } from "./kube-resource.ts";
import {
  type OverlappingReservation,
  type SpiderEndpoint,
  type SpiderReservedIP,
  WHEREABOUTS_GROUP,
  WHEREABOUTS_VERSION,
  type WhereaboutsPool,
} from "./peer-objects.ts";

export interface AdoptApi extends ControllerApi {
  /** Every Whereabouts IPPool, all namespaces. */
  listWhereaboutsPools(): Promise<WhereaboutsPool[]>;
  listOverlappingReservations(): Promise<OverlappingReservation[]>;
  listSpiderEndpoints(): Promise<SpiderEndpoint[]>;
  listSpiderReservedIPs(): Promise<SpiderReservedIP[]>;
  /** Sets the pool's spec.excludeIPs, on condition it is still at the resourceVersion read (KubeConflictError otherwise). */
  setPoolExcludeIPs(pool: PoolObject, excludeIPs: string[]): Promise<void>;
}

/** Loads the kubeconfig (no path: in-cluster) and returns adopt's client. */
export function createAdoptClient(kubeconfigPath: string | undefined, requestTimeoutMs: number): AdoptApi {
  const t = transportOver(clientNodeWire(loadKubeConfig(kubeconfigPath)), requestTimeoutMs);
  const base = apiOver(t, () => Promise.reject(new Error("berth adopt does not watch")));
  const wa = { group: WHEREABOUTS_GROUP, version: WHEREABOUTS_VERSION, namespaced: true };
  const ippools = resource<WhereaboutsPool>(t, { ...wa, plural: "ippools", kind: "IPPool" });
  const overlapping = resource<OverlappingReservation>(t, { ...wa, plural: "overlappingrangeipreservations", kind: "OverlappingRangeIPReservation" });
  const sp = { group: POOL_GROUP, version: POOL_VERSION };
  const endpoints = resource<SpiderEndpoint>(t, { ...sp, plural: "spiderendpoints", namespaced: true, kind: "SpiderEndpoint" });
  const reserved = resource<SpiderReservedIP>(t, { ...sp, plural: "spiderreservedips", namespaced: false, kind: "SpiderReservedIP" });
  const pools = resource<PoolObject>(t, { ...sp, plural: POOL_PLURAL, namespaced: false, kind: POOL_KIND });
  return Object.assign(base, {
    listWhereaboutsPools: () => ippools.list(),
    listOverlappingReservations: () => overlapping.list(),
    listSpiderEndpoints: () => endpoints.list(),
    listSpiderReservedIPs: () => reserved.list(),
    setPoolExcludeIPs: (pool: PoolObject, excludeIPs: string[]) =>
      pools.patch(
        pool.metadata,
        { metadata: { resourceVersion: pool.metadata.resourceVersion }, spec: { excludeIPs } },
        { what: `set excludeIPs of spiderippool ${pool.metadata.name}` },
      ),
  });
}
