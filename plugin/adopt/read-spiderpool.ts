/**
 * Spiderpool v2beta1 records: each SpiderIPPool's `status.allocatedIPs` (a
 * JSON string: address to `{pod: "ns/name", podUid}`), each pod's
 * SpiderEndpoint (`status.current.{uid, node, ips[]}` and, for a
 * StatefulSet member, `status.ownerControllerType/Name`, kept across the
 * pod's deletion), and SpiderReservedIPs.
 */
import { addressFamily, countAddresses, formatAddress, normalizeAddress, parseRange } from "../ipam/ip.ts";
import type { AdoptApi } from "../kube/adopt-client.ts";
import { KubeRequestError } from "../kube/kube-errors.ts";
import type { SpiderAllocation, SpiderEndpoint, SpiderEndpointIp } from "../kube/peer-objects.ts";
import { isKind } from "../support/errors.ts";
import type { Reserved, SourceRead, SourceRecord } from "./source-record.ts";

/** Reservations wider than this are refused rather than expanded address by address. */
const MAX_RESERVED = 65_536n;

export async function readSpiderpool(api: AdoptApi): Promise<SourceRead> {
  const endpoints = new Map<string, SpiderEndpoint>();
  for (const ep of await absentIsEmpty(api.listSpiderEndpoints())) endpoints.set(`${ep.metadata.namespace}/${ep.metadata.name}`, ep);
  const records: SourceRecord[] = [];
  for (const pool of await api.listPools()) {
    const from = `SpiderIPPool ${pool.metadata.name}`;
    const text = (pool.status as { allocatedIPs?: string } | undefined)?.allocatedIPs;
    if (!text) continue;
    let allocated: Record<string, SpiderAllocation>;
    try {
      allocated = JSON.parse(text);
    } catch {
      throw new Error(`${from}: status.allocatedIPs is not JSON`);
    }
    for (const [key, a] of Object.entries(allocated ?? {})) {
      const family = addressFamily(key);
      const m = /^([^/]+)\/([^/]+)$/.exec(a?.pod ?? "");
      if (!family || !m)
        throw new Error(`${from}: status.allocatedIPs entry ${JSON.stringify(key)}: ${JSON.stringify(a)} is not an address with pod "namespace/name"`);
      const address = normalizeAddress(key)!;
      const ep = endpoints.get(`${m[1]}/${m[2]}`);
      const ip = ep?.status?.current?.ips?.find((i) => [i.ipv4, i.ipv6].some((c) => c?.split("/")[0] === address));
      records.push({
        address,
        family,
        namespace: m[1],
        name: m[2],
        ...(a.podUid ? { podUid: a.podUid } : {}),
        ...(ip ? { interface: ip.interface } : {}),
        ...(ep?.status?.current?.node ? { node: ep.status.current.node } : {}),
        ...(ep?.status?.ownerControllerType === "StatefulSet" && ep.status.ownerControllerName ? { statefulSet: ep.status.ownerControllerName } : {}),
        from: ip ? `${from} and SpiderEndpoint ${m[1]}/${m[2]}` : from,
      });
    }
  }
  // A SpiderEndpoint listing an address the pools' status does not give its pod (a status write Spiderpool
  // lost, or gave it to another pod) is a record of its own: in use, or a second holder.
  const seen = new Set(records.map((r) => `${r.address} ${r.namespace}/${r.name}`));
  for (const ep of endpoints.values()) for (const r of endpointRecords(ep)) if (!seen.has(`${r.address} ${r.namespace}/${r.name}`)) records.push(r);
  return { records, reserved: await readReserved(api), ranges: [] };
}

function endpointRecords(ep: SpiderEndpoint): SourceRecord[] {
  const cur = ep.status?.current;
  const out: SourceRecord[] = [];
  const from = `SpiderEndpoint ${ep.metadata.namespace}/${ep.metadata.name}`;
  for (const ip of cur?.ips ?? ([] as SpiderEndpointIp[])) {
    for (const cidr of [ip.ipv4, ip.ipv6]) {
      const address = cidr?.split("/")[0];
      const family = address ? addressFamily(address) : undefined;
      if (!address || !family) continue;
      out.push({
        address: normalizeAddress(address)!,
        family,
        namespace: ep.metadata.namespace ?? "",
        name: ep.metadata.name,
        ...(cur?.uid ? { podUid: cur.uid } : {}),
        interface: ip.interface,
        ...(cur?.node ? { node: cur.node } : {}),
        ...(ep.status?.ownerControllerType === "StatefulSet" && ep.status.ownerControllerName ? { statefulSet: ep.status.ownerControllerName } : {}),
        from,
      });
    }
  }
  return out;
}

async function readReserved(api: AdoptApi): Promise<Reserved[]> {
  const out: Reserved[] = [];
  for (const r of await absentIsEmpty(api.listSpiderReservedIPs())) {
    for (const text of r.spec?.ips ?? []) {
      const range = parseRange(text);
      if (typeof range === "string") throw new Error(`SpiderReservedIP ${r.metadata.name}: ${JSON.stringify(text)}: ${range}`);
      if (countAddresses([range]) > MAX_RESERVED) throw new Error(`SpiderReservedIP ${r.metadata.name}: ${text} is wider than ${MAX_RESERVED} addresses`);
      for (let v = range.start; v <= range.end; v++) out.push({ address: formatAddress(range.family, v), by: r.metadata.name });
    }
  }
  return out;
}

/** A kind whose CRD is not installed has no objects (404 on its collection). */
async function absentIsEmpty<T>(list: Promise<T[]>): Promise<T[]> {
  try {
    return await list;
  } catch (err) {
    if (isKind(err, KubeRequestError) && (err as KubeRequestError).status === 404) return [];
    throw err;
  }
}
