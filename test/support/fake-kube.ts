/** An in-memory KubeApi for unit tests of cluster logic (the real one is exercised in test/cluster). */

import { POOL_FINALIZER } from "../../plugin/kube/crd.ts";
import type {
  ClaimObject,
  EndpointObject,
  IpamClaimObject,
  KubeApi,
  NamedObject,
  PodObject,
  PoolObject,
  StatefulSetObject,
} from "../../plugin/kube/kube-api.ts";
import { KubeConflictError } from "../../plugin/kube/kube-errors.ts";

export class FakeKube implements KubeApi {
  readonly server = "https://fake.invalid:6443";
  pods = new Map<string, PodObject>();
  namespaces = new Map<string, NamedObject>();
  nodes = new Map<string, NamedObject>();
  statefulSets = new Map<string, StatefulSetObject>();
  pools = new Map<string, PoolObject>();
  claims = new Map<string, ClaimObject>();
  endpoints = new Map<string, EndpointObject>();
  ipamClaims = new Map<string, IpamClaimObject>();
  private rv = 1;
  calls: string[] = [];

  private meta<T extends { metadata: { resourceVersion?: string; uid?: string } }>(o: T): T {
    o.metadata.resourceVersion = String(++this.rv);
    o.metadata.uid ??= `uid-${this.rv}`;
    (o.metadata as { creationTimestamp?: string }).creationTimestamp ??= new Date().toISOString();
    return structuredClone(o);
  }

  async getPod(ns: string, name: string) {
    this.calls.push(`getPod ${ns}/${name}`);
    return structuredClone(this.pods.get(`${ns}/${name}`));
  }
  async getNamespace(name: string) {
    this.calls.push(`getNamespace ${name}`);
    return structuredClone(this.namespaces.get(name));
  }
  async getNode(name: string) {
    this.calls.push(`getNode ${name}`);
    return structuredClone(this.nodes.get(name));
  }
  async getStatefulSet(ns: string, name: string) {
    return structuredClone(this.statefulSets.get(`${ns}/${name}`));
  }
  async getPool(name: string) {
    this.calls.push(`getPool ${name}`);
    return structuredClone(this.pools.get(name));
  }
  async listPools() {
    this.calls.push("listPools");
    return [...this.pools.values()].map((p) => structuredClone(p));
  }
  async addPoolFinalizer(pool: PoolObject) {
    this.calls.push(`addPoolFinalizer ${pool.metadata.name}`);
    const cur = this.pools.get(pool.metadata.name);
    if (!cur) throw new KubeConflictError(`spiderippools "${pool.metadata.name}" not found (deleted meanwhile)`);
    if (cur.metadata.resourceVersion !== pool.metadata.resourceVersion) throw new KubeConflictError("the object has been modified");
    cur.metadata.finalizers = [...(pool.metadata.finalizers ?? []), POOL_FINALIZER];
    cur.metadata.resourceVersion = String(++this.rv);
  }
  async listClaimsOfIpamClaim(uid: string) {
    return [...this.claims.values()].filter((c) => c.spec.ipamClaim?.uid === uid).map((c) => structuredClone(c));
  }
  async getIpamClaim(ns: string, name: string) {
    return structuredClone(this.ipamClaims.get(`${ns}/${name}`));
  }
  async updateIpamClaimStatus(ic: IpamClaimObject) {
    const k = `${ic.metadata.namespace}/${ic.metadata.name}`;
    const cur = this.ipamClaims.get(k);
    if (!cur || cur.metadata.resourceVersion !== ic.metadata.resourceVersion) throw new KubeConflictError("stale");
    const stored = this.meta({ ...structuredClone(cur), status: structuredClone(ic.status) });
    this.ipamClaims.set(k, stored);
    return structuredClone(stored);
  }
  async getClaim(name: string) {
    return structuredClone(this.claims.get(name));
  }
  async listClaims(pool: string, fresh = false) {
    this.calls.push(`listClaims ${pool}${fresh ? " fresh" : ""}`);
    return [...this.claims.values()].filter((c) => c.spec.pool === pool).map((c) => structuredClone(c));
  }
  async createClaim(c: ClaimObject) {
    if (this.claims.has(c.metadata.name)) throw new KubeConflictError(`berthipclaims "${c.metadata.name}" already exists`);
    const stored = this.meta(structuredClone(c));
    this.claims.set(c.metadata.name, stored);
    return structuredClone(stored);
  }
  async updateClaim(c: ClaimObject) {
    const cur = this.claims.get(c.metadata.name);
    if (!cur || cur.metadata.resourceVersion !== c.metadata.resourceVersion) throw new KubeConflictError("stale");
    const stored = this.meta(structuredClone(c));
    this.claims.set(c.metadata.name, stored);
    return structuredClone(stored);
  }
  async deleteClaim(name: string, uid: string, resourceVersion?: string) {
    const cur = this.claims.get(name);
    if (!cur) return false;
    if (cur.metadata.uid !== uid) throw new KubeConflictError("uid precondition");
    if (resourceVersion && cur.metadata.resourceVersion !== resourceVersion) throw new KubeConflictError("resourceVersion precondition");
    this.claims.delete(name);
    return true;
  }
  async getEndpoint(ns: string, name: string) {
    return structuredClone(this.endpoints.get(`${ns}/${name}`));
  }
  async createEndpoint(e: EndpointObject) {
    const key = `${e.metadata.namespace}/${e.metadata.name}`;
    if (this.endpoints.has(key)) throw new KubeConflictError("exists");
    const stored = this.meta(structuredClone(e));
    this.endpoints.set(key, stored);
    return structuredClone(stored);
  }
  async updateEndpoint(e: EndpointObject) {
    const key = `${e.metadata.namespace}/${e.metadata.name}`;
    const cur = this.endpoints.get(key);
    if (!cur || cur.metadata.resourceVersion !== e.metadata.resourceVersion) throw new KubeConflictError("stale");
    const stored = this.meta(structuredClone(e));
    this.endpoints.set(key, stored);
    return structuredClone(stored);
  }
  async deleteEndpoint(ns: string, name: string, uid: string, resourceVersion?: string) {
    const cur = this.endpoints.get(`${ns}/${name}`);
    if (!cur) return false;
    if (cur.metadata.uid !== uid || (resourceVersion && cur.metadata.resourceVersion !== resourceVersion)) throw new KubeConflictError("precondition");
    this.endpoints.delete(`${ns}/${name}`);
    return true;
  }
  addPool(name: string, spec: PoolObject["spec"]) {
    this.pools.set(name, { metadata: { name, resourceVersion: String(++this.rv), uid: `pool-${name}` }, spec });
  }
  addPod(ns: string, name: string, extra: Partial<PodObject["metadata"]> = {}) {
    const pod: PodObject = { metadata: { name, namespace: ns, uid: `pod-${name}-${++this.rv}`, ...extra }, spec: {}, status: { phase: "Running" } };
    this.pods.set(`${ns}/${name}`, pod);
    return pod;
  }
}
