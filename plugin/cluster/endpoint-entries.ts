/**
 * Reading a BerthEndpoint's entries. Each entry is the binding of one
 * attachment of the pod (its interface, written by one network), and names
 * the pod incarnation it was taken for; entries written by berth 0.4 name
 * none and mean the endpoint's `podUID`. One network's ADD or DEL reads and
 * writes only its own interface's entry.
 */
import type { Family } from "../ipam/ip.ts";
import type { Pool } from "../ipam/pool.ts";
import type { EndpointIp, EndpointObject } from "../kube/kube-api.ts";

/** The entry for `ifname`, or undefined. */
export function entryFor(ep: EndpointObject | undefined, ifname: string): EndpointIp | undefined {
  return ep?.spec.ips.find((i) => i.interface === ifname);
}

/** The pod incarnation an entry belongs to. */
export function entryUid(ep: EndpointObject, entry: EndpointIp): string {
  return entry.podUID ?? ep.spec.podUID;
}

/** The entry's address (without prefix) and pool for one family, if it has one. */
export function entryAddress(entry: EndpointIp | undefined, family: Family): { address: string; pool?: string } | undefined {
  const cidr = family === 4 ? entry?.ipv4 : entry?.ipv6;
  if (!cidr) return undefined;
  return { address: cidr.split("/")[0], pool: family === 4 ? entry?.ipv4Pool : entry?.ipv6Pool };
}

/** The addresses (without prefix) an entry lists. */
export function entryAddresses(entry: EndpointIp): string[] {
  return [entry.ipv4, entry.ipv6].filter((c): c is string => !!c).map((c) => c.split("/")[0]);
}

/** Whether any entry of the endpoint lists `address`. */
export function listsAddress(ep: EndpointObject | undefined, address: string): boolean {
  return !!ep?.spec.ips.some((i) => entryAddresses(i).includes(address));
}

/**
 * The entries with each one's incarnation written out, so that a later write
 * of the endpoint-level `podUID` cannot make an older incarnation's entry
 * look like the new one's.
 */
export function withEntryUids(ep: EndpointObject): EndpointIp[] {
  return ep.spec.ips.map((i) => (i.podUID ? i : { ...i, podUID: ep.spec.podUID }));
}

/** The entry without `address` (the entry itself when it does not list it); undefined when nothing of it is left. */
export function withoutAddress(entry: EndpointIp, address: string): EndpointIp | undefined {
  if (!entryAddresses(entry).includes(address)) return entry;
  const out = { ...entry };
  if (out.ipv4?.split("/")[0] === address) delete out.ipv4, delete out.ipv4Pool, delete out.ipv4Gateway;
  if (out.ipv6?.split("/")[0] === address) delete out.ipv6, delete out.ipv6Pool, delete out.ipv6Gateway;
  return out.ipv4 || out.ipv6 ? out : undefined;
}

/** Writes `address` of `pool` into the entry (its family's address with the pool's prefix, the pool, its gateway). */
export function setEntryAddress(entry: EndpointIp, pool: Pool, address: string): void {
  const cidr = `${address}/${pool.subnet.prefix}`;
  if (pool.family === 4) Object.assign(entry, { ipv4: cidr, ipv4Pool: pool.name }, pool.gateway ? { ipv4Gateway: pool.gateway } : {});
  else Object.assign(entry, { ipv6: cidr, ipv6Pool: pool.name }, pool.gateway ? { ipv6Gateway: pool.gateway } : {});
}
