/**
 * The cluster section as the admin: the tests' admin client plus what this
 * bench reads and writes, and the set-up and removal of everything the
 * section makes (namespace berth-bench, pools bench-*, their claims, the
 * peer's objects, the simulated nodes).
 */
import { CLAIMS_PATH, POOL_GROUP, POOL_KIND, POOL_LABEL, POOL_VERSION, POOLS_PATH } from "../../../plugin/kube/crd.ts";
import type { ClaimObject } from "../../../plugin/kube/kube-api.ts";
import { AdminClient } from "../../../test/support/kube/admin-client.ts";
import { path } from "../../../test/support/kube/api-paths.ts";
import type { Stored } from "../../../test/support/kube/stored.ts";
import { inBatches, sleep } from "../lib.ts";
import { BENCH_LABEL, FILL_PAR, NS, PEER_RANGES, POOL_ANNOTATION, POOLS, STS_NAME } from "./config.ts";
import { removePeerObjects } from "./peer.ts";

export const pods = path("pods", { ns: NS });

/** The tests' admin client (one keep-alive agent for all of the bench's requests), plus what this bench does. */
export class Admin extends AdminClient {
  constructor() {
    super({ timeoutMs: 10 * 60_000 }); // the LIST of a /16 pool's claims is timed as it comes, however long it takes
  }

  async getPod(name: string): Promise<{ uid: string; deleting: boolean } | undefined> {
    const p = await this.get(`${pods}/${name}`);
    return p ? { uid: p.metadata.uid, deleting: !!p.metadata.deletionTimestamp } : undefined;
  }

  /** A plain pod already bound to `node` (nothing schedules here), choosing its pool by annotation. Returns its UID. */
  async createPod(name: string, pool: string, node: string): Promise<string> {
    return (
      await this.create(pods, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: NS, labels: { app: "berth-bench" }, annotations: { [POOL_ANNOTATION]: JSON.stringify({ ipv4: [pool] }) } },
        spec: { nodeName: node, automountServiceAccountToken: false, containers: [{ name: "c", image: "registry.k8s.io/pause:3.2" }] },
      })
    ).metadata.uid; // a 403 while the brand-new namespace has no default ServiceAccount yet is retried by the client
  }

  /** The kubelet's last step of a deletion: grace period 0, gone at once. */
  async forceDeletePod(name: string): Promise<void> {
    await this.delete(`${pods}/${name}`, { gracePeriodSeconds: 0 });
  }

  async poolClaims(pool: string): Promise<{ name: string; address: string; uid: string }[]> {
    const items = await this.list<Stored<ClaimObject>>(CLAIMS_PATH, {
      labelSelector: `${POOL_LABEL}=${pool}`,
    });
    return items.filter((c) => c.spec.pool === pool).map((c) => ({ name: c.metadata.name, address: c.spec.address, uid: c.metadata.uid }));
  }

  async poolStatus(pool: string): Promise<{ allocatedIPCount?: number; totalIPCount?: number } | undefined> {
    const p = await this.get(`${POOLS_PATH}/${pool}`);
    return p ? (p.status ?? {}) : undefined;
  }

  async deleteClaims(names: string[]): Promise<void> {
    await inBatches(names, FILL_PAR, (name) => this.delete(`${CLAIMS_PATH}/${name}`));
  }
}

/** Removes everything the bench makes (idempotent): the StatefulSet, pods, claims of bench pools, the pools, the namespace. */
export async function removeAll(api: Admin, say: (s: string) => void): Promise<void> {
  const ns = await api.get(path("namespaces", { name: NS }));
  if (ns) {
    // Orphan the pods (bound to a node, they would stay Terminating without a kubelet), then force-delete them.
    await api.delete(path("statefulsets", { ns: NS, name: STS_NAME }), { propagationPolicy: "Orphan" });
    await inBatches(await api.list(pods), 16, (p) => api.forceDeletePod(p.metadata.name));
  }
  for (const pool of POOLS) {
    const claims = await api.poolClaims(pool.name);
    if (claims.length) {
      const t = performance.now();
      await api.deleteClaims(claims.map((c) => c.name));
      say(`deleted ${claims.length} BerthIPClaim(s) of pool ${pool.name} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    await api.delete(`${POOLS_PATH}/${pool.name}`);
  }
  await removePeerObjects(api, PEER_RANGES, NS);
  for (const n of await api.list(path("nodes"), { labelSelector: `${BENCH_LABEL}=true` })) await api.delete(path("nodes", { name: n.metadata.name }));
  if (ns) {
    // The namespace controller removes the BerthEndpoints with it.
    await api.delete(path("namespaces", { name: NS }));
    const deadline = Date.now() + 90_000;
    while (await api.get(path("namespaces", { name: NS }))) {
      if (Date.now() > deadline) throw new Error(`namespace ${NS} still there 90 s after its deletion`);
      await sleep(250);
    }
  }
}

/** The namespace and the pools of every phase. */
export async function setUp(api: Admin): Promise<void> {
  await api.create(path("namespaces"), { apiVersion: "v1", kind: "Namespace", metadata: { name: NS, labels: { "berth-bench": "true" } } });
  for (const p of POOLS) {
    const spec: Record<string, unknown> = { subnet: p.subnet };
    if (p.ips) spec.ips = p.ips;
    if (p.gateway) spec.gateway = p.gateway;
    await api.create(POOLS_PATH, { apiVersion: `${POOL_GROUP}/${POOL_VERSION}`, kind: POOL_KIND, metadata: { name: p.name }, spec });
  }
}
