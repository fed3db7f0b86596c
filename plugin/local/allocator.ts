/**
 * Local-mode allocation. It sees only the AllocationStore interface and runs
 * as one write transaction, so concurrent plugin processes never hand out an
 * address twice and a crash mid-ADD leaves nothing behind.
 */

import type { Binding, Lease, NewBinding, NewLease } from "../../store/lease-store.ts";
import type { LocalBindings } from "../../store/local-bindings.ts";
import { type Family, findFree, formatAddress, parseAddress } from "../ipam/ip.ts";
import { IpamError } from "../ipam/ipam-error.ts";
import type { PodIdentity } from "../ipam/pod-identity.ts";
import { type FamilyPools, type Pool, poolContains } from "../ipam/pool.ts";

/** What allocation needs of a store (LeaseStore implements it): the leases, and local mode's face of the database. */
export interface AllocationStore {
  immediate<T>(fn: () => T): T;
  leasesOf(network: string, containerId: string, ifname: string): Lease[];
  leaseAt(network: string, address: string): Lease | undefined;
  addLease(lease: NewLease): number;
  deleteLease(id: number): void;
  bindings: Pick<LocalBindings, "isTaken" | "get" | "put" | "delete" | "cursor" | "setCursor" | "poolUsage">;
}

export interface AllocationRequest {
  network: string;
  containerId: string;
  ifname: string;
  pod?: PodIdentity;
  /** Keep the pod's address in a binding beyond this sandbox (StatefulSet member, stickiness on). */
  sticky: boolean;
  /** Candidate pools per family, in the order to try them. One address of each family is taken. */
  families: FamilyPools[];
  /** Every configured pool, to describe a lease taken earlier. */
  allPools: Pool[];
}

/** One address of the result. */
export interface Allocation {
  family: Family;
  address: string;
  pool: Pool;
  /** new: taken now; bound: the pod's binding; existing: this attachment already held it. */
  source: "new" | "bound" | "existing";
  /** Set when the address was taken over from an older sandbox of the same pod. */
  replacedContainer?: string;
}

/**
 * Allocates one address per requested family, or throws. Call it inside
 * `store.immediate(...)`: the transaction makes it all-or-nothing (a
 * dual-stack ADD whose IPv6 pool is full keeps no IPv4 address either).
 */
export function allocate(store: AllocationStore, req: AllocationRequest): Allocation[] {
  const existing = reuseExisting(store, req);
  if (existing) return existing;
  return req.families.map(({ family, pools }) => allocateFamily(store, req, family, pools));
}

/** ADD is idempotent: an attachment that holds leases gets them back, if their pools still exist. */
function reuseExisting(store: AllocationStore, req: AllocationRequest): Allocation[] | undefined {
  const leases = store.leasesOf(req.network, req.containerId, req.ifname);
  if (leases.length === 0) return undefined;
  const out: Allocation[] = [];
  for (const l of leases) {
    const pool = req.allPools.find((p) => p.name === l.pool && poolContains(p, l.address));
    if (!pool) {
      // The configuration no longer covers it: give it up and allocate afresh.
      for (const stale of leases) store.deleteLease(stale.id);
      return undefined;
    }
    out.push({ family: l.family, address: l.address, pool, source: "existing" });
  }
  return out;
}

function allocateFamily(store: AllocationStore, req: AllocationRequest, family: Family, pools: Pool[]): Allocation {
  const serving = pools.filter((p) => !p.disable);
  if (serving.length === 0) {
    const names = pools.map((p) => p.name).join(", ") || "(none)";
    throw new IpamError("no-pool", `no IPv${family} pool can serve pod ${podName(req)}: candidate pools ${names} are disabled`);
  }
  const pod = req.pod;
  if (pod) {
    const binding = store.bindings.get(req.network, pod.namespace, pod.name, req.ifname, family);
    if (binding) {
      const pool = req.sticky ? serving.find((p) => p.name === binding.pool && poolContains(p, binding.address)) : undefined;
      if (pool) return takeBound(store, req, pool, binding);
      // Stickiness is off, or the pod's pools no longer hold its address: free the binding, allocate anew.
      store.bindings.delete(binding);
    }
  }
  for (const pool of serving) {
    const taken = takeFree(store, req, pool);
    if (taken) return taken;
  }
  const usage = serving.map((p) => `${p.name} (${store.bindings.poolUsage(req.network, p.name)} of ${p.total} in use)`).join(", ");
  throw new IpamError(
    "exhausted",
    serving.length === 1
      ? `IPv${family} pool ${serving[0].name} exhausted: ${store.bindings.poolUsage(req.network, serving[0].name)} of ${serving[0].total} addresses in use`
      : `every IPv${family} pool exhausted: ${usage}`,
    `pod ${podName(req)}, container ${req.containerId}, interface ${req.ifname}`,
  );
}

/** Gives a StatefulSet pod its bound address back, taking it over from an older sandbox of the same pod. */
function takeBound(store: AllocationStore, req: AllocationRequest, pool: Pool, binding: Binding): Allocation {
  const holder = store.leaseAt(req.network, binding.address);
  let replacedContainer: string | undefined;
  if (holder) {
    if (holder.pod_namespace !== binding.pod_namespace || holder.pod_name !== binding.pod_name) {
      throw new IpamError(
        "conflict",
        `address ${binding.address} bound to pod ${binding.pod_namespace}/${binding.pod_name} is leased by ${holder.pod_namespace ?? "?"}/${holder.pod_name ?? "?"} (container ${holder.container_id})`,
      );
    }
    // The old sandbox's DEL never came (or has not come yet); a pod name exists once, so its lease is stale.
    store.deleteLease(holder.id);
    replacedContainer = holder.container_id;
  }
  store.addLease(leaseFor(req, pool, binding.address));
  store.bindings.put(bindingFor(req, pool, binding.address));
  const a: Allocation = { family: pool.family, address: binding.address, pool, source: "bound" };
  if (replacedContainer) a.replacedContainer = replacedContainer;
  return a;
}

function takeFree(store: AllocationStore, req: AllocationRequest, pool: Pool): Allocation | undefined {
  const cursorText = store.bindings.cursor(req.network, pool.name);
  const cursor = cursorText ? parseAddress(cursorText) : undefined;
  const value = findFree(
    pool.ranges,
    cursor?.family === pool.family ? cursor.value : undefined,
    (v) => !store.bindings.isTaken(req.network, formatAddress(pool.family, v)),
  );
  if (value === undefined) return undefined;
  const address = formatAddress(pool.family, value);
  store.addLease(leaseFor(req, pool, address));
  store.bindings.setCursor(req.network, pool.name, address);
  if (req.sticky && req.pod) store.bindings.put(bindingFor(req, pool, address));
  return { family: pool.family, address, pool, source: "new" };
}

function leaseFor(req: AllocationRequest, pool: Pool, address: string): NewLease {
  return {
    network: req.network,
    address,
    family: pool.family,
    pool: pool.name,
    container_id: req.containerId,
    ifname: req.ifname,
    pod_namespace: req.pod?.namespace ?? null,
    pod_name: req.pod?.name ?? null,
    pod_uid: req.pod?.uid ?? null,
  };
}

function bindingFor(req: AllocationRequest, pool: Pool, address: string): NewBinding {
  const pod = req.pod as PodIdentity;
  return { network: req.network, pod_namespace: pod.namespace, pod_name: pod.name, ifname: req.ifname, family: pool.family, address, pool: pool.name };
}

function podName(req: AllocationRequest): string {
  return req.pod ? `${req.pod.namespace}/${req.pod.name}` : "(unknown)";
}
